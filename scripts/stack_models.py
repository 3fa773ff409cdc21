"""Join the weights of runs trained with the same config on different seeds, and keep some.

Seeds train independently of the seeds stacked beside them (docs/spec.md §2.7), so a
model file of seeds 0–11 and one of seeds 12–23 hold the same members as one 24-seed run.
This writes ``OUT/final_model.pt`` (weights only) and ``OUT/config.yaml`` for the seeds
asked for, in the order given; a seed held by several runs is taken from the first run
named. Runs match when they learn the same thing as the package reads their configs
today (fields added since an older run was written take their defaults).

Usage: ``python scripts/stack_models.py RUN [RUN …] --seeds 8-15 --out DIR``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from soo_marl.config import TrainConfig, save_yaml
from soo_marl.rundir import FINAL_MODEL, find_run_file, load_checkpoint


def seed_range(text: str) -> list[int]:
    """``"8-15"`` → [8, …, 15]; ``"3,5"`` → [3, 5]."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _learning(raw: dict) -> dict:
    """What a run learns, as the package reads its config today (fields added since it was
    written take their defaults, so an older run and a newer one with the same settings
    compare equal): env, maddpg and meta, without the run section."""
    cfg = TrainConfig.from_dict({k: v for k, v in raw.items() if k != "meta"}).to_dict()
    return {"env": cfg["env"], "maddpg": cfg["maddpg"], "meta": raw.get("meta", {})}


def main() -> None:
    """Write the joined, selected model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--seeds", required=True, type=seed_range)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    parts = [load_checkpoint(find_run_file(r, (FINAL_MODEL,))) for r in args.runs]
    first = parts[0]
    learning = [_learning(json.loads(p["config"])) for p in parts]
    if any(x != learning[0] for x in learning):
        raise SystemExit("the runs differ in what they learn (env/maddpg/meta)")
    members: dict[int, tuple[dict, int]] = {}
    for p in parts:
        for i, s in enumerate(p["seeds"]):
            members.setdefault(int(s), (p, i))  # the first run that holds a seed gives it
    missing = [s for s in args.seeds if s not in members]
    if missing:
        raise SystemExit(f"seeds {missing} are in none of the runs")
    n_agents = len(first["agents"])
    model = {}
    for key in first["model"]:
        model[key] = torch.cat(
            [
                members[s][0]["model"][key][
                    n_agents * members[s][1] : n_agents * (members[s][1] + 1)
                ]
                for s in args.seeds
            ]
        )
    raw = json.loads(first["config"])
    raw["run"]["seeds"] = list(args.seeds)
    if len(args.runs) > 1:
        raw.setdefault("meta", {})["joined_from"] = [str(r) for r in args.runs]
    out = dict(first, model=model, seeds=list(args.seeds), config=json.dumps(raw))
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(out, args.out / FINAL_MODEL)
    meta = raw.pop("meta", {})
    save_yaml({"meta": meta, **TrainConfig.from_dict(raw).to_dict()}, args.out / "config.yaml")
    print(f"wrote {args.out / FINAL_MODEL}: seeds {args.seeds}")


if __name__ == "__main__":
    main()
