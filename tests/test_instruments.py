"""The instruments of docs/spec.md §3.10–§3.12 and §4.4–§4.8 on known answers: the
blind-blue probe, SOO value by trap state, the SOO fine-tuning variants and the
honest-reward positive control."""

from pathlib import Path

import numpy as np
import pytest
import torch

from soo_marl import metrics, rundir, soo
from soo_marl.evaluate import evaluate_runs
from soo_marl.finetune import FinetuneConfig, finetune, finetune_plan
from soo_marl.objectives import AuthorsSooStep, LiveStep, SooTerm
from soo_marl.rollout import rollout, start_uniforms
from soo_marl.train import new_state
from soo_marl.vecenv import DeceptionVecEnv

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"


@pytest.fixture(scope="module")
def parent(tiny_r05_root):
    """A tiny deceptive baseline at sight radius 0.5 (2 seeds; tests/conftest.py)."""
    return tiny_r05_root / "deceptive"


# --------------------------------------------------------------------------- blind probe


def test_blue_that_ignores_red_has_closed_loop_share_exactly_zero(parent, tmp_path):
    run = tmp_path / "deaf"
    run.mkdir()
    state = torch.load(parent / "final_model.pt", weights_only=True)
    w = state["model"]["actor.weights.0"]  # (members, 10, 64); blue is every second member
    w[1::2, 6:8] = 0.0  # blue's first layer no longer reads red's slots
    torch.save(state, run / "final_model.pt")
    (run / "config.yaml").write_text((parent / "config.yaml").read_text())
    m = evaluate_runs([run], episodes=20, eval_seeds=[155, 714], progress=False)["deceptive r0.5"]
    assert m["closed_loop_share"]["values"] == [0.0, 0.0]
    assert m["blind"]["trap_rate"]["values"] == m["metrics"]["trap_rate"]["values"]
    assert m["blind"]["luring_delta_trap"]["values"] == m["luring_delta_trap"]["values"]
    assert set(m["blind"]) == {
        "trap_rate", "luring_delta_trap", "blue_at_fake", "blue_goal_rate", "red_goal_rate"
    }  # fmt: skip
    assert m["blind"]["red_goal_rate"]["values"] == m["metrics"]["red_goal_rate"]["values"]


def _to_fake_while_red_in_sight(obs_blue: np.ndarray) -> np.ndarray:
    """Scripted closed-loop lure: head for the fake landmark while red is in sight, for the
    goal otherwise (fake = whichever landmark is not the goal)."""
    goal, l0, l1 = obs_blue[:, 0:2], obs_blue[:, 2:4], obs_blue[:, 4:6]
    fake = np.where(np.all(goal == l0, axis=1, keepdims=True), l1, l0)
    sees_red = np.any(obs_blue[:, 6:8] != 0, axis=1, keepdims=True)
    target = np.where(sees_red, fake, goal)
    return target / np.maximum(np.linalg.norm(target, axis=1, keepdims=True), 1e-12)


def test_blue_that_lures_only_while_it_sees_red_has_a_positive_closed_loop_share():
    lm = rundir.load_model(MODELS / "paper_r0.5" / "deceptive")  # reds that follow blue
    cfg = lm.config.env
    u = start_uniforms([155, 714], 100)
    trap = {
        blind: metrics.trap_rate(
            rollout(cfg, u, lm.model, _to_fake_while_red_in_sight, blind_blue=blind)["trapped"]
        )
        for blind in (False, True)
    }
    to_goal = metrics.trap_rate(rollout(cfg, u, lm.model, "to_goal")["trapped"])
    luring, blind_luring = trap[False] - to_goal, trap[True] - to_goal
    assert np.allclose(blind_luring, 0.0)  # blind, it is the to_goal blue
    assert (luring - blind_luring).mean() > 0.1 and (luring - blind_luring).min() > 0


# ---------------------------------------------------------------- SOO value by trap state


def test_soo_value_by_trap_state_on_hand_made_trajectories():
    nan = np.nan
    # 2 seeds × 1 episode × 5 states; NaN = red in sight
    soo_value = np.array([[[nan, -2.0, -4.0, -6.0, -8.0]], [[-1.0, -1.0, nan, -3.0, -3.0]]])
    trapped = np.array([[[0, 0, 1, 1, 1]], [[0, 0, 0, 0, 1]]], dtype=bool)
    pre = metrics.soo_rows(soo_value, trapped, "pre-trap")
    post = metrics.soo_rows(soo_value, trapped, "post-trap")
    assert metrics.mean_soo_value(pre).tolist() == [-2.0, -5.0 / 3.0]
    assert metrics.mean_soo_value(post).tolist() == [-6.0, -3.0]
    assert metrics.mean_soo_value(soo_value).tolist() == [-5.0, -2.0]
    assert metrics.post_trap_fraction(soo_value, trapped).tolist() == [0.75, 0.25]
    assert metrics.post_trap_fraction(soo_value, trapped, keep_axis=None) == 4 / 8


def test_evaluate_exports_soo_by_trap_state_and_the_soo_radius(parent):
    m = evaluate_runs([parent], episodes=10, eval_seeds=[155], progress=False)["deceptive r0.5"]
    tr = rundir.read_trajectories(parent)
    assert m["soo_radius"] == 0.5
    flag_kept, zeroed = tr["soo_value_flag_kept"], tr["soo_value"]
    assert np.array_equal(np.isnan(flag_kept), np.isnan(zeroed))
    untrapped = ~tr["trapped"] & ~np.isnan(zeroed)
    # before the trap the flag is 0 in both observations: same fictitious reds, same value
    assert np.array_equal(flag_kept[untrapped], zeroed[untrapped])
    pre = metrics.mean_soo_value(metrics.soo_rows(zeroed, tr["trapped"], "pre-trap"))
    saved = np.asarray(m["metrics"]["soo_value_pre_trap"]["values"], dtype=float)
    assert np.allclose(saved, pre, equal_nan=True)
    frac = metrics.post_trap_fraction(zeroed, tr["trapped"])
    saved = np.asarray(m["metrics"]["post_trap_fraction"]["values"], dtype=float)
    assert np.allclose(saved, frac, equal_nan=True)


# --------------------------------------------------------------------------- SOO variants


def test_keep_trap_flag_leaves_slots_8_9_equal():
    obs = torch.zeros(6, 10)
    obs[:, 8:10] = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0], [1.0]])
    g = torch.Generator().manual_seed(0)
    kept = soo.other_observation(obs, g, 0.5, keep_trap_flag=True)
    zeroed = soo.other_observation(obs, torch.Generator().manual_seed(0), 0.5)
    assert torch.equal(kept[:, 8:10], obs[:, 8:10])
    assert torch.count_nonzero(zeroed[:, 8:10]) == 0
    assert torch.equal(kept[:, :8], zeroed[:, :8])  # same fictitious red


def _tuning(parent, **ft):
    plan = finetune_plan(parent, FinetuneConfig(episodes=20, **ft), device="cpu")
    env = DeceptionVecEnv(plan.config.env, 2, plan.config.run.envs_per_seed)
    state = new_state(plan.config, env, torch.device("cpu"))
    plan.start(state)
    return plan, state


def test_pre_trap_rows_get_no_gradient_from_post_trap_rows(parent):
    plan, state = _tuning(parent, soo_rows="pre-trap", anchor_weight=0.0)
    term = next(p for p in plan.objectives if isinstance(p, SooTerm))
    batch = state.buffer.sample([np.random.default_rng(0)] * 2, 64, True)
    obs = batch["obs"].clone()
    obs[..., 6 + 6 : 6 + 8] = 0.0  # every row out of sight
    obs[:, ::2, 6 + 8 : 6 + 10] = 1.0  # every second row after the trap …
    obs[:, 1::2, 6 + 8 : 6 + 10] = 0.0  # … the others before it
    obs.requires_grad_(True)
    loss = term.actor_loss(state.model, {**batch, "obs": obs})
    (grad,) = torch.autograd.grad(loss.sum(), obs)
    assert torch.count_nonzero(grad[:, ::2]) == 0
    assert torch.count_nonzero(grad[:, 1::2]) > 0
    assert torch.allclose(term.logs()["soo/out_of_sight_fraction"], torch.tensor([0.5, 0.5]))


def test_log_distance_is_the_mean_soo_value_of_the_rows():
    h_self, h_other = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 0, 0, 1]] * 3, dtype=torch.bool)
    log_loss = soo.soo_loss(h_self, h_other, mask, "log")
    expected = soo.soo_value(h_self, h_other)[:, [0, 1, 4]].mean(1)
    assert torch.allclose(log_loss, expected)


def test_soo_radius_defaults_to_the_sight_radius(parent):
    plan = finetune_plan(parent, FinetuneConfig(episodes=20), device="cpu")
    assert plan.meta["finetune"]["soo_radius"] == 0.5
    term = next(p for p in plan.objectives if isinstance(p, SooTerm))
    assert term.radius == 0.5
    given = finetune_plan(parent, FinetuneConfig(episodes=20, soo_radius=0.2), device="cpu")
    assert given.meta["finetune"]["soo_radius"] == 0.2


def test_honest_reward_pays_no_trap_bonus(parent, tmp_path):
    ft = FinetuneConfig(episodes=40, reward="honest", soo_weight=0.0, reuse_buffer=False)
    finetune(parent, ft, tmp_path / "pos", progress=False)
    config, meta = rundir.read_config(tmp_path / "pos")
    assert config.env.baseline == "honest" and meta["condition"] == "no-soo+honest-reward"
    plan, state = _tuning(parent, reward="honest", soo_weight=0.0, reuse_buffer=False)
    env = DeceptionVecEnv(plan.config.env, 2, 10)
    env.reset([np.random.default_rng(0)] * 2)
    env.state.trapped[:] = True  # a trapped red: the deceptive reward would pay +10 here
    _, rewards, _ = env.step(np.zeros((2, 10, 4)))
    assert set(np.unique(rewards[..., 1])) <= {0.0, 5.0}


def test_authors_step_fires_at_most_once_per_round_and_never_when_red_is_in_sight(parent):
    plan, state = _tuning(parent, style="authors")
    assert plan.meta["finetune"]["noise"] == "restart"
    assert plan.meta["finetune"]["reuse_buffer"] is False and len(state.buffer) == 0
    step = next(p for p in plan.objectives if isinstance(p, AuthorsSooStep))
    model = state.model
    obs = torch.zeros(2, 10, 16)
    obs[..., 6:12] = torch.rand(2, 10, 6)  # blue sees goal and landmarks
    obs[0, :, 12:14] = 0.1  # seed 0: red in sight in every env
    noise = np.zeros((2, 10, 4))
    before = [p.detach().clone() for p in model.actor.parameters()]
    steps = model.actor_opt.steps.clone()
    step.before_round(model, LiveStep(obs, noise, noise, round_index=3))
    assert step.fired == 1  # seed 1 only, once
    assert (model.actor_opt.steps - steps).view(2, 2).tolist() == [[0, 0], [0, 1]]
    for p, b in zip(model.actor.parameters(), before, strict=True):
        members = p.view(2, 2, *p.shape[1:])
        old = b.view(2, 2, *b.shape[1:])
        assert torch.equal(members[0], old[0])  # seed 0 (red in sight): nothing moved
        assert torch.equal(members[1, 0], old[1, 0])  # red's actor never moves
    assert any(
        not torch.equal(p.view(2, 2, *p.shape[1:])[1, 1], b.view(2, 2, *b.shape[1:])[1, 1])
        for p, b in zip(model.actor.parameters(), before, strict=True)
    )


def test_authors_style_through_the_loop(parent, tmp_path):
    """The logged firing share of each history row, times that row's update rounds, adds up
    per seed to the extra Adam steps blue's actor took: one per firing, none for red."""
    ft = FinetuneConfig(episodes=60, style="authors")
    result = finetune(parent, ft, tmp_path / "authors", progress=False)
    assert result.episodes_done == 60
    hist = rundir.read_history(tmp_path / "authors")
    learner = torch.load(tmp_path / "authors" / "checkpoint.pt", weights_only=True)["learner"]
    # 60 episodes × 50 steps, a round per 100 steps: 30 rounds, 10 in each 20-episode row
    assert learner["update_rounds"] == 30 and [row["episode"] for row in hist] == [20, 40, 60]
    fired = np.array([row["soo/authors_fired"] for row in hist])  # (rows, seeds)
    firings = np.rint(fired * 10).sum(axis=0)
    assert np.allclose(fired * 10, np.rint(fired * 10), atol=1e-5)  # whole rounds
    steps = learner["actor_opt"]["steps"].view(2, 2)  # (seed, red/blue): parent's + this run's
    assert firings.tolist() == (steps[:, 1] - steps[:, 0]).tolist()
    assert 0 < firings.sum() and (firings <= 30).all()  # fired, at most once per round
    assert rundir.read_config(tmp_path / "authors")[1]["condition"] == "authors-soo"


def test_finetune_settings_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="--fresh-buffer"):
        FinetuneConfig(reward="honest", reuse_buffer=True)
    assert FinetuneConfig(reward="honest").reuse_buffer is False
    with pytest.raises(ValueError, match="--keep-trap-flag"):
        FinetuneConfig(style="authors", keep_trap_flag=True)
    authors = FinetuneConfig(style="authors")
    assert (authors.soo_layers, authors.soo_distance, authors.noise) == ("action", "log", "restart")
    ours = FinetuneConfig()
    assert (ours.soo_layers, ours.soo_distance, ours.noise, ours.reuse_buffer) == (
        "h1h2",
        "mse",
        "continue",
        True,
    )
    assert rundir.finetune_dir("runs/dec", FinetuneConfig(soo_weight=0).condition).name == (
        "dec_nosoo"
    )
    assert rundir.finetune_dir("runs/dec", authors.condition).name == "dec_authors-soo"


def test_summaries_keep_seeds_aligned_when_a_value_is_nan():
    s = metrics.summarize([0.1, np.nan, 0.3])
    assert s["values"] == [0.1, None, 0.3] and s["n"] == 2 and s["n_dropped"] == 1
    assert s["mean"] == pytest.approx(0.2)


def test_cross_play_only_with_the_named_runs(parent, tmp_path):
    other = tmp_path / "copy"
    other.mkdir()
    for f in ("final_model.pt", "config.yaml"):
        (other / f).write_bytes((parent / f).read_bytes())
    res = evaluate_runs(
        [parent, other], episodes=4, eval_seeds=[155], progress=False, cross_with=[parent]
    )
    by_run = {Path(r["run"]).name: r for r in res.values()}
    assert list(by_run["copy"]["cross_play"]) == [by_run["deceptive"]["label"]]
    assert by_run["deceptive"]["cross_play"] == {}  # its own red is not a partner
    with pytest.raises(ValueError, match="--cross-with"):
        evaluate_runs([parent], episodes=4, eval_seeds=[155], progress=False, cross_with=[other])
