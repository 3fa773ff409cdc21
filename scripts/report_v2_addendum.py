"""A section to append to a committed report whose fine-tuned runs are no longer kept:
its baseline claims under verdict rules v1 and v2, and the probes that do not rely on
blue's learned "out of sight" code (docs/spec.md §4.4, §4.15, §4.16), from baselines
re-evaluated with the current code (evaluation only, no retraining).

Usage: ``python scripts/report_v2_addendum.py deceptive=DIR honest=DIR --command "…"``
"""

from __future__ import annotations

import argparse

from verdict_changes import claim_rows

from soo_marl.analysis import tables
from soo_marl.rundir import require_metrics


def main() -> None:
    """Print the Markdown section."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="condition=RUN_DIR (deceptive, honest)")
    ap.add_argument("--command", required=True, help="how the runs were re-evaluated")
    args = ap.parse_args()
    runs = dict(r.split("=", 1) for r in args.runs)
    ms = [require_metrics(d) for d in runs.values()]
    lines = [
        "## Verdict rule v2 and the new probes (added 2026-12-06)",
        "",
        "The committed baselines re-evaluated with the current code (evaluation only; the "
        "v1 numbers below equal the ones above, which checks that the re-evaluation "
        "reproduces the report). Rule v2 (docs/spec.md §4.11): 95% Student-t intervals, "
        "Welch for the independent baselines. The SOO claims cannot be re-judged: the "
        "fine-tuned runs' per-seed values were not kept, and fine-tuning again from the "
        "committed weights would not reproduce them (the fine-tunings reused the parents' "
        "replay buffers, which are not committed); they stay under rule v1.",
        "",
        "| claim | difference | v1: 95% percentile bootstrap | v2: 95% Welch t | changed? |",
        "|---|---|---|---|---|",
    ]
    for r in claim_rows(runs):
        v1, v2 = r["v1"], r["v2"]
        lines.append(
            f"| {r['text']} | {v1['mean']:+.3f} | [{v1['ci'][0]:+.3f}, {v1['ci'][1]:+.3f}] "
            f"{v1['verdict']} | [{v2['ci'][0]:+.3f}, {v2['ci'][1]:+.3f}] {v2['verdict']} | "
            f"{'**changed**' if r['changed'] else 'no'} |"
        )
    lines += [
        "",
        "Does blue's luring need to see red, or the real red? (docs/spec.md §4.4; "
        "mean [95% percentile bootstrap CI] over trained seeds)",
        "",
        tables.blind_table(ms),
        "",
        "What blue knows about red (docs/spec.md §4.3, §4.10, §4.15, §4.16):",
        "",
        tables.representation_table(ms),
        "",
        "```bash",
        args.command,
        "```",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
