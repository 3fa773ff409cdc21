"""Issue 32 items 1 and 2: the relative-velocity observation slots (``red_sees_velocity``,
``blue_sees_velocity``, docs/spec.md §1.6) and the recorded applied action
(``record_applied_action``, §1.13), both off by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soo_marl import soo
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs import core, physical_deception_v0
from soo_marl.objectives import BlindRed
from soo_marl.rollout import rollout, shuffle_derangement, start_uniforms
from soo_marl.train import Plan, new_state, play_episodes, trained_actors
from soo_marl.vecenv import DeceptionVecEnv

VEL = {"red_sees_velocity": True, "blue_sees_velocity": True}
OFF = {"red_sees_velocity": False, "blue_sees_velocity": False, "record_applied_action": False}


def known_state(red=(0.0, 0.0), blue=(0.1, 0.0), trapped=False) -> core.State:
    """One world at rest far from the walls: landmarks at ±(0.5, 0.5), the goal landmark 0."""
    return core.State(
        pos=np.array([[red, blue]], dtype=np.float64),
        vel=np.zeros((1, 2, 2)),
        landmarks=np.array([[[0.5, 0.5], [-0.5, -0.5]]]),
        goal_index=np.array([0]),
        trapped=np.array([trapped]),
        t=0,
    )


# --------------------------------------------------------------------------- defaults


def test_default_observation_is_the_paper_layout_after_a_known_step() -> None:
    """Hard physics check of the default: from rest, v = 0.1·5·a and x moves by 0.1·v; both
    observations are the §1.6 layouts (6 and 10 values) of the new positions."""
    cfg = core.EnvConfig()
    assert core.obs_dims(cfg) == (core.OBS_DIM_RED, core.OBS_DIM_BLUE) == (6, 10)
    assert core.red_slots(cfg) == [6, 7]
    actions = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    state, out = core.step_outputs(cfg, known_state(), actions)
    # far from the walls their force is below 1e-300
    np.testing.assert_allclose(state.vel[0], [[0.5, 0.0], [0.0, 0.5]], rtol=0, atol=1e-300)
    p_r, p_b = np.array([0.05, 0.0]), np.array([0.1, 0.05])
    np.testing.assert_allclose(state.pos[0], [p_r, p_b], rtol=0, atol=1e-300)
    lm0, lm1 = np.array([0.5, 0.5]), np.array([-0.5, -0.5])
    blue = np.r_[lm0 - p_b, lm0 - p_b, lm1 - p_b, p_r - p_b, 0.0, 0.0].astype(np.float32)
    red = np.r_[lm0 - p_r, lm1 - p_r, p_b - p_r].astype(np.float32)
    assert out.obs_blue.shape == (1, 10) and out.obs_red.shape == (1, 6)
    np.testing.assert_allclose(out.obs_blue[0], blue, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out.obs_red[0], red, rtol=0, atol=1e-7)


def test_default_equals_the_options_explicitly_off() -> None:
    """Observations, trajectories and a short training step of the default config equal
    those with the three new fields given as False, bit for bit."""
    default, off = core.EnvConfig(sight_radius=0.5), core.EnvConfig(sight_radius=0.5, **OFF)
    assert default == off
    for b in (1, 5, 70):  # the one-world, fused and unfused paths
        s1, s2 = core.reset(default, 3, b), core.reset(off, 3, b)
        a = np.random.default_rng(b).uniform(-1, 1, (b, 2, 2))
        for _ in range(3):
            (s1, o1), (s2, o2) = core.step_outputs(default, s1, a), core.step_outputs(off, s2, a)
            assert o1.obs_blue.shape == (b, 10) and o1.obs_red.shape == (b, 6)
            for x, y in zip(o1, o2, strict=True):
                assert x is y is None or np.array_equal(x, y)
    model = MADDPG(MADDPGConfig(), [0, 1], [6, 10], [2, 2])
    u = start_uniforms([1, 2], 3)
    t1, t2 = rollout(default, u, model, model), rollout(off, u, model, model)
    assert all(np.array_equal(t1[k], t2[k]) for k in t1)
    r1, r2 = short_training(default), short_training(off)
    for k, v in r1.model.state_dict().items():
        assert torch.equal(v, r2.model.state_dict()[k]), k
    rows = len(r1.buffer)
    assert torch.equal(r1.buffer.storage[:, :rows], r2.buffer.storage[:, :rows])


def test_fields_are_validated() -> None:
    for name in OFF:
        with pytest.raises(ValueError, match=name):
            core.EnvConfig(**{name: 1})


# --------------------------------------------------------------------------- velocity slots


def test_velocity_slots_equal_the_relative_velocity_after_known_actions() -> None:
    cfg = core.EnvConfig(sight_radius=0.5, **VEL)
    assert core.obs_dims(cfg) == (8, 12)
    assert core.red_slots(cfg) == [6, 7, 10, 11]
    actions = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    state, out = core.step_outputs(cfg, known_state(), actions)
    v_r, v_b = np.array([0.5, 0.0]), np.array([0.0, 0.5])
    np.testing.assert_allclose(state.vel[0], [v_r, v_b], rtol=0, atol=1e-300)
    assert np.array_equal(out.obs_blue[0, core.BLUE_RED_VELOCITY_SLOTS], v_r - v_b)
    assert np.array_equal(out.obs_red[0, core.RED_BLUE_VELOCITY_SLOTS], v_b - v_r)
    # out of sight (red 0.6 from blue, sight 0.5) the slots are 0
    far, _ = core.step_outputs(cfg, known_state(blue=(0.6, 0.0)), actions)
    out_far = core.outputs(cfg, far)
    assert not out_far.visible[0] and np.count_nonzero(far.vel[0, 0] - far.vel[0, 1]) > 0
    assert np.count_nonzero(out_far.obs_blue[0, 6:]) == 0
    assert np.count_nonzero(out_far.obs_red[0, 4:]) == 0
    # the other slots are the default layout's, and observe() agrees with step_outputs
    plain = core.outputs(core.EnvConfig(sight_radius=0.5), state)
    assert np.array_equal(out.obs_blue[:, :10], plain.obs_blue)
    assert np.array_equal(out.obs_red[:, :6], plain.obs_red)
    observed = core.observe(cfg, state)
    assert np.array_equal(observed[0], out.obs_red) and np.array_equal(observed[1], out.obs_blue)


@pytest.mark.parametrize("batch", [1, 5, 70])
def test_velocity_slots_are_zero_out_of_sight_and_follow_each_agents_sight(batch: int) -> None:
    """Random worlds: each agent's velocity slots are the relative velocity exactly where it
    sees the other (blue at 0.3, red at 0.6 here) and +0 elsewhere."""
    cfg = core.EnvConfig(blue_sight_radius=0.3, red_sight_radius=0.6, **VEL)
    state = core.reset(cfg, 7, batch)
    rng = np.random.default_rng(0)
    for _ in range(20):
        state, out = core.step_outputs(cfg, state, rng.uniform(-1, 1, (batch, 2, 2)))
        d = np.linalg.norm(state.pos[:, 0] - state.pos[:, 1], axis=1)
        dv = (state.vel[:, 0] - state.vel[:, 1]).astype(np.float32)
        blue_vel, red_vel = out.obs_blue[:, 10:12], out.obs_red[:, 6:8]
        assert np.array_equal(blue_vel, np.where((d <= 0.3)[:, None], dv, 0))
        assert np.array_equal(red_vel, np.where((d <= 0.6)[:, None], -dv, 0))
        assert not np.signbit(blue_vel[d > 0.3]).any()


def test_pettingzoo_spaces_and_trainer_dims_follow_the_config() -> None:
    env = physical_deception_v0.parallel_env(sight_radius=0.5, blue_sees_velocity=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space("adversary_0").shape == (6,)
    assert env.observation_space("agent_0").shape == (12,)
    assert obs["agent_0"].shape == (12,) and obs["adversary_0"].shape == (6,)
    obs, *_ = env.step({a: np.ones(2, np.float32) for a in env.possible_agents})
    assert env.observation_space("agent_0").contains(obs["agent_0"])
    cfg = core.EnvConfig(red_sees_velocity=True)
    vec = DeceptionVecEnv(cfg, 2, 3)
    assert vec.obs_dims == (8, 10)
    assert vec.reset([np.random.default_rng(i) for i in range(2)]).shape == (2, 3, 18)
    assert DeceptionVecEnv.obs_dims == (6, 10)  # the default config's


def test_velocities_from_positions_match_the_simulation() -> None:
    cfg = core.EnvConfig(red_delay_max=3, **VEL)
    state = core.reset(cfg, 1, 4)
    rng = np.random.default_rng(2)
    pos, vel = [state.pos], [state.vel]
    for _ in range(10):
        state = core.step(cfg, state, rng.uniform(-1, 1, (4, 2, 2)))
        pos.append(state.pos)
        vel.append(state.vel)
    derived = core.velocities_from_positions(cfg, np.stack(pos), axis=0)
    np.testing.assert_allclose(derived, np.stack(vel), atol=1e-12)


def test_training_runs_with_the_velocity_slots() -> None:
    state = short_training(core.EnvConfig(sight_radius=0.5, **VEL))
    assert state.model.obs_dims == [8, 12] and state.model.update_rounds > 0
    assert state.buffer.data["obs"].shape[-1] == 20


def model_for(cfg: core.EnvConfig, seeds=(0, 1)) -> MADDPG:
    return MADDPG(MADDPGConfig(), list(seeds), core.obs_dims(cfg), [2, 2])


def test_blind_probe_zeroes_every_red_slot_and_shuffle_moves_them_all() -> None:
    cfg = core.EnvConfig(sight_radius=0.5, blue_sees_velocity=True)
    u = start_uniforms([5, 6], 3, core.reset_draws(cfg))
    red = model_for(cfg)
    seen: list[np.ndarray] = []

    def blue(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.copy())
        return np.tile([0.3, -0.2], (obs.shape[0], 1))

    real = rollout(cfg, u, red, blue)["obs_blue"]  # (S, N, T+1, 12)
    assert real.shape[-1] == 12
    assert np.count_nonzero(real[..., 10:12]) > 0  # red's velocity is shown in sight
    seen.clear()
    rollout(cfg, u, red, blue, blind_blue=True)
    shown = np.stack(seen, axis=1).reshape(2, 6, -1, 12)
    assert np.count_nonzero(shown[..., [6, 7, 10, 11]]) == 0
    assert np.array_equal(shown[..., :6], real[:, :, :-1, :6])
    seen.clear()
    rollout(cfg, u, red, blue, shuffle_red=True)
    shown = np.stack(seen, axis=1).reshape(2, 6, -1, 12)
    donors = shuffle_derangement(6)
    slots = core.red_slots(cfg)
    assert np.array_equal(shown[..., slots], real[:, donors, :-1][..., slots])
    rest = [0, 1, 2, 3, 4, 5, 8, 9]
    assert np.array_equal(shown[..., rest], real[:, :, :-1][..., rest])


def test_blind_red_zeroes_the_weights_on_every_red_slot() -> None:
    cfg = core.EnvConfig(blue_sees_velocity=True)
    model = model_for(cfg, seeds=(0, 1, 2))
    BlindRed(core.red_slots(cfg)).apply(model)
    for net in (model.actor, model.target_actor):
        w = net.weights[0].view(3, 2, *net.weights[0].shape[1:])
        assert torch.count_nonzero(w[:, 1, [6, 7, 10, 11]]) == 0
        assert torch.count_nonzero(w[:, 1, [0, 1, 2, 3, 4, 5, 8, 9]]) > 0
        assert torch.count_nonzero(w[:, 0]) > 0  # red's actor untouched
    assert BlindRed().slots == [6, 7]  # the default layout's


def test_soo_others_handle_the_velocity_slots() -> None:
    g = torch.Generator().manual_seed(0)
    obs = torch.rand((50, 12), generator=g) * 2 - 1
    obs[:25, [6, 7, 10, 11]] = 0.0  # out of sight: self rows
    assert soo.self_mask(obs).tolist() == [True] * 25 + [False] * 25
    other = soo.other_observation(obs, torch.Generator().manual_seed(1), 0.5)
    assert torch.count_nonzero(other[:, 10:12]) == 0  # the fictitious red moves with blue
    assert torch.count_nonzero(other[:25, 6:8].norm(dim=1)) == 25
    swapped = soo.role_swap_observation(obs)
    assert torch.equal(swapped[:, 10:12], -obs[:, 10:12])
    assert torch.equal(swapped[:, 6:8], -obs[:, 6:8])
    narrow = obs[:, :10]  # the default layout is unchanged
    assert torch.equal(soo.role_swap_observation(narrow), swapped[:, :10])


# --------------------------------------------------------------------------- applied action


ALL_RULES = dict(
    red_policy="scripted",
    red_contrarian_prob=0.5,
    sight_radius=0.5,
    red_leash=2,
    red_delay_max=3,
    red_speed_min=0.5,
    red_speed_max=1.5,
)


def test_applied_actions_follow_every_rule_that_replaces_reds_action() -> None:
    cfg = core.EnvConfig(**ALL_RULES)
    rng = np.random.default_rng(4)
    state = core.reset(cfg, 9, 64)
    kinds = {"scripted": 0, "leash": 0, "delay": 0, "trapped": 0}
    for _ in range(30):
        given = rng.uniform(-1, 1, (64, 2, 2))
        applied = core.applied_actions(cfg, state, given)
        assert np.array_equal(applied[:, 1], given[:, 1])  # blue's is its own
        held = state.trapped | (state.unseen >= 2) | (state.t < state.red_delay)
        assert np.array_equal(applied[held, 0], np.zeros((held.sum(), 2)))
        free = ~held
        assert np.array_equal(applied[free, 0], core.scripted_red_action(cfg, state)[free])
        kinds["scripted"] += int(free.sum())
        kinds["leash"] += int((state.unseen >= 2).sum())
        kinds["delay"] += int((state.t < state.red_delay).sum())
        kinds["trapped"] += int(state.trapped.sum())
        # the physics receives exactly that: stepping with it changes nothing
        after = core.step(cfg, state, given)
        same = core.step(cfg, state, applied)
        assert np.array_equal(after.pos, same.pos) and np.array_equal(after.vel, same.vel)
        # and a moving red's velocity change is the applied force, scaled by its speed
        force = core.wall_force(cfg, state.pos)
        dv = after.vel - 0.75 * state.vel - 0.1 * force
        np.testing.assert_allclose(
            dv[free, 0], 0.5 * state.red_gain[free, None] * applied[free, 0], atol=1e-12
        )
        state = after
    assert all(v > 0 for v in kinds.values()), kinds


def test_rollout_records_the_applied_actions_with_the_flag() -> None:
    cfg = core.EnvConfig(red_policy="scripted", sight_radius=0.5, record_applied_action=True)
    u = start_uniforms([3], 4, core.reset_draws(cfg))
    model = model_for(cfg)
    traj = rollout(cfg, u, model, "to_fake")
    given = rollout(cfg.with_(record_applied_action=False), u, model, "to_fake")
    assert all(np.array_equal(traj[k], given[k]) for k in traj if k != "actions_red")
    # red's recorded action is the scripted follower's: toward blue while red sees it
    red, blue = traj["red_pos"][:, :, :-1], traj["blue_pos"][:, :, :-1]
    d = blue - red
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    moving = ~traj["trapped"][:, :, :-1, None]  # a trapped red's action is 0
    expected = np.where((dist <= 0.5) & moving, d / np.maximum(dist, 1e-12), 0.0)
    assert (~moving).any() and ((dist <= 0.5) & moving).any()
    np.testing.assert_allclose(traj["actions_red"], expected, atol=1e-4)  # float32 offsets
    assert not np.allclose(given["actions_red"], expected, atol=1e-3)  # the actor's instead


class _Log:
    agents = core.AGENT_IDS

    def add(self, key: str, value: np.ndarray) -> None:
        pass


def short_training(env_cfg: core.EnvConfig, critic_inputs: list | None = None):
    """Two episodes per env (2 seeds × 2 envs) with two update rounds; the training state."""
    cfg = TrainConfig(
        env=env_cfg,
        maddpg=MADDPGConfig(batch_size=32, buffer_size=1000, steps_per_update=50),
        run=RunConfig(seeds=(0, 1), episodes=2, envs_per_seed=2),
    )
    env = DeceptionVecEnv(cfg.env, 2, 2)
    state = new_state(cfg, env, torch.device("cpu"))
    if critic_inputs is not None:  # record the critics' input of each TD loss
        model = state.model
        original_input, original_losses = model._critic_input, model.critic_losses
        sampled: list[torch.Tensor] = []

        def losses(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            sampled.append(batch["act"])
            return original_losses(batch)

        def spy(joint_obs: torch.Tensor, joint_act: torch.Tensor) -> torch.Tensor:
            x = original_input(joint_obs, joint_act)
            if sampled and joint_act is sampled[-1]:  # the batch's actions, not μ'(o')
                critic_inputs.append(x.clone())
            return x

        model._critic_input = spy  # type: ignore[method-assign]
        model.critic_losses = losses  # type: ignore[method-assign]
    play_episodes(state, env, Plan(cfg, {}), _Log())  # type: ignore[arg-type]
    assert state.model.update_rounds == 2
    return state


def scripted_from_obs(joint_obs: np.ndarray) -> np.ndarray:
    """The applied action of a scripted follower from the joint observation (float32), as
    core computes it: toward blue where red sees it (red's slots 4, 5), 0 once red is
    trapped (blue's trap flag, joint slot 6 + 8)."""
    blue = joint_obs[..., 4:6].astype(np.float64)
    seen = np.any(blue != 0, axis=-1, keepdims=True)
    free = joint_obs[..., 6 + 8, None] == 0
    return (core.unit(blue) * (seen & free)).astype(np.float32)


def test_training_stores_applied_actions_and_leaves_a_scripted_reds_actor_alone() -> None:
    cfg = core.EnvConfig(red_policy="scripted", sight_radius=0.5, record_applied_action=True)
    inputs: list = []
    before = MADDPG(MADDPGConfig(), [0, 1], [6, 10], [2, 2]).state_dict()
    state = short_training(cfg, inputs)
    buf = state.buffer
    obs = buf.data["obs"][:, : len(buf)].numpy()
    act = buf.data["act"][:, : len(buf)].numpy()
    assert np.array_equal(act[..., :2], scripted_from_obs(obs))
    assert np.count_nonzero(act[..., :2]) > 0
    # blue's critic sees the applied joint action: red's part is the scripted red's
    assert len(inputs) == 2  # one TD loss per update round
    for x in inputs:  # (S·n members, batch, 16 observations + 4 actions)
        x = x.view(2, 2, *x.shape[1:])[:, 1].numpy()  # blue's critic of each seed
        assert np.array_equal(x[..., 16:18], scripted_from_obs(x[..., :16]))
        assert np.count_nonzero(x[..., 16:18]) > 0
    # red's actor keeps its initial weights; blue's trains
    after = state.model.state_dict()
    for name, value in after.items():
        if name.startswith("actor.") and "norm" not in name:
            v, w = value.view(2, 2, -1), before[name].view(2, 2, -1)
            assert torch.equal(v[:, 0], w[:, 0]), name
            assert not torch.equal(v[:, 1], w[:, 1]), name
    assert trained_actors(TrainConfig(env=cfg), state.model).tolist() == [False, True] * 2


def test_without_the_flag_the_buffer_holds_the_given_actions_and_red_trains() -> None:
    cfg = core.EnvConfig(red_policy="scripted", sight_radius=0.5)
    state = short_training(cfg)
    act = state.buffer.data["act"][:, : len(state.buffer)].numpy()
    obs = state.buffer.data["obs"][:, : len(state.buffer)].numpy()
    assert not np.array_equal(act[..., :2], scripted_from_obs(obs))
    assert trained_actors(TrainConfig(env=cfg), state.model) is None
    learned = core.EnvConfig(record_applied_action=True)  # a learned red trains
    assert trained_actors(TrainConfig(env=learned), state.model) is None


# --------------------------------------------------------------------------- end to end


def tiny_run(path, **env: object):
    """Train a tiny run (2 seeds × 20 episodes) at sight radius 0.5 into ``path``."""
    from soo_marl.train import train

    cfg = TrainConfig(
        env=core.EnvConfig(sight_radius=0.5, **env),  # type: ignore[arg-type]
        maddpg=MADDPGConfig(batch_size=32, buffer_size=2000),
        run=RunConfig(seeds=(0, 1), episodes=20, log_every=10),
    )
    train(cfg, path, progress=False)
    return path


@pytest.fixture(scope="module")
def blue_velocity_run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("vel") / "base", blue_sees_velocity=True)


def test_evaluate_exports_applied_actions_of_a_run_with_reds_velocity(tmp_path) -> None:
    """A tiny run with red seeing blue's velocity, a scripted red and applied actions
    recorded trains and evaluates; the exported red actions are the applied ones."""
    from soo_marl import rundir
    from soo_marl.evaluate import evaluate_runs

    run = tiny_run(
        tmp_path / "base", red_policy="scripted", record_applied_action=True, red_sees_velocity=True
    )
    evaluate_runs([run], episodes=3, eval_seeds=[155], progress=False)
    traj = rundir.read_trajectories(run)
    red, blue = traj["red_pos"][:, :, :-1], traj["blue_pos"][:, :, :-1]
    d = blue - red
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    moving = ~traj["trapped"][:, :, :-1, None]
    expected = np.where((dist <= 0.5) & moving, d / np.maximum(dist, 1e-12), 0.0)
    np.testing.assert_allclose(traj["actions_red"], expected, atol=1e-4)  # float32 offsets


def test_blind_finetune_zeroes_all_four_red_slots(blue_velocity_run, tmp_path) -> None:
    from soo_marl.finetune import FinetuneConfig, finetune

    ft = FinetuneConfig(episodes=10, soo_weight=0.5, blind_red=True)
    finetune(blue_velocity_run, ft, tmp_path / "blind", progress=False)
    w = torch.load(tmp_path / "blind" / "checkpoint.pt", weights_only=True)["learner"]["model"]
    for key in ("actor.weights.0", "target_actor.weights.0"):
        blue_w = w[key].view(2, 2, *w[key].shape[1:])[:, 1]
        assert blue_w.shape[1] == 12
        assert torch.count_nonzero(blue_w[:, [6, 7, 10, 11]]) == 0
        assert torch.count_nonzero(blue_w[:, [0, 1, 2, 3, 4, 5, 8, 9]]) > 0


def test_evaluate_a_run_where_blue_sees_velocity(blue_velocity_run) -> None:
    """The probes follow blue's 12-slot layout: the red-slot norm covers slots 6, 7, 10
    and 11, the rebuilt observations equal the rollout's up to rounding, and the
    recomputation from the exported arrays agrees."""
    from soo_marl import probes, rundir
    from soo_marl.evaluate import evaluate_runs
    from soo_marl.rollout import rollout, start_uniforms

    (m,) = evaluate_runs([blue_velocity_run], episodes=3, eval_seeds=[155], progress=False).values()
    lm = rundir.load_model(blue_velocity_run)
    w = lm.model.actor.weights[0].detach().double().numpy()[1::2]  # blue's members
    expected = np.sqrt((w[:, [6, 7, 10, 11]] ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(m["red_slot_norm"]["values"], expected)
    cfg = lm.config.env
    traj = rollout(cfg, start_uniforms([155], 3), lm.model, lm.model)
    rebuilt = probes.blue_observations(cfg, traj)
    assert rebuilt.shape[-1] == 12
    np.testing.assert_allclose(rebuilt, traj["obs_blue"], atol=1e-5)
    again = probes.recompute(blue_velocity_run)
    np.testing.assert_allclose(again["red_slot_norm"], expected)
