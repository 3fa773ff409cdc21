"""The mechanism controls of docs/spec.md §3.13: the sham and role-swap other observations
and surgical blinding, against the environment's own observations and a real fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_finetune import Tuning

from soo_marl import soo
from soo_marl.envs import core
from soo_marl.finetune import FinetuneConfig, finetune


def _state(red, blue, trapped=False, lm0=(0.6, 0.6), lm1=(-0.6, 0.6)) -> core.State:
    return core.State(
        pos=np.array([[red, blue]], dtype=np.float64),
        vel=np.zeros((1, 2, 2)),
        landmarks=np.array([[lm0, lm1]], dtype=np.float64),
        goal_index=np.array([1]),
        trapped=np.array([trapped]),
        t=0,
    )


@pytest.mark.parametrize("trapped", [False, True])
def test_role_swap_is_blues_view_from_reds_place(trapped):
    """Blue at b, red at r (in sight): the role-swapped observation is the observation the
    environment gives a blue standing at r with red at b."""
    cfg = core.EnvConfig(sight_radius=0.5)
    red, blue = (0.1, -0.2), (-0.15, 0.05)
    _, seen = core.observe(cfg, _state(red, blue, trapped))
    _, swapped = core.observe(cfg, _state(blue, red, trapped))
    assert np.all(seen[0, core.BLUE_RED_SLOTS] != 0)  # red in sight
    got = soo.role_swap_observation(torch.as_tensor(seen)).numpy()
    np.testing.assert_allclose(got, swapped, atol=1e-6)
    assert got[0, 8] == got[0, 9] == float(trapped)
    assert bool(soo.in_sight_mask(torch.as_tensor(seen))[0])


def test_rows_of_each_other_observation():
    """Role-swap uses rows with red in sight (before the trap with pre-trap); the sham
    flips slot 9 alone on the same rows as the fictitious red."""
    cfg = core.EnvConfig(sight_radius=0.5)
    rows = [
        core.observe(cfg, _state(r, (0.0, 0.0), t))[1][0]
        for r, t in [((0.2, 0.1), False), ((0.9, 0.1), False), ((0.2, 0.1), True)]
    ]
    obs = torch.as_tensor(np.stack(rows))
    assert soo.in_sight_mask(obs).tolist() == [True, False, True]
    assert soo.in_sight_mask(obs, "pre-trap").tolist() == [True, False, False]
    assert soo.self_mask(obs).tolist() == [False, True, False]
    sham = soo.sham_observation(obs)
    assert torch.equal(sham[:, :9], obs[:, :9])
    assert sham[:, 9].tolist() == [1.0, 1.0, 0.0] and obs[:, 9].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="unknown SOO rows"):
        soo.in_sight_mask(obs, "some")


@pytest.fixture(scope="module")
def parent(tiny_r05_root):
    """A directory with a tiny deceptive baseline at sight radius 0.5 (tests/conftest.py)."""
    return tiny_r05_root


@pytest.mark.parametrize("other", ["sham-flag", "role-swap"])
def test_soo_term_uses_the_chosen_other_observation_and_rows(parent, other):
    t = Tuning(parent, soo_weight=2.0, anchor_weight=0.0, soo_other=other, soo_distance="mse")
    batch = t.buffer.sample([np.random.default_rng(0)] * 2, 64, True)
    obs_blue = batch["obs"][..., 6:]
    if other == "role-swap":
        mask, alt = soo.in_sight_mask(obs_blue), soo.role_swap_observation(obs_blue)
    else:
        mask, alt = soo.self_mask(obs_blue), soo.sham_observation(obs_blue)
    assert 0 < int(mask.sum()) < mask.numel()  # both kinds of rows in the batch
    with torch.no_grad():
        expect = soo.soo_loss(
            soo.blue_activations(t.model, obs_blue), soo.blue_activations(t.model, alt), mask
        )
    extra = t.extra(batch).detach()
    assert torch.all(expect > 0)
    assert torch.allclose(extra[1::2], 2.0 * expect, rtol=1e-5)
    assert torch.count_nonzero(extra[0::2]) == 0
    assert t.plan.meta["condition"] == f"soo+{other}"


def test_blind_red_zeroes_blues_red_weights_and_keeps_them_zero(parent, tmp_path):
    ft = FinetuneConfig(episodes=20, soo_weight=0.0, blind_red=True, freeze_red=True)
    finetune(parent / "deceptive", ft, tmp_path / "blind", progress=False)
    ckpt = torch.load(tmp_path / "blind" / "checkpoint.pt", weights_only=True)
    w = ckpt["learner"]["model"]  # actor and target actor
    before = torch.load(parent / "deceptive" / "checkpoint.pt", weights_only=True)
    before = before["learner"]["model"]
    for key in ("actor.weights.0", "target_actor.weights.0"):
        blue = w[key].view(2, 2, *w[key].shape[1:])[:, 1]
        assert torch.count_nonzero(blue[:, core.BLUE_RED_SLOTS]) == 0
        assert torch.count_nonzero(blue[:, :6]) > 0  # the rest still learns
        old = before[key].view(2, 2, *before[key].shape[1:])[:, 1]
        assert torch.count_nonzero(old[:, core.BLUE_RED_SLOTS]) > 0  # the parent saw red
    # blue's actions no longer depend on red's slots
    t = Tuning(parent, soo_weight=0.0, blind_red=True)
    obs = torch.rand(2, 16, 10) - 0.5
    moved = obs.clone()
    moved[..., core.BLUE_RED_SLOTS] += 0.3
    a, _ = t.model.agent_actor(obs, 1)
    b, _ = t.model.agent_actor(moved, 1)
    assert torch.equal(a, b)
    assert t.plan.meta["condition"] == "no-soo+blind-red"
    # the frozen reference is the parent as trained, not blinded
    ref = t.plan.objectives[0].reference.actor.weights[0].view(2, 2, 10, -1)[:, 1]
    assert torch.count_nonzero(ref[:, core.BLUE_RED_SLOTS]) > 0


def test_authors_style_refuses_another_other_observation():
    with pytest.raises(ValueError, match="--soo-other"):
        FinetuneConfig(style="authors", soo_other="role-swap")
    with pytest.raises(ValueError, match="unknown soo_other"):
        FinetuneConfig(soo_other="mirror")
