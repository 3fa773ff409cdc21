"""Issue 32 item 1: the history observation option (``EnvConfig.history``, docs/spec.md
§1.6, §2.4): each agent observes its last k frames, the replay buffer stores single
frames and stacks them when sampling; off (1) by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_velocity_and_applied import short_training

from soo_marl import soo
from soo_marl.agents.buffer import StackedReplayBuffer, gather_stacked
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs import core, physical_deception_v0
from soo_marl.objectives import BlindRed
from soo_marl.rollout import rollout, shuffle_derangement, start_uniforms
from soo_marl.tasks import bytes_per_transition
from soo_marl.vecenv import DeceptionVecEnv


def test_history_is_validated() -> None:
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="history must be a positive integer"):
            core.EnvConfig(history=bad)  # type: ignore[arg-type]
    assert core.EnvConfig().history == 1
    assert core.input_dims(core.EnvConfig(history=3, blue_sees_velocity=True)) == (18, 36)


def test_default_equals_history_explicitly_one() -> None:
    """Training and a probed rollout of the default config equal those with history=1."""
    a = short_training(core.EnvConfig(sight_radius=0.5))
    b = short_training(core.EnvConfig(sight_radius=0.5, history=1))
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert torch.equal(a.buffer.storage[:, : len(a.buffer)], b.buffer.storage[:, : len(b.buffer)])
    assert a.buffer.storage.shape[-1] == 38 and "stride" not in a.buffer.state_dict()
    u = start_uniforms([5, 6], 3)
    for probe in ({}, {"blind_blue": True}, {"shuffle_red": True}):
        x = rollout(core.EnvConfig(), u, a.model, a.model, **probe)
        y = rollout(core.EnvConfig(history=1), u, a.model, a.model, **probe)
        for key in x:
            assert np.array_equal(x[key], y[key]), (probe, key)


def frames_of_episode(cfg: core.EnvConfig, env: DeceptionVecEnv, rng_seed: int, steps: int):
    """The single joint frames an env of history 1 hands out for the same episode."""
    one = DeceptionVecEnv(cfg.with_(history=1), env.n_seeds, env.envs_per_seed)
    acts = np.random.default_rng(rng_seed).uniform(-1, 1, (steps, env.n_seeds, 2, 4))
    frames = [one.reset([np.random.default_rng(s) for s in range(env.n_seeds)])]
    for t in range(steps):
        frames.append(one.step(acts[t])[0])
    return np.stack(frames), acts


def test_stacked_frames_are_the_previous_observations_in_order() -> None:
    cfg = core.EnvConfig(sight_radius=0.5, history=3, max_cycles=6)
    env = DeceptionVecEnv(cfg, 2, 2)
    assert env.obs_dims == (18, 30) and env.frame_dims == (6, 10)
    frames, acts = frames_of_episode(cfg, env, 0, 6)
    for episode in range(2):  # the second reset starts from zeros again
        seen = [env.reset([np.random.default_rng(s) for s in range(2)])]
        seen += [env.step(acts[t])[0] for t in range(6)]
        for t, obs in enumerate(seen):
            red, blue = obs[..., :18].reshape(2, 2, 3, 6), obs[..., 18:].reshape(2, 2, 3, 10)
            for j in range(3):  # frame j is step t - 2 + j
                step = t - 2 + j
                want = frames[step] if step >= 0 else np.zeros_like(frames[0])
                assert np.array_equal(red[:, :, j], want[..., :6]), (episode, t, j)
                assert np.array_equal(blue[:, :, j], want[..., 6:]), (episode, t, j)
    stacked = core.stack_episode(np.moveaxis(frames, 0, 2), 3, axis=2)  # (S, E, T+1, 48)
    per_agent = core.stack_frames(np.zeros((3, 16)), (6, 10))
    assert per_agent.shape == (48,)
    assert np.array_equal(stacked[..., -1, 32:48], frames[-1])  # the newest joint frame last


def fill(buffer: StackedReplayBuffer, cfg: core.EnvConfig, episodes: int, seed: int = 0):
    """Play ``episodes`` random episodes into ``buffer``; every stored transition's stacked
    (obs, next_obs, act) in order of addition."""
    env = DeceptionVecEnv(cfg, buffer.seeds, 2)
    rng = np.random.default_rng(seed)
    added = []
    for _ in range(episodes):
        obs, done, t = env.reset([rng for _ in range(buffer.seeds)]), False, 0
        while not done:
            act = rng.uniform(-1, 1, (buffer.seeds, 2, 4))
            nxt, rew, done = env.step(act)
            f = torch.from_numpy
            buffer.add(f(obs), f(act.astype(np.float32)), f(rew.astype(np.float32)), f(nxt), t)
            added += [(obs[:, e], nxt[:, e], act[:, e].astype(np.float32)) for e in range(2)]
            obs, t = nxt, t + 1
    return added


def test_buffer_stacks_equal_the_rollout_stacks_across_episode_starts() -> None:
    cfg = core.EnvConfig(sight_radius=0.5, history=3, max_cycles=5)
    buf = StackedReplayBuffer(2, 100, 16, 4, 2, stack=3, frame_dims=(6, 10))
    added = fill(buf, cfg, 3)
    assert len(buf) == len(added) == 30 and buf.stride == 2
    assert buf.storage.shape[-1] == 39  # single frames + the episode step
    positions = np.array([[0, 1, 10, 11, 12, 13, 29, 20], [3, 10, 11, 14, 5, 21, 22, 28]])
    got = gather_stacked(buf.storage, buf.ptr, buf.filled, positions, buf.slices, 3, 2, [6, 10])
    for s in range(2):
        for i, p in enumerate(positions[s]):
            obs, nxt, _ = added[p]
            assert np.array_equal(got["obs"][s, i].numpy(), obs[s]), (s, p)
            assert np.array_equal(got["next_obs"][s, i].numpy(), nxt[s]), (s, p)
    batch = buf.sample([np.random.default_rng(k) for k in range(2)], 64, False)
    assert batch["obs"].shape == (2, 64, 48) and batch["next_obs"].shape == (2, 64, 48)


def test_a_wrapped_buffer_samples_only_complete_stacks() -> None:
    """Capacity 23 (not a multiple of E = 2), 4 episodes of 5 steps: the ring wraps; every
    sampled transition's stacks equal the ones it was added with."""
    cfg = core.EnvConfig(sight_radius=0.5, history=3, max_cycles=5)
    buf = StackedReplayBuffer(2, 23, 16, 4, 2, stack=3, frame_dims=(6, 10))
    added = fill(buf, cfg, 4, seed=1)
    batch = buf.sample([np.random.default_rng(k) for k in range(2)], 200, False)
    kept = added[-23:]
    for s in range(2):
        for i in range(200):
            act = batch["act"][s, i].numpy()
            (match,) = [a for a in kept if np.array_equal(a[2][s], act)]
            assert np.array_equal(batch["obs"][s, i].numpy(), match[0][s])
            assert np.array_equal(batch["next_obs"][s, i].numpy(), match[1][s])
    state = buf.state_dict()
    assert state["stride"] == 2
    again = StackedReplayBuffer(2, 23, 16, 4, 2, stack=3, frame_dims=(6, 10))
    again.load_state_dict(state)
    assert again.stride == 2 and torch.equal(again.storage, buf.storage)
    with pytest.raises(ValueError, match="no episode steps"):
        again.load_state_dict(StackedReplayBuffer(2, 23, 16, 4, 2).state_dict())


def test_training_with_history_two_stores_single_frames() -> None:
    state = short_training(core.EnvConfig(sight_radius=0.5, history=2))
    model, buf = state.model, state.buffer
    assert model.obs_dims == [12, 20]
    assert model.actor.weights[0].shape[1] == 20  # k × blue's frame (red's padded)
    assert model.critic.weights[0].shape[1] == 2 * 16 + 4
    assert buf.storage.shape[-1] == 2 * 16 + 4 + 2 + 1
    assert StackedReplayBuffer.row_bytes(16, 4, 2, 2) == 156 == 39 * 4
    cfg = TrainConfig(env=core.EnvConfig(history=4))
    assert bytes_per_transition(cfg) == 156 and bytes_per_transition(TrainConfig()) == 152


def test_blind_probe_zeroes_red_in_every_frame_and_shuffle_swaps_them() -> None:
    cfg = core.EnvConfig(sight_radius=0.5, history=3, blue_sees_velocity=True, max_cycles=8)
    u = start_uniforms([5, 6], 3, core.reset_draws(cfg))
    red = MADDPG(MADDPGConfig(), [0, 1], core.input_dims(cfg), [2, 2])
    seen: list[np.ndarray] = []

    def blue(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.copy())
        return np.tile([0.3, -0.2], (obs.shape[0], 1))

    real = rollout(cfg, u, red, blue)["obs_blue"]  # (S, N, T+1, 12): single frames
    assert real.shape[-1] == 12
    stacked = core.stack_episode(real, 3, axis=2)[:, :, :-1]  # what blue acted on
    shown = np.stack(seen, axis=1).reshape(2, 6, -1, 36)
    assert np.array_equal(shown, stacked)
    slots = core.stacked_red_slots(cfg)
    assert slots == [6, 7, 10, 11, 18, 19, 22, 23, 30, 31, 34, 35]
    assert np.count_nonzero(stacked[..., slots]) > 0
    seen.clear()
    rollout(cfg, u, red, blue, blind_blue=True)
    shown = np.stack(seen, axis=1).reshape(2, 6, -1, 36)
    assert np.count_nonzero(shown[..., slots]) == 0
    rest = [i for i in range(36) if i not in slots]
    assert np.array_equal(shown[..., rest], stacked[..., rest])
    seen.clear()
    rollout(cfg, u, red, blue, shuffle_red=True)
    shown = np.stack(seen, axis=1).reshape(2, 6, -1, 36)
    donors = shuffle_derangement(6)
    assert np.array_equal(shown[..., slots], stacked[:, donors][..., slots])
    assert np.array_equal(shown[..., rest], stacked[..., rest])


def test_blind_red_zeroes_the_weights_on_red_in_every_frame() -> None:
    cfg = core.EnvConfig(history=2)
    model = MADDPG(MADDPGConfig(), [0, 1], core.input_dims(cfg), [2, 2])
    BlindRed(core.stacked_red_slots(cfg)).apply(model)
    w = model.actor.weights[0].view(2, 2, 20, -1)[:, 1]
    assert torch.count_nonzero(w[:, [6, 7, 16, 17]]) == 0
    assert torch.count_nonzero(w[:, [0, 5, 8, 9, 10, 15, 18, 19]]) > 0


def test_soo_other_observation_works_frame_by_frame() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.rand((40, 30), generator=g) * 2 - 1
    obs[:, 6:8] = obs[:, 16:18] = obs[:, 26:28] = 0.0  # red out of sight in every frame
    obs[:10, :10] = 0.0  # first step of an episode: the oldest frame is padding
    obs[30:, 26] = 0.5  # red in sight in the newest frame
    mask = soo.self_mask(obs, history=3)
    assert mask.tolist() == [True] * 30 + [False] * 10
    assert soo.in_sight_mask(obs, history=3).tolist() == [False] * 30 + [True] * 10
    other = soo.other_observation(obs, torch.Generator().manual_seed(1), 0.5, history=3)
    f = other.view(40, 3, 10)
    assert torch.count_nonzero(f[:10, 0]) == 0  # padding stays 0
    assert torch.equal(f[10:, 0, 6:8], f[10:, 2, 6:8]) and torch.equal(f[:, 1, 6:8], f[:, 2, 6:8])
    assert torch.count_nonzero(f[..., 8:10]) == 0
    assert torch.equal(f[..., :6], obs.view(40, 3, 10)[..., :6])
    one = soo.other_observation(obs[:, 20:], torch.Generator().manual_seed(1), 0.5)
    assert torch.equal(one, other[:, 20:])  # the same draws as a single frame


def test_pettingzoo_spaces_and_stacked_observations() -> None:
    from pettingzoo.test import parallel_api_test

    env = physical_deception_v0.parallel_env(history=3, max_cycles=5)
    assert env.observation_space("agent_0").shape == (30,)
    assert env.observation_space("adversary_0").shape == (18,)
    obs, _ = env.reset(seed=3)
    assert np.count_nonzero(obs["agent_0"][:20]) == 0  # before the start: zeros
    first = obs["agent_0"][20:].copy()
    obs, *_ = env.step({a: np.zeros(2, np.float32) for a in env.agents})
    assert np.array_equal(obs["agent_0"][10:20], first)
    parallel_api_test(physical_deception_v0.parallel_env(history=2), num_cycles=30)


def test_evaluate_and_probes_read_stacked_frames(tmp_path) -> None:
    """A history-2 run evaluates: the probes rebuild blue's stacked observations, blank red
    in both frames for the context variant and measure the red-slot norm over both
    frames' red slots; the replay-buffer saturation is not read (frames to stack)."""
    from soo_marl import probes, rundir
    from soo_marl.evaluate import evaluate_runs
    from soo_marl.rollout import rollout, start_uniforms
    from soo_marl.train import train

    cfg = TrainConfig(
        env=core.EnvConfig(sight_radius=0.5, history=2),
        maddpg=MADDPGConfig(batch_size=32, buffer_size=2000),
        run=RunConfig(seeds=(0,), episodes=20, log_every=10),
    )
    train(cfg, tmp_path / "run", progress=False)
    (m,) = evaluate_runs([tmp_path / "run"], episodes=3, eval_seeds=[155], progress=False).values()
    lm = rundir.load_model(tmp_path / "run")
    assert core.stacked_red_slots(lm.config.env) == [6, 7, 16, 17]
    w = lm.model.actor.weights[0].detach().double().numpy()[1::2]  # blue, (1, 20, 64)
    expected = np.sqrt((w[:, [6, 7, 16, 17]] ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(m["red_slot_norm"]["values"], expected)
    d = m["red_decodability"]["values"][0]
    assert d is None or 0.0 <= d <= 1.0
    assert m["saturation_replay"] is None
    traj = rollout(lm.config.env, start_uniforms([155], 3), lm.model, lm.model)
    rebuilt = probes.blue_observations(lm.config.env, traj)
    assert rebuilt.shape[-1] == 20
    np.testing.assert_allclose(rebuilt, core.stack_episode(traj["obs_blue"], 2, axis=-2), atol=1e-6)
