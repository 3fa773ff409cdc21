"""Does the deceptive − honest effect show in every disjoint set of trained seeds?

Reads the ``eval/metrics.json`` of an evaluated deceptive and honest run (trained with
the same seed list), splits their seeds in stack order into disjoint sets of ``--size``
and, for each set and for luring Δtrap and trap rate, prints deceptive − honest with the
report's interval (percentile bootstrap over seeds, ``metrics.summarize_difference``) and
a Welch t-interval beside it. Seeds train independently of the seeds stacked beside them
(docs/spec.md §2.7), so one 24-seed run holds three 8-seed presets.

Usage: ``python scripts/seed_sets.py --deceptive RUN [--deceptive RUN …] --honest RUN
[--honest RUN …] --size 8`` (several runs of a side are joined in the order given, e.g.
seeds 0–7 from one run and 8–23 from another).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from soo_marl import metrics, stats
from soo_marl.analysis.compare import values
from soo_marl.rundir import require_metrics

KEYS = {"luring Δtrap": "luring_delta_trap", "trap rate": "trap_rate"}


def joined(runs: list[str]) -> dict:
    """Seeds and per-seed luring Δtrap and trap rate of evaluated runs, joined in order."""
    ms = [require_metrics(r) for r in runs]
    out: dict = {"seeds": [s for m in ms for s in m["seeds"]]}
    out["luring_delta_trap"] = np.concatenate([values(m, "luring_delta_trap") for m in ms])
    out["trap_rate"] = np.concatenate(
        [np.asarray(m["metrics"]["trap_rate"]["values"], float) for m in ms]
    )
    return out


def main() -> None:
    """Print one Markdown row per seed set and measure, and the rows as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deceptive", action="append", required=True)
    ap.add_argument("--honest", action="append", required=True)
    ap.add_argument("--size", type=int, default=8)
    args = ap.parse_args()
    dec, hon = joined(args.deceptive), joined(args.honest)
    if dec["seeds"] != hon["seeds"]:
        raise SystemExit(f"seed lists differ: {dec['seeds']} vs {hon['seeds']}")
    seeds = dec["seeds"]
    rows = []
    print("| seeds | measure | deceptive | honest | difference | bootstrap CI | Welch t CI |")
    print("|---|---|---|---|---|---|---|")
    for start in range(0, len(seeds) - args.size + 1, args.size):
        part = slice(start, start + args.size)
        for name, key in KEYS.items():
            a, b = dec[key][part], hon[key][part]
            boot = metrics.summarize_difference(a, b)
            lo, hi = stats.welch_interval(a, b)
            row = {
                "seeds": seeds[part],
                "measure": name,
                "deceptive": float(a.mean()),
                "honest": float(b.mean()),
                "difference": boot["mean"],
                "bootstrap": [boot["ci_low"], boot["ci_high"]],
                "welch_t": [lo, hi],
            }
            rows.append(row)
            print(
                f"| {seeds[part][0]}–{seeds[part][-1]} | {name} | {a.mean():.3f} | "
                f"{b.mean():.3f} | {boot['mean']:+.3f} | [{boot['ci_low']:+.3f}, "
                f"{boot['ci_high']:+.3f}] | [{lo:+.3f}, {hi:+.3f}] |"
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
