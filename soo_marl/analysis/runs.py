"""Evaluated runs as the analysis reads them: what each run directory holds, in memory.

Conditions are identified by their evaluation label (``metrics.json``'s ``"label"``, e.g.
``"deceptive r0.125"``) and ordered deceptive → SOO → no-SOO control → honest within a
sight radius. Every file is read through :mod:`soo_marl.rundir`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl import rundir

#: Trajectory arrays the figures need (``soo_value``, actions and rewards are not loaded).
TRAJECTORY_FIELDS = (
    "red_pos", "blue_pos", "landmarks", "goal_index", "trapped", "red_visible",
    "seeds", "eval_seeds", "episodes_per_eval_seed",
)  # fmt: skip
#: Display order of conditions (unknown ones go last, in the given order).
CONDITION_ORDER = ("deceptive", rundir.SOO, rundir.NO_SOO, "honest")
#: Order of the first member of a behavioural-difference pair: "SOO vs honest" etc.
PAIR_ORDER = (rundir.SOO, rundir.NO_SOO, "honest", "deceptive")
#: metrics.json keys stored at its top level rather than under "metrics".
TOP_LEVEL = {"luring_delta_trap", "deceivability", "blue_at_fake"}


@dataclass
class RunData:
    """Everything the figures and tables read from one run directory (missing parts are
    None)."""

    run_dir: Path
    label: str
    #: "deceptive", "honest", "soo", "no-soo" (config meta ``condition`` or ``baseline``).
    condition: str
    sight_radius: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``eval/metrics.json``.
    metrics: dict[str, Any] | None = None
    #: :data:`TRAJECTORY_FIELDS` of ``eval/trajectories.npz``.
    trajectories: dict[str, np.ndarray] | None = None
    #: ``eval/grids.npz`` (the threshold grids and ``truncation``).
    grids: dict[str, np.ndarray] | None = None
    #: Rows of ``history.jsonl``.
    history: list[dict[str, Any]] | None = None

    @property
    def seeds(self) -> list[int] | None:
        """Trained seeds, from metrics.json or the trajectories."""
        if self.metrics is not None:
            return [int(s) for s in self.metrics["seeds"]]
        if self.trajectories is not None:
            return [int(s) for s in self.trajectories["seeds"]]
        return None

    @property
    def empty(self) -> bool:
        """Nothing to analyse: no evaluation file and no history."""
        return (
            self.metrics is None
            and self.trajectories is None
            and self.grids is None
            and not self.history
        )


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory's evaluation files, config meta and training history.

    Nothing is required: absent files leave their field None, and figures that need
    them are skipped.
    """
    run_dir = Path(run_dir)
    cfg_meta: dict[str, Any] = {}
    sight_radius = None
    if rundir.config_path(run_dir).exists():
        config, cfg_meta = rundir.read_config(run_dir)
        sight_radius = config.env.sight_radius
    m = rundir.read_metrics(run_dir)
    meta = {**cfg_meta, **((m or {}).get("meta") or {})}
    if meta.get("sight_radius") is not None:
        sight_radius = meta["sight_radius"]
    sight_radius = None if sight_radius is None else float(sight_radius)
    condition = rundir.condition(meta) if meta else run_dir.name
    label = (
        str(m["label"])
        if m is not None
        else rundir.label(meta or {"condition": condition}, sight_radius)
    )
    return RunData(
        run_dir=run_dir,
        label=label,
        condition=condition,
        sight_radius=sight_radius,
        meta=meta,
        metrics=m,
        trajectories=rundir.read_trajectories(run_dir, TRAJECTORY_FIELDS),
        grids=rundir.read_grids(run_dir),
        history=rundir.read_history(run_dir),
    )


def order_runs(runs: Sequence[RunData]) -> list[RunData]:
    """Runs sorted by sight radius, then deceptive → SOO → no-SOO → honest (stable)."""

    def key(r: RunData) -> tuple[float, int]:
        rank = CONDITION_ORDER.index(r.condition) if r.condition in CONDITION_ORDER else 99
        return (r.sight_radius if r.sight_radius is not None else np.inf, rank)

    return sorted(runs, key=key)


def group_by_radius(runs: Sequence[RunData]) -> dict[float | None, list[RunData]]:
    """Runs grouped by sight radius (conditions are only comparable within a radius)."""
    groups: dict[float | None, list[RunData]] = {}
    for r in order_runs(runs):
        groups.setdefault(r.sight_radius, []).append(r)
    return groups


def default_pairs(runs: Sequence[RunData]) -> list[tuple[str, str]]:
    """All pairs of conditions, first member in SOO → no-SOO → honest → deceptive order
    ("SOO vs honest", "SOO vs deceptive", "honest vs deceptive", …)."""

    def rank(r: RunData) -> int:
        return PAIR_ORDER.index(r.condition) if r.condition in PAIR_ORDER else 99

    ranked = sorted(runs, key=rank)
    return [(a.label, b.label) for a, b in combinations(ranked, 2)]


def summary(m: dict[str, Any], key: str) -> dict[str, Any] | None:
    """One metric's summary (mean, CI, per-seed values) from a metrics.json, or None."""
    return m.get(key) if key in TOP_LEVEL else m["metrics"].get(key)
