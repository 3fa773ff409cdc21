"""StackedAdam: torch's Adam to the bit when all members step, per-member Adam when masked."""

import torch

from soo_marl.agents.optim import StackedAdam


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(4, 3, 5, generator=g)),
        torch.nn.Parameter(torch.randn(4, 1, 5, generator=g)),
    ]


def _grads(params, k: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + k)
    return [torch.randn(p.shape, generator=g) for p in params]


def test_all_members_step_equals_torch_adam_bitwise():
    ours, ref = _params(), _params()
    opt = StackedAdam(ours, lr=0.01)
    torch_opt = torch.optim.Adam(ref, lr=0.01, foreach=True)
    for k in range(5):
        opt.step(_grads(ours, k))
        for p, g in zip(ref, _grads(ref, k), strict=True):
            p.grad = g
        torch_opt.step()
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a, b)
    restored = StackedAdam(_params(), lr=0.01)
    restored.load_state_dict(torch_opt.state_dict())  # a torch Adam checkpoint loads
    assert restored.steps.tolist() == [5] * 4
    assert all(
        torch.equal(m, torch_opt.state[p]["exp_avg"])
        for m, p in zip(restored.exp_avg, ref, strict=True)
    )


def test_masked_step_moves_only_those_members_with_their_own_step_count():
    params = _params()
    before = [p.detach().clone() for p in params]
    opt = StackedAdam(params, lr=0.01)
    mask = torch.tensor([False, True, False, True])
    opt.step(_grads(params, 0), mask)
    assert opt.steps.tolist() == [0, 1, 0, 1]
    for p, b in zip(params, before, strict=True):
        assert torch.equal(p[~mask], b[~mask]) and not torch.equal(p[mask], b[mask])
    # member 1 took one masked step, then a normal one: as an Adam of its own that took two
    opt.step(_grads(params, 1))
    assert opt.steps.tolist() == [1, 2, 1, 2]
    alone = [torch.nn.Parameter(b[1:2].clone()) for b in before]
    own = torch.optim.Adam(alone, lr=0.01)
    for k in range(2):
        for p, g in zip(alone, _grads(params, k), strict=True):
            p.grad = g[1:2]
        own.step()
    for p, a in zip(params, alone, strict=True):
        assert torch.allclose(p[1:2], a, atol=1e-7)
    # member 0 took only the normal step: as a fresh Adam's first step with those gradients
    first = [torch.nn.Parameter(b[0:1].clone()) for b in before]
    fresh = torch.optim.Adam(first, lr=0.01)
    for p, g in zip(first, _grads(params, 1), strict=True):
        p.grad = g[0:1]
    fresh.step()
    for p, a in zip(params, first, strict=True):
        assert torch.allclose(p[0:1], a, atol=1e-7)
    state = opt.state_dict()
    again = StackedAdam(_params(), lr=0.01)
    again.load_state_dict(state)
    assert torch.equal(again.steps, opt.steps)
