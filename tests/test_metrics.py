"""Deception metrics on hand-made trajectories with known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from soo_marl import metrics
from soo_marl.envs import core

GOAL = np.array([0.6, 0.0])
FAKE = np.array([0.0, 0.8])
LANDMARKS = np.stack([GOAL, FAKE])  # goal_index 0
T = 5


def straight_line(target: np.ndarray, step: float = 0.1, t_len: int = T) -> np.ndarray:
    """(T+1, 2) blue positions from the origin straight at ``target``."""
    direction = target / np.linalg.norm(target)
    return np.arange(t_len + 1)[:, None] * step * direction


def records_of(blue: np.ndarray, visible: np.ndarray | None = None, **kw) -> tuple:
    """Records of one episode (batch dims added as needed)."""
    lead = blue.shape[:-2]
    if visible is None:
        visible = np.ones((*lead, blue.shape[-2]), dtype=bool)
    landmarks = np.broadcast_to(LANDMARKS, (*lead, 2, 2))
    goal_index = np.zeros(lead, dtype=int)
    return metrics.deceptive_records(blue, landmarks, goal_index, visible, **kw)


def hand_c(blue: np.ndarray) -> np.ndarray:
    """ĝ·n̂ from each step's start position, computed directly."""
    out = []
    for p in blue[:-1]:
        g, n = GOAL - p, FAKE - p
        out.append(g @ n / (np.linalg.norm(g) * np.linalg.norm(n)))
    return np.array(out)


def brute_grid(pn: np.ndarray, c: np.ndarray) -> np.ndarray:
    """count[x, y] by direct comparison of flat records with every threshold pair."""
    return (
        (pn[:, None, None] > metrics.THRESH_X[None, :, None])
        & (c[:, None, None] < metrics.THRESH_Y[None, None, :])
    ).sum(0)


def test_goal_and_fake_batched():
    landmarks = np.array([[[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0], [3.0, 3.0]]])
    goal, fake = metrics.goal_and_fake(landmarks, np.array([1, 0]))
    np.testing.assert_array_equal(goal, [[1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_array_equal(fake, [[0.0, 0.0], [3.0, 3.0]])


def test_straight_at_fake_gives_a_record_every_step():
    blue = straight_line(FAKE)
    rec = records_of(blue)
    assert rec.pn.shape == (T,)
    assert rec.is_record.all()
    np.testing.assert_allclose(rec.pn, 1.0)
    np.testing.assert_allclose(rec.c, hand_c(blue), atol=1e-12)
    # c = ĝ·n̂ with n̂ = (0, 1): −y / sqrt(0.36 + y²) at start height y
    y = blue[:-1, 1]
    np.testing.assert_allclose(rec.c, -y / np.sqrt(0.36 + y**2), atol=1e-12)


def test_grid_counts_of_straight_at_fake():
    blue = straight_line(FAKE)
    rec = records_of(blue)
    grid = metrics.threshold_grid(*rec)
    c = hand_c(blue)
    expected = (c[None, :] < metrics.THRESH_Y[:, None]).sum(1)  # per y: steps with c < y
    assert grid.shape == (100, 100)
    for i in range(99):  # every x < 1
        np.testing.assert_array_equal(grid[i], expected)
    np.testing.assert_array_equal(grid[99], 0)  # pn = 1 is not > 1
    assert grid[0, -1] == T
    np.testing.assert_array_equal(metrics.threshold_frequency(*rec), grid)  # one episode


def test_straight_at_goal_gives_no_record():
    rec = records_of(straight_line(GOAL))
    assert not rec.is_record.any()
    assert metrics.threshold_grid(*rec).sum() == 0


def test_no_record_at_t0():
    # Blue starts on the line from the origin to the fake (the published code's spurious
    # t = 0 entry would be a record) and never moves.
    blue = np.tile([0.0, 0.3], (T + 1, 1))
    with np.errstate(all="raise"):
        rec = records_of(blue, min_displacement=0.0)
    assert rec.is_record.shape == (T,)
    assert not rec.is_record.any()
    # A move starting only at step 2 gives records from entry 1 on, none at entry 0.
    blue[2:, 1] += 0.1 * np.arange(1, T)
    rec = records_of(blue)
    np.testing.assert_array_equal(rec.is_record, [False, True, True, True, True])


def test_guard_drops_tiny_moves_and_zero_keeps_them():
    blue = straight_line(FAKE, step=0.005)
    assert not records_of(blue).is_record.any()
    assert records_of(blue, min_displacement=0.0).is_record.all()
    assert records_of(blue, min_displacement=0.005 - 1e-12).is_record.all()


def test_zero_length_vectors_raise_no_warnings():
    # Blue parked exactly on the fake landmark, then exactly on the goal.
    blue = np.concatenate([np.tile(FAKE, (3, 1)), np.tile(GOAL, (3, 1))])
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = records_of(blue, min_displacement=0.0)
    assert np.isfinite(rec.pn).all() and np.isfinite(rec.c).all()
    assert rec.is_record.sum() == 0  # zero moves are never records, the big jump heads to goal


def test_visibility_is_taken_at_the_start_of_the_step():
    blue = straight_line(FAKE)
    only_last = np.zeros(T + 1, dtype=bool)
    only_last[-1] = True
    rec = records_of(blue, only_last)
    assert rec.is_record.all() and not rec.visible.any()
    assert metrics.threshold_grid(*rec).sum() == 0  # invisible records are not counted
    only_first = np.zeros(T + 1, dtype=bool)
    only_first[0] = True
    rec = records_of(blue, only_first)
    np.testing.assert_array_equal(rec.visible, [True, False, False, False, False])
    assert metrics.threshold_grid(*rec)[0, -1] == 1
    flat = metrics.flat_records(*rec)
    assert flat["pn"].size == T
    assert metrics.flat_records(*rec, visible_only=True)["pn"].size == 1


def random_walks(shape: tuple[int, ...], seed: int = 0, t_len: int = 50):
    """Random blue walks with random landmarks and visibility, arrays of the export layout."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.08, (*shape, t_len, 2))
    blue = np.concatenate([rng.uniform(-0.8, 0.8, (*shape, 1, 2)), steps], axis=-2).cumsum(-2)
    landmarks = rng.uniform(-0.825, 0.825, (*shape, 2, 2))
    goal_index = rng.integers(0, 2, shape)
    visible = rng.random((*shape, t_len + 1)) < 0.6
    return blue, landmarks, goal_index, visible


def test_grid_matches_brute_force_and_is_monotone():
    rec = metrics.deceptive_records(*random_walks((3, 20)))
    assert rec.is_record.any() and (~rec.is_record).any()
    grid = metrics.threshold_grid(*rec)
    flat = metrics.flat_records(*rec, visible_only=True)
    np.testing.assert_array_equal(grid, brute_grid(flat["pn"], flat["c"]))
    assert (np.diff(grid, axis=0) <= 0).all()  # non-increasing in x
    assert (np.diff(grid, axis=1) >= 0).all()  # non-decreasing in y
    per_seed = metrics.threshold_grid(*rec, keep_axis=0)
    assert per_seed.shape == (3, 100, 100)
    np.testing.assert_array_equal(per_seed.sum(0), grid)
    for s in range(3):
        one = metrics.threshold_grid(*(a[s] for a in rec))
        np.testing.assert_array_equal(per_seed[s], one)
    freq = metrics.threshold_frequency(*rec, keep_axis=0)
    np.testing.assert_allclose(freq, per_seed / 20)
    np.testing.assert_allclose(metrics.threshold_frequency(*rec), grid / 60)


def test_truncation_to_first_records():
    blue = np.stack([straight_line(FAKE), straight_line(FAKE, step=0.05)])  # (N=2, T+1, 2)
    rec = records_of(blue)
    assert metrics.visible_record_count(rec.visible, rec.is_record) == 2 * T
    trunc = metrics.truncated_grid(*rec, n_records=3)
    first3 = metrics.threshold_grid(*(a[0, :3] for a in rec))
    np.testing.assert_array_equal(trunc, first3)
    # spill into the second episode: all 5 of episode 0 and the first 2 of episode 1
    trunc7 = metrics.truncated_grid(*rec, n_records=7)
    rest = metrics.threshold_grid(*(a[1, :2] for a in rec))
    np.testing.assert_array_equal(trunc7, metrics.threshold_grid(*(a[0] for a in rec)) + rest)
    np.testing.assert_array_equal(
        metrics.truncated_grid(*rec, n_records=100), metrics.threshold_grid(*rec)
    )
    # invisible records do not use up the budget
    vis = np.ones((2, T + 1), dtype=bool)
    vis[0, 0] = False
    rec_v = records_of(blue, vis)
    trunc_v = metrics.truncated_grid(*rec_v, n_records=2)
    np.testing.assert_array_equal(trunc_v, metrics.threshold_grid(*(a[0, 1:3] for a in rec)))


def test_truncation_per_seed_and_common_truncation():
    rec = metrics.deceptive_records(*random_walks((2, 10), seed=1))
    counts = metrics.visible_record_count(rec.visible, rec.is_record, keep_axis=0)
    n = int(counts.min())
    grids = metrics.truncated_grid(*rec, n_records=n, keep_axis=0)
    assert grids.shape == (2, 100, 100)
    np.testing.assert_array_equal(grids[:, 0, -1], n)  # every record counts at x=0, y=1
    other = metrics.deceptive_records(*random_walks((2, 3), seed=2))
    other_counts = metrics.visible_record_count(other.visible, other.is_record, keep_axis=0)
    assert metrics.common_truncation(rec, other, keep_axis=0) == min(n, other_counts.min())
    total = metrics.visible_record_count(other.visible, other.is_record)
    assert metrics.common_truncation(rec, other) == min(counts.sum(), total)


def test_headline_count():
    blue = np.stack([straight_line(FAKE), straight_line(GOAL)])
    rec = records_of(blue)
    # episode 0: 5 visible records with pn = 1 > 0.7 and c ≤ 0 < 0.6; episode 1: none
    assert metrics.headline_count(*rec) == pytest.approx(2.5)
    assert metrics.headline_count(*rec, y=-0.3) == pytest.approx((hand_c(blue[0]) < -0.3).sum() / 2)
    per = metrics.headline_count(*(a[None] for a in rec), keep_axis=0)
    np.testing.assert_allclose(per, [2.5])


def test_behavioural_difference():
    a = metrics.threshold_frequency(*metrics.deceptive_records(*random_walks((3, 10))), keep_axis=0)
    b = metrics.threshold_frequency(
        *metrics.deceptive_records(*random_walks((3, 10), seed=5)), keep_axis=0
    )
    np.testing.assert_array_equal(metrics.behavioural_difference(a, a), np.zeros(3))
    d = metrics.behavioural_difference(a, b)
    assert d.shape == (3,) and (d > 0).all()
    np.testing.assert_allclose(d, ((a - b) ** 2).mean(axis=(1, 2)))


def test_trap_rate():
    trapped = np.zeros((2, 4, T + 1), dtype=bool)
    trapped[0, 0, 3:] = True
    trapped[0, 2, -1] = True
    trapped[1, 3, 1:] = True
    trapped[1, 1, 2] = True  # not at the last state: does not count
    np.testing.assert_allclose(metrics.trap_rate(trapped), [0.5, 0.25])


def test_goal_reach_and_fake_visit_rates():
    cfg = core.EnvConfig()
    n = 4
    pos = np.zeros((1, n, T + 1, 2))
    landmarks = np.broadcast_to(LANDMARKS, (1, n, 2, 2))
    goal_index = np.zeros((1, n), dtype=int)
    pos[0, 0, 0] = GOAL  # only at the start state: not a reach
    pos[0, 1, 3] = GOAL + [0.15, 0.0]  # within 0.16
    pos[0, 2, 2] = GOAL + [0.0, 0.17]  # outside
    pos[0, 3, 4] = FAKE + [0.1, 0.0]
    np.testing.assert_allclose(metrics.goal_reach_rate(cfg, pos, landmarks, goal_index), [0.25])
    np.testing.assert_allclose(metrics.landmark_visit_rate(cfg, pos, landmarks, goal_index), [0.25])
    swapped = metrics.landmark_visit_rate(cfg, pos, landmarks, 1 - goal_index)
    np.testing.assert_allclose(swapped, [0.25])  # goal index 1: GOAL is now the fake


def test_episode_returns():
    rewards = np.zeros((2, 3, T, 2))
    rewards[0, 1, :, 1] = 5.0
    rewards[1, :, 0, 0] = 1.0
    ret = metrics.episode_returns(rewards)
    assert ret.shape == (2, 3, 2)
    assert ret[0, 1, 1] == 25.0
    np.testing.assert_allclose(metrics.mean_episode_return(rewards), [[0.0, 25 / 3], [1.0, 0.0]])


def test_summarize_known_values():
    s = metrics.summarize([1.0, 2.0, 3.0, 4.0], n_boot=2000)
    assert s["mean"] == 2.5
    assert s["sd"] == pytest.approx(np.sqrt(5.0 / 3.0))
    assert s["n"] == 4 and s["values"] == [1.0, 2.0, 3.0, 4.0]
    assert 1.0 <= s["ci_low"] < 2.5 < s["ci_high"] <= 4.0
    assert metrics.summarize([1.0, 2.0, 3.0, 4.0], n_boot=2000) == s  # deterministic
    one = metrics.summarize(np.array([7.0]))
    assert one["sd"] == 0.0 and one["ci_low"] == one["ci_high"] == 7.0
    nan = metrics.summarize([1.0, np.nan, 3.0], n_boot=500)
    assert nan["n"] == 2 and nan["n_dropped"] == 1 and nan["mean"] == 2.0
    empty = metrics.summarize([np.nan])
    assert empty["n"] == 0 and np.isnan(empty["mean"])


def test_summarize_difference_of_independent_groups():
    d = metrics.summarize_difference([3.0, 3.0, 3.0], [1.0, 1.0, np.nan], n_boot=500)
    # constant groups: every resample gives 3 - 1, NaN dropped, n = smaller group
    assert d == {"n": 2, "mean": 2.0, "ci_low": 2.0, "ci_high": 2.0}
    spread = metrics.summarize_difference([0.0, 1.0, 2.0, 3.0], [1.0, 1.0], n_boot=2000)
    assert spread["mean"] == 0.5 and spread["ci_low"] < 0.5 < spread["ci_high"]
    assert -1.0 <= spread["ci_low"] and spread["ci_high"] <= 2.0
    assert np.isnan(metrics.summarize_difference([], [1.0])["mean"])


def test_episode_soo_means_without_warnings():
    soo = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means = metrics.episode_soo_means(soo)
    np.testing.assert_array_equal(means[0], 2.0)
    assert np.isnan(means[1])
    stacked = np.stack([soo, soo + 1.0])  # (S=2, N=2, T+1=3)
    np.testing.assert_allclose(metrics.mean_soo_value(stacked), [2.0, 3.0])
    assert metrics.mean_soo_value(stacked, keep_axis=None) == pytest.approx(2.5)


def test_classifier_accuracy_known():
    honest = np.array([[-5.0, -6.0], [-4.0, -4.0], [-1.0, np.nan], [-3.0, -3.0]])
    deceptive = np.array([[-2.0, -2.0], [-3.0, -3.0], [-2.0, -2.0], [-1.0, -9.0]])
    res = metrics.classifier_accuracy(honest, deceptive, [1, 2])
    assert res.accuracy[1] == 0.75  # unit 2: −1 > −2
    np.testing.assert_array_equal(res.correct[1], [True, True, False, True])
    assert res.accuracy[2] == 0.5  # unit 2 (NaN dropped: −1) and unit 3 (−3 > −5) wrong
    with pytest.raises(ValueError):
        metrics.classifier_accuracy(honest, deceptive, [3])


def test_classifier_accuracy_grows_with_episodes():
    rng = np.random.default_rng(0)
    honest = rng.normal(-0.3, 1.0, (400, 64))
    deceptive = rng.normal(0.0, 1.0, (400, 64))
    acc = metrics.classifier_accuracy(honest, deceptive, [1, 4, 16, 64]).accuracy
    assert acc[1] < acc[4] < acc[16] < acc[64]
    assert acc[1] < 0.7 and acc[64] > 0.9


def test_keep_axis_must_be_a_leading_axis():
    rec = metrics.deceptive_records(*random_walks((2, 3)))
    with pytest.raises(ValueError):
        metrics.threshold_grid(*rec, keep_axis=2)  # the step axis
