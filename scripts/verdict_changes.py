"""Each claim of a report under verdict rule v1 and v2, side by side (docs/spec.md §4.11).

Reads evaluated runs (``eval/metrics.json``, and ``eval/grids.npz`` for the behavioural
claim) given as ``condition=RUN_DIR`` (conditions: deceptive, honest, soo, no-soo; any
subset) and prints one Markdown row per measurable claim: the difference with its v1
interval (95% percentile bootstrap) and verdict, the same with its v2 interval (Student-t,
Welch for independent runs) and verdict, and whether the verdict changed. ``--json``
writes the rows too.

Usage: ``python scripts/verdict_changes.py --name paper_r0.5 deceptive=DIR honest=DIR``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from soo_marl.analysis.compare import difference, verdict
from soo_marl.analysis.report import behaviour
from soo_marl.analysis.tables import _claim_inputs
from soo_marl.rundir import require_metrics

CONDITIONS = ("deceptive", "honest", "soo", "no-soo")


def claim_rows(runs: dict[str, str]) -> list[dict]:
    """Every measurable claim of ``runs`` under both rules."""
    ms = {c: require_metrics(d) for c, d in runs.items()}
    beh = behaviour({c: Path(d) for c, d in runs.items()})["no guard (paper)"]
    rows = []
    for cid, (text, a, b, key, paired, sign) in _claim_inputs(ms, beh).items():
        row = {"claim": cid, "text": text}
        for rule in ("v1", "v2"):
            d = difference(a, b, key, paired, rule)
            row[rule] = {
                "mean": d["mean"],
                "ci": [d["ci_low"], d["ci_high"]],
                "verdict": verdict(d, sign),
            }
        row["changed"] = row["v1"]["verdict"] != row["v2"]["verdict"]
        rows.append(row)
    return rows


def main() -> None:
    """Print the rows of one report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="condition=RUN_DIR")
    ap.add_argument("--name", required=True, help="the report's name in the table")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    runs = dict(r.split("=", 1) for r in args.runs)
    unknown = set(runs) - set(CONDITIONS)
    if unknown:
        raise SystemExit(f"unknown condition(s) {sorted(unknown)}; known: {CONDITIONS}")
    rows = claim_rows(runs)
    for r in rows:
        v1, v2 = r["v1"], r["v2"]
        print(
            f"| {args.name} | {r['text']} | {v1['mean']:+.3f} | [{v1['ci'][0]:+.3f}, "
            f"{v1['ci'][1]:+.3f}] {v1['verdict']} | [{v2['ci'][0]:+.3f}, {v2['ci'][1]:+.3f}] "
            f"{v2['verdict']} | {'**changed**' if r['changed'] else 'same'} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"report": args.name, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
