"""SOO observation and value functions (docs/spec.md §3.3–§3.4, §4.8)."""

from __future__ import annotations

import math

import torch

from soo_marl import soo
from soo_marl.envs import core


def self_observations(rows: int, seed: int = 0) -> torch.Tensor:
    """Blue observations with red out of sight and the trap flag set."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand((rows, core.OBS_DIM_BLUE), generator=g) * 2 - 1
    obs[:, core.BLUE_RED_SLOTS] = 0.0
    obs[:, core.BLUE_TRAP_SLOTS] = 1.0
    return obs


def test_self_mask():
    obs = self_observations(4)
    obs[1, 6] = 0.1
    obs[2, 7] = -1e-6
    assert soo.self_mask(obs).tolist() == [True, False, False, True]
    assert soo.self_mask(obs.reshape(2, 2, -1)).shape == (2, 2)


def test_other_observation_changes_only_red_and_trap_slots():
    obs = self_observations(2000)
    before = obs.clone()
    r = 0.3
    other = soo.other_observation(obs, torch.Generator().manual_seed(1), r)
    torch.testing.assert_close(obs, before)  # input untouched
    torch.testing.assert_close(other[:, :6], obs[:, :6], rtol=0, atol=0)
    assert (other[:, core.BLUE_TRAP_SLOTS] == 0).all()
    offset = other[:, core.BLUE_RED_SLOTS]
    radius = offset.norm(dim=1)
    assert (radius <= r + 1e-6).all()
    assert radius.max() > 0.9 * r  # ρ uniform on [0, R]: the range is used
    assert abs(radius.mean().item() - r / 2) < 0.01
    angles = torch.atan2(offset[:, 1], offset[:, 0])
    assert angles.min() < -0.9 * math.pi and angles.max() > 0.9 * math.pi  # all directions
    assert not soo.self_mask(other).any()
    small = soo.other_observation(obs, torch.Generator().manual_seed(1), radius=0.01)
    assert (small[:, core.BLUE_RED_SLOTS].norm(dim=1) <= 0.01 + 1e-7).all()


def test_other_observation_is_deterministic_given_the_generator():
    obs = self_observations(8).reshape(2, 4, -1)  # stacked members keep their shape
    a = soo.other_observation(obs, torch.Generator().manual_seed(3))
    b = soo.other_observation(obs, torch.Generator().manual_seed(3))
    c = soo.other_observation(obs, torch.Generator().manual_seed(4))
    assert a.shape == obs.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_soo_value_of_identical_activations():
    h = torch.randn(5, 128, dtype=torch.float64)
    value = soo.soo_value(h, h.clone())
    torch.testing.assert_close(value, torch.full((5,), math.log(1e-25), dtype=torch.float64))
    value32 = soo.soo_value(h.float(), h.float())
    torch.testing.assert_close(value32, torch.full((5,), math.log(1e-25)))


def test_soo_mse_and_value_known():
    h_self = torch.zeros(2, 4)
    h_other = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(soo.soo_mse(h_self, h_other), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(soo.soo_value(h_self, h_other), torch.zeros(2))
    torch.testing.assert_close(soo.concat_hidden([h_self, h_other]).shape, torch.Size([2, 8]))


def test_soo_loss_gradient_flows():
    torch.manual_seed(0)
    net = torch.nn.Linear(10, 128)
    obs = self_observations(16)
    other = soo.other_observation(obs, torch.Generator().manual_seed(0))
    loss = soo.soo_loss(net(obs), net(other))
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_soo_loss_stacked_and_masked():
    h_self = torch.zeros(2, 3, 4, requires_grad=True)
    h_other = torch.ones(2, 3, 4)
    h_other[1, 2] = 3.0
    per_member = soo.soo_loss(h_self, h_other)
    torch.testing.assert_close(per_member, torch.tensor([1.0, 11.0 / 3.0]))
    mask = torch.tensor([[True, False, False], [False, False, False]])
    masked = soo.soo_loss(h_self, h_other, mask)
    torch.testing.assert_close(masked, torch.tensor([1.0, 0.0]))  # no row → 0, not NaN
    masked.sum().backward()
    assert torch.isfinite(h_self.grad).all()


def test_anchor_loss():
    action = torch.tensor([[0.5, -0.5], [0.0, 1.0]], requires_grad=True)
    pre = torch.tensor([[0.5, -0.5], [0.0, 0.0]], requires_grad=True)
    loss = soo.anchor_loss(action, pre)
    torch.testing.assert_close(loss, torch.tensor(0.25))
    loss.backward()
    assert action.grad.abs().sum() > 0
    assert pre.grad is None  # the pre-trained actor is a fixed target
    assert soo.anchor_loss(action, action).item() == 0.0


def test_per_seed_generators_make_each_seeds_draws_its_own():
    obs = self_observations(300).reshape(3, 100, -1)
    gens = [torch.Generator().manual_seed(s) for s in (10, 11, 12)]
    stacked = soo.other_observation(obs, gens, 0.5)
    alone = soo.other_observation(obs[1:2], [torch.Generator().manual_seed(11)], 0.5)
    assert torch.equal(stacked[1:2], alone)  # seed 11's draws do not depend on the others
