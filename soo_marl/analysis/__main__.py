"""``python -m soo_marl.analysis``: a study's report (:mod:`soo_marl.analysis.study`).

- ``report STUDY ROOT OUT``: from the runs of ``soo-marl sweep STUDY --out ROOT``, write
  ``OUT/arms.md``, ``OUT/arms.json`` and ``OUT/forest.png``;
- ``rejudge STUDY ARMS_JSON OUT [--rule R] [--name N]``: the same from a committed
  ``arms.json`` alone (``--rule``: judge by another rule of ``study.RULES``; ``--name``:
  write ``OUT/N.md``, ``OUT/N.json``, ``OUT/N.png``).

It sits above the study engine (it loads the study file), which itself runs the analysis.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from soo_marl.analysis import study
from soo_marl.sweep.spec import load_study


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and write the report; 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m soo_marl.analysis")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="the report from the study's runs")
    rej = sub.add_parser("rejudge", help="the report again from a committed arms.json")
    for p, data in ((rep, "root"), (rej, "arms_json")):
        p.add_argument("study_file")
        p.add_argument(data)
        p.add_argument("out")
    rej.add_argument("--rule", choices=sorted(study.RULES))
    rej.add_argument("--name", default="arms")
    args = parser.parse_args(argv)
    spec = study.analysis_spec(load_study(args.study_file), args.study_file)
    if args.command == "report":
        path = study.report(spec, args.root, args.out)
    else:
        if args.rule:
            others = tuple(r for r in spec.record_rules if r != args.rule)
            spec = dataclasses.replace(spec, rule=args.rule, record_rules=others)
        path = study.rejudge(args.arms_json, spec, args.out, args.name)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
