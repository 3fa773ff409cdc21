"""MADDPG on stacked members: hand-computed targets, isolation, equivalence to plain nets."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig, clip_grads_per_member

OBS, ACT = [6, 10], [2, 2]


def make(seeds=(0,), **kw) -> MADDPG:
    return MADDPG(MADDPGConfig(**kw), list(seeds), OBS, ACT)


def random_batch(s: int, n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(s, n, 16, generator=g),
        "act": torch.rand(s, n, 4, generator=g) * 2 - 1,
        "rew": torch.randn(s, n, 2, generator=g),
        "next_obs": torch.randn(s, n, 16, generator=g),
    }


def set_constant(net, value: float) -> None:
    """Make a stacked MLP output ``value`` whatever its input."""
    with torch.no_grad():
        for w in net.weights:
            w.zero_()
        for b in net.biases:
            b.zero_()
        net.biases[-1].fill_(value)


def test_critic_target_and_loss_hand_computed():
    m = make(gamma=0.95)
    set_constant(m.target_critic, 2.0)
    set_constant(m.critic, 1.0)
    batch = random_batch(1, 8)
    y = m.critic_targets(batch)  # (2 members, 8, 1)
    expected = batch["rew"][0].T[..., None] + 0.95 * 2.0
    assert torch.allclose(y, expected, atol=1e-6)
    loss = m.critic_step(batch)
    assert torch.allclose(loss, ((1.0 - expected) ** 2).mean(dim=(1, 2)), atol=1e-6)


def test_soft_update_is_lerp_with_tau():
    m = make(tau=0.01)
    old_t = [p.clone() for p in m.target_actor.parameters()]
    with torch.no_grad():
        for p in m.actor.parameters():
            p.add_(1.0)
    new = [p.clone() for p in m.actor.parameters()]
    m.soft_update()
    for t_old, src, t_new in zip(old_t, new, m.target_actor.parameters(), strict=True):
        assert torch.allclose(t_new, 0.99 * t_old + 0.01 * src, atol=1e-7)


def test_actor_loss_of_one_agent_reaches_only_its_actor():
    m = make(seeds=(0, 1))
    batch = random_batch(2, 32)
    losses, _ = m.actor_losses(batch)
    params = list(m.actor.parameters())
    for k in range(m.members):
        grads = torch.autograd.grad(losses[k], params, retain_graph=True, allow_unused=True)
        for g in grads:
            others = torch.cat([g[j].flatten() for j in range(m.members) if j != k])
            assert torch.count_nonzero(others) == 0
        assert any(torch.count_nonzero(g[k]) > 0 for g in grads)


def test_update_changes_actors_and_critics_but_not_other_networks_from_actor_loss():
    m = make(seeds=(0,))
    batch = random_batch(1, 32)
    critic_before = copy.deepcopy(m.critic.state_dict())
    m.critic_step(batch)
    critic_after_step = copy.deepcopy(m.critic.state_dict())
    assert any(not torch.equal(critic_before[k], critic_after_step[k]) for k in critic_before)
    # the actor step must not move the critic
    losses, _ = m.actor_losses(batch)
    m._step(m.actor, m.actor_opt, losses)
    for k, v in m.critic.state_dict().items():
        if "running" not in k:
            assert torch.equal(v, critic_after_step[k])


def plain_mlp(net, m: int, x: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """Member m of a stacked MLP as an ordinary unpadded network (batch statistics)."""
    x = x[:, :n_in]
    h = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
    last = len(net.weights) - 1
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        rows = n_in if i == 0 else w.shape[1]
        cols = n_out if i == last else w.shape[2]
        h = h @ w[m, :rows, :cols] + b[m, 0, :cols]
        if i < last:
            h = F.leaky_relu(h, 0.01)
    return h


def test_stacked_forward_equals_plain_per_member_networks():
    m = make(seeds=(0, 1, 2))
    batch = random_batch(3, 50)
    m.actor.train()
    actions, pre, _ = m.actor_forward(batch["obs"], train=True, update_stats=False)
    for s in range(3):
        obs_red, obs_blue = batch["obs"][s, :, :6], batch["obs"][s, :, 6:]
        for i, o in enumerate((obs_red, obs_blue)):
            plain = plain_mlp(m.actor, s * 2 + i, o, OBS[i], 2)
            assert torch.allclose(pre[s * 2 + i], plain, atol=1e-6)
    crit_in = torch.cat([batch["obs"], batch["act"]], -1)
    q, _ = m.critic(m._critic_input(batch["obs"], batch["act"]), update_stats=False)
    for s in range(3):
        for i in range(2):
            plain = plain_mlp(m.critic, s * 2 + i, crit_in[s], 20, 1)
            assert torch.allclose(q[s * 2 + i], plain, atol=1e-5)


def test_red_padding_columns_stay_zero_after_updates():
    m = make(seeds=(0,))
    for k in range(3):
        m.update(random_batch(1, 32, seed=k))
    assert torch.count_nonzero(m.actor.weights[0][0, 6:]) == 0  # red: obs width 6 of 10


def test_stacked_update_equals_single_seed_updates():
    """Seeds stacked together update exactly as each seed alone."""
    together = make(seeds=(3, 5))
    alone = [make(seeds=(3,)), make(seeds=(5,))]
    for k in range(3):
        batch = random_batch(2, 64, seed=k)
        together.update(batch)
        for s in range(2):
            alone[s].update({key: v[s : s + 1] for key, v in batch.items()})
    for s in range(2):
        for (name, v_t), v_a in zip(
            together.actor.named_parameters(), alone[s].actor.parameters(), strict=True
        ):
            assert torch.allclose(v_t[2 * s : 2 * s + 2], v_a, atol=1e-5), name
        for v_t, v_a in zip(
            together.critic.parameters(), alone[s].critic.parameters(), strict=True
        ):
            assert torch.allclose(v_t[2 * s : 2 * s + 2], v_a, atol=1e-5)


def test_clipping_norms_do_not_depend_on_the_stack_size():
    """The ordered per-member norm of a member is the same to the last bit whether it is
    computed among 2 or 64 members (torch's stacked reduction is not: its summation order
    changes with the number of members)."""
    g = torch.Generator().manual_seed(0)
    shapes = [(10, 64), (1, 64), (64, 64), (1, 64), (64, 2), (1, 2)]
    big = [torch.randn(64, *s, generator=g) * 10.0 ** (i - 3) for i, s in enumerate(shapes)]
    small = [t[:2].clone() for t in big]
    n_big = clip_grads_per_member([t.clone() for t in big], 0.5)
    n_small = clip_grads_per_member([t.clone() for t in small], 0.5)
    assert torch.equal(n_big[:2], n_small)
    exact = torch.sqrt(sum(t.double().pow(2).flatten(1).sum(1) for t in big))
    assert torch.allclose(n_big.double(), exact, rtol=1e-6)


def test_per_member_gradient_clipping():
    g = [torch.tensor([[3.0, 4.0], [0.3, 0.4]])]  # member norms 5 and 0.5
    norms = clip_grads_per_member(g, 1.0)
    assert torch.allclose(norms, torch.tensor([5.0, 0.5]))
    assert torch.allclose(g[0][0].norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(g[0][1], torch.tensor([0.3, 0.4]))


def test_noise_schedule():
    cfg = MADDPGConfig()
    assert cfg.noise_scale(0) == pytest.approx(0.3)
    assert cfg.noise_scale(12_500) == pytest.approx(0.15)
    assert cfg.noise_scale(25_000) == pytest.approx(0.0)
    assert cfg.noise_scale(40_000) == pytest.approx(0.0)


def test_buffer_reward_statistics_and_wraparound():
    buf = StackedReplayBuffer(2, capacity=5, obs_dim=1, act_dim=1, n_agents=1)
    vals = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    for v in vals:
        t = torch.tensor([[[v]], [[10 * v]]])
        buf.add(t, t, t, t)
    kept = np.array(vals[-5:])
    mean, std = buf.reward_stats()
    assert mean[0, 0].item() == pytest.approx(kept.mean())
    assert std[0, 0].item() == pytest.approx(kept.std())
    assert mean[1, 0].item() == pytest.approx(10 * kept.mean())
    assert sorted(buf.data["rew"][0, :, 0].tolist()) == sorted(kept.tolist())
    batch = buf.sample([np.random.default_rng(0), np.random.default_rng(1)], 100, True)
    assert batch["rew"].shape == (2, 100, 1)
    assert abs(batch["rew"][0].mean().item()) < 0.3  # standardised
    assert torch.allclose(batch["obs"][1], 10 * batch["obs"][1] / 10)


def test_update_rounds_do_not_depend_on_the_thread_count():
    """reproduce runs two stages side by side with one thread each instead of one stage
    with two: the same update rounds must give bit-identical networks (realistic shapes:
    8 seeds, batch 1024)."""
    before = torch.get_num_threads()
    nets = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            m = make(seeds=range(8))
            for k in range(3):
                m.update(random_batch(8, 1024, seed=k))
            nets[threads] = {k: v.clone() for k, v in m.state_dict().items()}
    finally:
        torch.set_num_threads(before)
    assert nets[1].keys() == nets[2].keys()
    for key in nets[1]:
        assert torch.equal(nets[1][key], nets[2][key]), key
