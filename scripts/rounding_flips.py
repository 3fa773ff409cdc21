"""How often does float32 rounding change an episode's outcome? (docs/spec.md §7.2)

Plays the evaluation start states with a trained model three ways and counts the
episodes whose outcome (red trapped or not at the end) differs from the reference, which
plays all episodes in one batch:

* ``chunks``: the same episodes in batches of ``--chunk`` (other matrix shapes; on CPUs
  whose float32 kernels round per shape this changes the last bits);
* ``ulp``: every actor output multiplied by (1 + u·2⁻²³), u uniform in [-1, 1] — about one
  float32 rounding difference per action per step, as between two CPU types;
* ``ulp-start``: only the start positions moved by one float32 ulp.

Usage: ``python scripts/rounding_flips.py docs/results/models/paper_r0.5/deceptive``
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch

from soo_marl.provenance import cpu_model
from soo_marl.rollout import DEFAULT_EVAL_SEEDS, rollout, start_uniforms
from soo_marl.rundir import load_model


def outcomes(traj: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-episode trap outcome (S, N) and final red/blue positions."""
    final = np.concatenate([traj["red_pos"][:, :, -1], traj["blue_pos"][:, :, -1]], -1)
    return traj["trapped"][:, :, -1], final


def jittered(model, rng: np.random.Generator) -> None:
    """Make ``model.act`` round differently in the last bit (an instance override)."""
    act = model.act

    def noisy(joint: torch.Tensor) -> torch.Tensor:
        a = act(joint)
        u = torch.from_numpy(rng.uniform(-1, 1, a.shape)).to(a.dtype)
        return a * (1 + u * 2.0**-23)

    model.act = noisy


def main() -> None:
    """Print and return the counts for one run directory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--episodes", type=int, default=500, help="per evaluation seed")
    ap.add_argument("--chunk", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    lm = load_model(args.run)
    cfg = lm.config.env
    uni = start_uniforms(DEFAULT_EVAL_SEEDS, args.episodes)
    ref_trap, ref_pos = outcomes(rollout(cfg, uni, lm.model, lm.model))
    total = ref_trap.size
    result = {
        "run": args.run,
        "cpu": cpu_model() or platform.machine(),
        "episodes": int(total),
        "reference_trap_rate": float(ref_trap.mean()),
    }

    parts = [
        rollout(cfg, uni[i : i + args.chunk], lm.model, lm.model)
        for i in range(0, len(uni), args.chunk)
    ]
    ch_trap = np.concatenate([outcomes(p)[0] for p in parts], 1)
    ch_pos = np.concatenate([outcomes(p)[1] for p in parts], 1)
    result["chunks"] = {
        "chunk": args.chunk,
        "max_abs_position_diff": float(np.abs(ch_pos - ref_pos).max()),
        "outcome_flips": int((ch_trap != ref_trap).sum()),
    }

    lm2 = load_model(args.run)
    jittered(lm2.model, np.random.default_rng(0))
    j_trap, j_pos = outcomes(rollout(cfg, uni, lm2.model, lm2.model))
    result["ulp"] = {
        "max_abs_position_diff": float(np.abs(j_pos - ref_pos).max()),
        "episodes_moved_over_1e-3": int((np.abs(j_pos - ref_pos).max(-1) > 1e-3).sum()),
        "outcome_flips": int((j_trap != ref_trap).sum()),
    }

    # one float32 ulp on the start draws: every start coordinate moves by about 1e-7
    uni_n = np.nextafter(uni.astype(np.float32), np.float32(2)).astype(np.float64)
    n_trap, n_pos = outcomes(rollout(cfg, uni_n, lm.model, lm.model))
    result["ulp_start"] = {
        "max_abs_position_diff": float(np.abs(n_pos - ref_pos).max()),
        "episodes_moved_over_1e-3": int((np.abs(n_pos - ref_pos).max(-1) > 1e-3).sum()),
        "outcome_flips": int((n_trap != ref_trap).sum()),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
