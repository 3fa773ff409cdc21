"""Synthetic run directories in the exact layout ``soo-marl evaluate`` writes.

Hand-made trajectories on shared start states (S = 2 trained seeds, K = 2 evaluation
seeds, n = 5 episodes each): the deceptive blue walks straight to the fake landmark with
red in tow (red ends trapped), the honest blue takes one step toward the fake and then walks
straight to the goal, the SOO blue makes a four-step detour toward the fake first. Grids
and metrics are computed from these arrays with :mod:`soo_marl.metrics`, so the files are
consistent with each other.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from soo_marl import metrics
from soo_marl.envs import core

SEEDS = (0, 1)
EVAL_SEEDS = (155, 714)
N_PER = 5
T = 50
SIGHT = 0.125
#: Per-condition SOO level (out-of-sight steps): lower for the honest model.
SOO_LEVELS = {"deceptive": -3.0, "soo": -4.0, "honest": -5.0}


def start_states() -> dict[str, np.ndarray]:
    """Shared start states of the K·n episodes: landmarks, goal index, start positions."""
    rng = np.random.default_rng(0)
    m = len(EVAL_SEEDS) * N_PER
    goal = np.stack([np.full(m, 0.6), 0.4 + 0.2 * rng.random(m)], axis=1)
    fake = np.stack([np.full(m, -0.6), 0.4 + 0.2 * rng.random(m)], axis=1)
    goal_index = np.arange(m) % 2
    landmarks = np.where(goal_index[:, None, None] == 0, np.stack([goal, fake], 1), 0.0)
    landmarks = np.where(goal_index[:, None, None] == 1, np.stack([fake, goal], 1), landmarks)
    red0 = np.stack([0.2 * rng.random(m) - 0.1, np.full(m, -0.6)], axis=1)
    return {
        "landmarks": landmarks,
        "goal_index": goal_index,
        "red0": red0,
        "blue0": red0 + np.array([0.1, 0.0]),
        "goal": goal,
        "fake": fake,
    }


def walk(start: np.ndarray, targets: Sequence[tuple[np.ndarray, int]], speed: float) -> np.ndarray:
    """(T+1, 2) path: straight toward each target for its number of steps, then stay."""
    pos = [np.asarray(start, dtype=float)]
    for target, steps in targets:
        for _ in range(steps):
            d = target - pos[-1]
            dist = float(np.linalg.norm(d))
            pos.append(pos[-1] + (d / dist * min(speed, dist) if dist > 0 else 0.0))
    while len(pos) < T + 1:
        pos.append(pos[-1].copy())
    return np.stack(pos[: T + 1])


def trajectories(condition: str, soo_level: float, n_seeds: int = len(SEEDS)) -> dict:
    """The arrays of ``eval/trajectories.npz`` for one condition."""
    st = start_states()
    m = len(st["goal_index"])
    rng = np.random.default_rng(zlib.crc32(condition.encode()))
    red = np.zeros((n_seeds, m, T + 1, 2))
    blue = np.zeros_like(red)
    trapped = np.zeros((n_seeds, m, T + 1), bool)
    for s in range(n_seeds):
        speed = 0.05 + 0.01 * s
        for j in range(m):
            goal, fake, b0, r0 = st["goal"][j], st["fake"][j], st["blue0"][j], st["red0"][j]
            if condition == "deceptive":
                blue[s, j] = walk(b0, [(fake, T)], speed)
                red[s, j] = walk(r0, [(fake + [0.0, -0.05], T)], speed * 0.8)
                trapped[s, j, 35:] = True
            elif condition == "soo":
                blue[s, j] = walk(b0, [(fake, 4), (goal, T)], speed)
                red[s, j] = walk(r0, [(fake, 4), (goal, T)], speed * 0.9)
                trapped[s, j, 40:] = j % 2 == 0
            else:
                blue[s, j] = walk(b0, [(fake, 1), (goal, T)], speed)
                red[s, j] = walk(r0, [(goal, T)], speed * 0.9)
    visible = np.linalg.norm(red - blue, axis=-1) <= SIGHT
    soo = soo_level + 0.1 * rng.standard_normal(visible.shape)
    soo = np.where(visible, np.nan, soo)
    return {
        "red_pos": red.astype(np.float32),
        "blue_pos": blue.astype(np.float32),
        "landmarks": np.broadcast_to(st["landmarks"], (n_seeds, m, 2, 2)).astype(np.float32),
        "goal_index": np.broadcast_to(st["goal_index"], (n_seeds, m)).astype(np.int8),
        "trapped": trapped,
        "red_visible": visible,
        "actions_red": np.zeros((n_seeds, m, T, 2), np.float32),
        "actions_blue": np.zeros((n_seeds, m, T, 2), np.float32),
        "rewards": rng.standard_normal((n_seeds, m, T, 2)).astype(np.float32),
        "soo_value": soo.astype(np.float32),
    }


def _summary(values: np.ndarray) -> dict:
    return metrics.summarize(np.asarray(values, float), n_boot=200)


def write_run(
    run_dir: Path,
    condition: str,
    soo_level: float | None = None,
    seeds: Sequence[int] = SEEDS,
    eval_seeds: Sequence[int] = EVAL_SEEDS,
    truncation: dict[str, int] | None = None,
) -> Path:
    """One synthetic run directory: config.yaml, history.jsonl and eval/ files, and an
    empty final_model.pt that marks the run finished (``rundir.has_model``; no weights)."""
    soo_level = SOO_LEVELS.get(condition, -4.0) if soo_level is None else soo_level
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "final_model.pt").touch()
    kind = "finetune" if condition in ("soo", "no-soo") else "train"
    meta = {"kind": kind, "baseline": "deceptive" if kind == "finetune" else condition}
    if kind == "finetune":
        meta.update(condition=condition, parent_episode=600)
    cfg = {"meta": meta, "env": {"baseline": meta["baseline"], "sight_radius": SIGHT}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    tr = trajectories(condition, soo_level, len(seeds))
    s = len(seeds)
    lift = {"deceptive": 0.2, "soo": 0.1}.get(condition, 0.0)
    with open(run_dir / "history.jsonl", "w") as f:
        for i, ep in enumerate((200, 400, 600)):
            row = {"episode": ep, "env_steps": ep * T}
            for key, base in (("trap_rate", 0.1), ("blue_goal_rate", 0.2)):
                row[f"charts/{key}"] = [base + lift + 0.1 * i + 0.02 * k for k in range(s)]
            for key, base in (("return_blue", 10.0), ("return_red", 5.0)):
                row[f"charts/{key}"] = [base + 10 * lift + 3 * i + k for k in range(s)]
            f.write(json.dumps(row) + "\n")
    ev = run_dir / "eval"
    ev.mkdir(exist_ok=True)
    np.savez_compressed(
        ev / "trajectories.npz",
        **tr,
        seeds=np.asarray(seeds),
        eval_seeds=np.asarray(eval_seeds),
        episodes_per_eval_seed=np.asarray(N_PER),
    )
    cfg_env = core.EnvConfig(sight_radius=SIGHT)
    recs = {
        g: metrics.deceptive_records(
            tr["blue_pos"], tr["landmarks"], tr["goal_index"], tr["red_visible"], v
        )
        for g, v in (("guard", metrics.MIN_DISPLACEMENT), ("noguard", 0.0))
    }
    truncation = truncation or {
        g: metrics.common_truncation(r, keep_axis=0) for g, r in recs.items()
    }
    grids = {}
    for g, rec in recs.items():
        grids[f"freq_{g}"] = metrics.threshold_frequency(*rec, keep_axis=0)
        grids[f"trunc_{g}"] = metrics.truncated_grid(*rec, truncation[g], keep_axis=0)
    np.savez_compressed(
        ev / "grids.npz", **grids, truncation=np.array([truncation["guard"], truncation["noguard"]])
    )
    ret = metrics.mean_episode_return(tr["rewards"])
    trap = metrics.trap_rate(tr["trapped"])
    pos = (tr["landmarks"], tr["goal_index"])
    per_seed = {
        "trap_rate": trap,
        "red_goal_rate": metrics.goal_reach_rate(cfg_env, tr["red_pos"], *pos),
        "blue_goal_rate": metrics.goal_reach_rate(cfg_env, tr["blue_pos"], *pos),
        "blue_at_fake": metrics.landmark_visit_rate(cfg_env, tr["blue_pos"], *pos),
        "return_red": ret[..., 0],
        "return_blue": ret[..., 1],
        "headline_guard": metrics.headline_count(*recs["guard"], keep_axis=0),
        "headline_noguard": metrics.headline_count(*recs["noguard"], keep_axis=0),
        "soo_value": metrics.mean_soo_value(tr["soo_value"], keep_axis=0),
    }
    to_goal = np.full(s, 0.1)
    to_fake = np.linspace(0.6, 0.8, s)
    label = f"{condition} r{SIGHT:g}"
    result = {
        "run": str(run_dir),
        "label": label,
        "meta": {**meta, "sight_radius": SIGHT},
        "seeds": list(seeds),
        "eval_seeds": list(eval_seeds),
        "episodes_per_eval_seed": N_PER,
        "metrics": {k: _summary(v) for k, v in per_seed.items()},
        "probes": {
            "to_goal": {"trap_rate": _summary(to_goal)},
            "to_fake": {"trap_rate": _summary(to_fake)},
            "still": {"trap_rate": _summary(np.zeros(s))},
        },
        "luring_delta_trap": _summary(trap - to_goal),
        "deceivability": _summary(to_fake),
        "blue_at_fake": _summary(per_seed["blue_at_fake"]),
        "cross_play": {},
    }
    (ev / "metrics.json").write_text(json.dumps(result, indent=1))
    return run_dir


def write_runs(root: Path, conditions: Sequence[str] = ("deceptive", "soo", "honest")) -> dict:
    """A runs folder with one synthetic run per condition, truncated grids cut to the
    common number of visible records as ``evaluate`` does; returns {condition: run dir}."""
    truncation = {}
    for g, guard in (("guard", metrics.MIN_DISPLACEMENT), ("noguard", 0.0)):
        recs = []
        for c in conditions:
            t = trajectories(c, SOO_LEVELS.get(c, -4.0))
            recs.append(
                metrics.deceptive_records(
                    t["blue_pos"], t["landmarks"], t["goal_index"], t["red_visible"], guard
                )
            )
        truncation[g] = metrics.common_truncation(*recs, keep_axis=0)
    return {c: write_run(root / c, c, truncation=truncation) for c in conditions}
