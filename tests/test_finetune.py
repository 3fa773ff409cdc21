"""SOO fine-tuning: gradients reach only blue's actor, SOO lowers the SOO value, control,
freeze-red, exact resume, clear refusals."""

import shutil

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from soo_marl import allocator, soo
from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.cli import main
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.finetune import FinetuneConfig, finetune, finetune_plan
from soo_marl.rundir import RunDirError, prune_buffer
from soo_marl.train import extra_actor_loss, new_state, train
from soo_marl.vecenv import DeceptionVecEnv

SMALL = dict(batch_size=64, buffer_size=5000)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    root = tmp_path_factory.mktemp("parent")
    cfg = TrainConfig(
        env=EnvConfig(baseline="deceptive"),
        maddpg=MADDPGConfig(**SMALL),
        run=RunConfig(seeds=(0, 1), episodes=60, log_every=20),
    )
    train(cfg, root / "deceptive", progress=False)
    honest = TrainConfig(
        env=EnvConfig(baseline="honest"), maddpg=MADDPGConfig(**SMALL),
        run=RunConfig(seeds=(0, 1), episodes=20, log_every=20),
    )  # fmt: skip
    train(honest, root / "honest", progress=False)
    return root


class Tuning:
    """A fine-tuning plan with its starting state (parent loaded), as the loop gets them."""

    def __init__(self, parent, **ft):
        self.plan = finetune_plan(
            parent / "deceptive", FinetuneConfig(episodes=20, **ft), device="cpu"
        )
        env = DeceptionVecEnv(self.plan.config.env, 2, self.plan.config.run.envs_per_seed)
        self.state = new_state(self.plan.config, env, torch.device("cpu"))
        self.plan.start(self.state)
        self.model, self.buffer = self.state.model, self.state.buffer

    def extra(self, batch):
        return extra_actor_loss(self.plan.objectives)(self.model, batch)

    def logs(self):
        return {k: v for p in self.plan.objectives for k, v in p.logs().items()}


def _trainer(parent, tmp_path, **ft):
    return Tuning(parent, **ft)


def _batch(t):
    return t.buffer.sample([np.random.default_rng(0)] * 2, 64, True)


def test_soo_and_anchor_gradients_reach_only_blue_actor(parent, tmp_path):
    t = _trainer(parent, tmp_path, soo_weight=1.0, anchor_weight=1.0)
    with torch.no_grad():  # move blue away from the frozen copy so the anchor term is live
        for p in t.model.actor.parameters():
            p.add_(0.01)
    extra = t.extra(_batch(t))
    assert extra.shape == (4,) and extra[0] == 0 and extra[2] == 0 and extra[1] > 0
    params = list(t.model.actor.parameters()) + list(t.model.critic.parameters())
    grads = torch.autograd.grad(extra.sum(), params, allow_unused=True)
    n_actor = len(list(t.model.actor.parameters()))
    for g in grads[n_actor:]:
        assert g is None or torch.count_nonzero(g) == 0  # critics untouched
    for g in grads[:n_actor]:
        red_rows = g.view(2, 2, *g.shape[1:])[:, 0]
        assert torch.count_nonzero(red_rows) == 0
    assert any(torch.count_nonzero(g.view(2, 2, *g.shape[1:])[:, 1]) > 0 for g in grads[:n_actor])


def test_soo_steps_lower_the_soo_value_on_a_fixed_batch(parent, tmp_path):
    t = _trainer(parent, tmp_path, soo_weight=1.0, anchor_weight=0.0)
    batch = _batch(t)
    obs_blue = batch["obs"][..., 6:]
    mask = soo.self_mask(obs_blue)
    other = soo.other_observation(obs_blue, torch.Generator().manual_seed(1))

    def value():
        with torch.no_grad():
            v = soo.soo_value(
                soo.blue_activations(t.model, obs_blue), soo.blue_activations(t.model, other)
            )
        return v[mask].mean().item()

    before = value()
    opt = torch.optim.Adam(t.model.actor.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        t.extra(batch).sum().backward()
        opt.step()
    assert value() < before - 0.5


def test_extra_loss_is_weighted_soo_plus_anchor_on_out_of_sight_rows(parent, tmp_path):
    """Blue's extra loss is W·SOO + A·anchor, each recomputed here from the pure SOO
    functions; W = 0 (the --no-soo control) leaves the anchor term alone."""
    w, a = 2.0, 3.0
    t = _trainer(parent, tmp_path, soo_weight=w, anchor_weight=a)
    control = _trainer(parent, tmp_path, soo_weight=0.0, anchor_weight=a)
    with torch.no_grad():  # move blue away from the frozen copy so the anchor term is live
        for m in (t.model, control.model):
            for p in m.actor.parameters():
                p.add_(0.01)
    batch = _batch(t)
    term = t.plan.objectives[1]
    gens = [torch.Generator().set_state(g.get_state()) for g in term.generators]
    extra = t.extra(batch).detach()
    # recompute: same other observations (same generator states), same rows
    obs_blue = batch["obs"][..., 6:]
    mask = soo.self_mask(obs_blue)
    other = soo.other_observation(obs_blue, gens, term.radius)
    with torch.no_grad():
        soo_l = soo.soo_loss(
            soo.blue_activations(t.model, obs_blue), soo.blue_activations(t.model, other), mask
        )
        parent_act = soo.blue_activations(t.plan.objectives[0].reference, obs_blue, "action")
        anchor = soo.anchor_loss(
            soo.blue_activations(t.model, obs_blue, "action"), parent_act, mask
        )
    assert torch.all(soo_l > 0) and torch.all(anchor > 0)
    assert torch.allclose(extra[1::2], w * soo_l + a * anchor, rtol=1e-5)
    assert torch.count_nonzero(extra[0::2]) == 0  # red gets nothing
    assert torch.allclose(control.extra(batch).detach()[1::2], a * anchor, rtol=1e-5)
    assert t.plan.meta["condition"] == "soo" and control.plan.meta["condition"] == "no-soo"
    assert torch.allclose(t.logs()["soo/anchor_loss"], anchor)


def test_freeze_red_and_exact_resume(parent, tmp_path):
    ft = FinetuneConfig(episodes=40, freeze_red=True)
    finetune(parent / "deceptive", ft, tmp_path / "full", progress=False)
    half = FinetuneConfig(episodes=20, freeze_red=True)
    finetune(parent / "deceptive", half, tmp_path / "split", progress=False)
    finetune(parent / "deceptive", ft, tmp_path / "split", resume=True, progress=False)
    load = lambda d: torch.load(d / "final_model.pt", weights_only=True)["model"]  # noqa: E731
    full, split = load(tmp_path / "full"), load(tmp_path / "split")
    parent_w = torch.load(parent / "deceptive" / "final_model.pt", weights_only=True)["model"]
    for k in full:
        assert torch.equal(full[k], split[k]), k
    for k in ("actor.weights.0", "actor.biases.2"):
        red_now, red_before = full[k].view(2, 2, -1)[:, 0], parent_w[k].view(2, 2, -1)[:, 0]
        assert torch.equal(red_now, red_before)  # red frozen
        assert not torch.equal(full[k].view(2, 2, -1)[:, 1], parent_w[k].view(2, 2, -1)[:, 1])


def test_reference_fine_tuning_of_a_fast_parent_resumes_exactly(parent, tmp_path):
    """finetune --kernels reference: the run records its kernels (the parent's stay fast), a
    resume without --kernels keeps them, and the resumed run ends bit-identical."""
    ft, half = FinetuneConfig(episodes=40), FinetuneConfig(episodes=20)
    run = lambda cfg, d, **kw: finetune(  # noqa: E731
        parent / "deceptive", cfg, tmp_path / d, progress=False, **kw
    )
    run(ft, "full", kernels="reference")
    run(half, "split", kernels="reference")
    run(ft, "split", resume=True)
    kernels = lambda d: yaml.safe_load((d / "config.yaml").read_text())["maddpg"]["kernels"]  # noqa: E731
    assert kernels(parent / "deceptive") == "fast"
    assert kernels(tmp_path / "full") == kernels(tmp_path / "split") == "reference"
    load = lambda d: torch.load(d / "final_model.pt", weights_only=True)["model"]  # noqa: E731
    full, split = load(tmp_path / "full"), load(tmp_path / "split")
    for k in full:
        assert torch.equal(full[k], split[k]), k
    fast = run(ft, "fast").run_dir
    assert kernels(fast) == "fast"
    assert any(not torch.equal(full[k], load(fast)[k]) for k in full)  # other numerics


def test_fresh_buffer_starts_empty_and_fills_from_the_fine_tuning_alone(parent, tmp_path):
    """--fresh-buffer keeps the parent's networks and optimisers but none of its 3000
    stored transitions per seed, nor their reward statistics; the default reuses them."""
    reused, fresh = Tuning(parent), Tuning(parent, reuse_buffer=False)
    saved = torch.load(parent / "deceptive" / "checkpoint.pt", weights_only=True)["buffer"]
    assert saved["filled"] == 3000  # 60 episodes × 50 steps
    assert len(reused.buffer) == 3000 and reused.plan.buffer_rows == 3000
    assert torch.equal(reused.buffer.storage[:, :3000], saved["storage"][:, :3000])
    assert torch.equal(reused.buffer.rew_sum, saved["rew_sum"])
    assert len(fresh.buffer) == 0 and fresh.buffer.ptr == 0 and fresh.plan.buffer_rows == 0
    assert torch.count_nonzero(fresh.buffer.rew_sum) == 0
    a, b = fresh.model.full_state(), reused.model.full_state()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["actor_opt"]["steps"], b["actor_opt"]["steps"])
    assert int(a["actor_opt"]["steps"][0]) > 0  # the parent's optimiser, not a new one
    # through the loop: 20 episodes × 50 steps store 1000 rows, the statistics are theirs
    ft = FinetuneConfig(episodes=20, reuse_buffer=False)
    finetune(parent / "deceptive", ft, tmp_path / "fresh", progress=False)
    buf = torch.load(tmp_path / "fresh" / "checkpoint.pt", weights_only=True)["buffer"]
    assert buf["filled"] == 1000 and buf["ptr"] == 1000
    stored = StackedReplayBuffer.saved_field(buf, "rew").double()
    assert torch.allclose(buf["rew_sum"], stored.sum(1))
    meta = yaml.safe_load((tmp_path / "fresh" / "config.yaml").read_text())["meta"]
    assert meta["finetune"]["reuse_buffer"] is False


def test_fresh_buffer_fine_tunes_a_parent_whose_buffer_was_pruned(parent, tmp_path):
    pruned = tmp_path / "pruned"
    shutil.copytree(parent / "deceptive", pruned)
    assert prune_buffer(pruned) > 0
    with pytest.raises(RunDirError, match="pruned.*--fresh-buffer"):
        finetune(pruned, FinetuneConfig(episodes=20), tmp_path / "reuse", progress=False)
    ft = FinetuneConfig(episodes=20, reuse_buffer=False)
    assert finetune_plan(pruned, ft, device="cpu").buffer_rows == 0
    result = finetune(pruned, ft, tmp_path / "fresh", progress=False)
    assert result.episodes_done == 20 and (tmp_path / "fresh" / "final_model.pt").exists()


def test_fine_tuning_beyond_memory_refused_before_it_allocates(parent, tmp_path, monkeypatch):
    """The memory check counts the parent's reused transitions (3000 + 20 × 50 per seed)."""
    monkeypatch.setattr(allocator, "memory_available", lambda device=None: (10**6, "test"))
    with pytest.raises(allocator.InsufficientMemory) as err:
        finetune(parent / "deceptive", FinetuneConfig(episodes=20), tmp_path / "ft")
    assert "2 seeds × 4,000 transitions of replay (1.22 MB)" in str(err.value)
    assert "need at least 2.06 MB, but 1 MB is available (test)" in str(err.value)
    assert not (tmp_path / "ft").exists()


def test_refusals(parent, tmp_path):
    with pytest.raises(RunDirError, match="deceptive baseline is required"):
        finetune(parent / "honest", FinetuneConfig(episodes=10), tmp_path / "x")
    with pytest.raises(RunDirError, match="no trained run"):
        finetune(tmp_path / "missing", FinetuneConfig(episodes=10), tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    res = CliRunner().invoke(
        main, ["finetune", "--from", str(parent / "deceptive"), "--sight-radius", "0.5",
               "--run-dir", str(tmp_path / "z")],
    )  # fmt: skip
    assert res.exit_code != 0 and "sight_radius=0.125" in res.output
    assert not (tmp_path / "z").exists()
