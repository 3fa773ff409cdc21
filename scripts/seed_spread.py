"""How to place S seeds on the cores: one process with every seed, or one process per core
each with a seed group (docs/performance.md, "Spreading seeds over processes").

Runs short real trainings (``soo-marl train``) in each arrangement, one arrangement at a
time, alternating them for ``--repeats`` rounds, and prints the wall time of each
arrangement and the ratio, medians over the repeats:

* ``one``: one process, all ``--seeds`` seeds, ``--cores`` torch threads;
* ``split``: ``--cores`` processes side by side, one torch thread each, the seeds split
  into equal consecutive groups (``--first-seed``);
* ``side`` (with ``--side``): ``--cores`` processes side by side, one torch thread each,
  every one with all the seeds, as ``reproduce`` runs independent stages (the deceptive
  and the honest baseline); its time is divided by ``--cores`` (per S seeds trained).

Usage: ``python scripts/seed_spread.py --seeds 32 --episodes 1000 --out /tmp/spread``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from soo_marl.provenance import cpu_model


def _train(seeds: int, first: int, threads: int, args: argparse.Namespace, out: Path) -> list:
    """argv of one training process."""
    return [
        sys.executable, "-m", "soo_marl.cli", "train", "--baseline", "deceptive",
        "--seeds", str(seeds), "--first-seed", str(first), "--episodes", str(args.episodes),
        "--noise-decay-episodes", str(args.episodes // 2), "--sight-radius", "0.5",
        "--torch-threads", str(threads), "--run-dir", str(out), "--quiet",
    ]  # fmt: skip


def _run(cmds: list[list[str]]) -> float:
    """Start the commands side by side; seconds until the last one ends."""
    t = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, env=env) for c in cmds]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a training failed: exit codes {codes}")
    return time.perf_counter() - t


def main() -> None:
    """Time both arrangements and print the figures (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--side", action="store_true", help="also time the side-by-side stages")
    args = ap.parse_args()
    if args.seeds % args.cores:
        raise SystemExit(f"--seeds ({args.seeds}) must split evenly over --cores ({args.cores})")
    group = args.seeds // args.cores
    kinds = ("one", "split", "side") if args.side else ("one", "split")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(args.repeats):
        for kind in kinds:
            d = args.out / f"{kind}{r}"
            shutil.rmtree(d, ignore_errors=True)
            if kind == "one":
                cmds = [_train(args.seeds, 0, args.cores, args, d / "all")]
            elif kind == "split":
                cmds = [
                    _train(group, g * group, 1, args, d / f"group{g}") for g in range(args.cores)
                ]
            else:
                cmds = [_train(args.seeds, 0, 1, args, d / f"copy{g}") for g in range(args.cores)]
            took = _run(cmds)
            times[kind].append(took / args.cores if kind == "side" else took)
            print(f"repeat {r}: {kind:5s} {times[kind][-1]:7.1f} s", flush=True)
    one, split = float(np.median(times["one"])), float(np.median(times["split"]))
    result = {
        "seeds": args.seeds,
        "episodes": args.episodes,
        "cores": args.cores,
        "one_process_s": times["one"],
        "split_s": times["split"],
        "median_one_s": one,
        "median_split_s": split,
        "one_over_split": one / split,
        **({"side_s_per_stage": times["side"]} if args.side else {}),
        **({"median_side_s_per_stage": float(np.median(times["side"]))} if args.side else {}),
        "cpu": cpu_model(),
    }
    print(
        f"{args.seeds} seeds × {args.episodes} episodes on {args.cores} cores ({cpu_model()}): "
        f"one process {one:.1f} s, {args.cores} processes × {group} seeds {split:.1f} s "
        f"(one / split = {one / split:.2f})"
        + (
            f"; {args.cores} whole stages side by side {np.median(times['side']):.1f} s per stage"
            if args.side
            else ""
        )
    )
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
