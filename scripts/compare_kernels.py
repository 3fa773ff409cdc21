"""Are two reproductions of one preset statistically the same? (e.g. other kernels, or
another CPU, against the default; first used for the compiled kernels, since removed:
docs/performance.md, "Compiled kernels").

    python scripts/compare_kernels.py A_OUT B_OUT [--json FILE]

A_OUT and B_OUT are `soo-marl reproduce --out` folders of the same preset and seeds.
For each run (deceptive, honest, soo, nosoo) and measure (trap rate, blue's goal rate,
blue at the fake landmark, luring Δtrap), the per-seed values of A and B are compared as
independent groups: Welch 95% interval of mean(A) − mean(B) and its two-sided p-value,
with Holm's correction over all comparisons. Verdict: "statistically the same" when no
comparison is rejected at family-wise 5%. The runs share seeds, but a last-bit
difference grows into a different trajectory within a training, so the seeds are not
paired.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from soo_marl.analysis.compare import values
from soo_marl.rundir import require_metrics
from soo_marl.stats import holm_levels, welch_interval, welch_pvalue

RUNS = ("deceptive", "honest", "soo", "nosoo")
MEASURES = {
    "trap rate": "trap_rate",
    "blue goal rate": "blue_goal_rate",
    "blue at fake": "blue_at_fake",
    "luring Δtrap": "luring_delta_trap",
}


def compare(a_out: Path, b_out: Path) -> dict:
    """Every comparison of A against B, Holm-corrected, and the verdict."""
    rows = []
    for run in RUNS:
        metrics_a, metrics_b = require_metrics(a_out / run), require_metrics(b_out / run)
        for name, key in MEASURES.items():
            a, b = values(metrics_a, key), values(metrics_b, key)
            p = min(welch_pvalue(a, b, side=1), welch_pvalue(a, b, side=-1))
            low, high = welch_interval(a, b)
            rows.append(
                {
                    "run": run,
                    "measure": name,
                    "n": [int(a.size), int(b.size)],
                    "a": float(a.mean()),
                    "b": float(b.mean()),
                    "difference": float(a.mean() - b.mean()),
                    "ci95": [low, high],
                    "p": p,
                    "sd_pooled": float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)),
                }
            )
    levels = holm_levels([r["p"] for r in rows])
    for r, level in zip(rows, levels, strict=True):
        r["holm_level"] = level
        r["rejected"] = bool(r["p"] < 1.0 - level)
    rejected = [r for r in rows if r["rejected"]]
    return {
        "a": str(a_out),
        "b": str(b_out),
        "comparisons": rows,
        "rejected": len(rejected),
        "verdict": "statistically the same" if not rejected else "different",
    }


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table and the verdict (and write it as JSON if asked)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    result = compare(args.a, args.b)
    print(f"A = {args.a}, B = {args.b}; Welch 95% intervals of A − B, Holm over all rows")
    print(f"{'run':10} {'measure':15} {'A':>7} {'B':>7} {'A − B':>8} {'95% interval':>20} {'p':>6}")
    for r in result["comparisons"]:
        low, high = r["ci95"]
        flag = "  rejected (Holm)" if r["rejected"] else ""
        print(
            f"{r['run']:10} {r['measure']:15} {r['a']:7.3f} {r['b']:7.3f} "
            f"{r['difference']:+8.3f} [{low:+.3f}, {high:+.3f}] {r['p']:6.3f}{flag}"
        )
    print(
        f"verdict: {result['verdict']} ({result['rejected']} of "
        f"{len(result['comparisons'])} rejected at family-wise 5%)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
