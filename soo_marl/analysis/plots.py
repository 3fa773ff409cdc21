"""All figures of a set of evaluated runs: which ones their files allow, and writing them.

:func:`make_all` loads run directories (:mod:`soo_marl.analysis.runs`), builds every figure
their files allow (:func:`build_figures`, drawing with :mod:`soo_marl.analysis.figures`)
and writes a PNG and a PDF of each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from soo_marl.analysis.figures import (
    condition_color,
    fig_behavioural_difference,
    fig_classifier,
    fig_learning_curves,
    fig_probes,
    fig_threshold_grids,
    fig_trajectories,
)
from soo_marl.analysis.runs import RunData, default_pairs, group_by_radius, load_run, order_runs

#: Grids of ``eval/grids.npz`` and how to describe them.
GRID_KINDS: dict[str, str] = {
    "freq_guard": "records per episode, displacement guard 0.01",
    "freq_noguard": "records per episode, no displacement guard (paper's counter)",
    "trunc_guard": "first {n} visible records per seed, displacement guard 0.01",
    "trunc_noguard": "first {n} visible records per seed, no guard (as the paper's figure)",
}
FORMATS = ("png", "pdf")
DPI = 150

Log = Callable[[str], None]
#: Runs of one sight radius that have threshold grids, each with its ``eval/grids.npz``.
GridRuns = Sequence[tuple[RunData, Mapping[str, Any]]]


def _suffix(radius: float | None, several: bool) -> str:
    if not several:
        return ""
    return "_r" + (f"{radius:g}" if radius is not None else "unknown")


def _radius_note(radius: float | None) -> str:
    return f" — sight radius {radius:g}" if radius is not None else ""


def build_figures(
    runs: Sequence[RunData],
    classifier: Mapping[str, Any] | None = None,
    log: Log = print,
) -> dict[str, Figure]:
    """All figures that the loaded data allows, by file stem; what is skipped is logged.

    Figures 2–4 are made per sight radius (stem suffix ``_r<radius>`` when the runs have
    several), and so are the learning curves; the probe figure shows every run.
    """
    figs: dict[str, Figure] = {}
    runs = order_runs(runs)
    colors = {r.label: condition_color(r.condition, i) for i, r in enumerate(runs)}
    groups = group_by_radius(runs)
    evaluated = [g for g in groups.values() if any(r.trajectories or r.grids for r in g)]
    several = len(evaluated) > 1
    for radius, group in groups.items():
        sfx, note = _suffix(radius, several), _radius_note(radius)
        figs.update(_trajectory_figure(group, sfx, note, log))
        with_grids = [(r, r.grids) for r in group if r.grids is not None]
        if not with_grids:
            log(f"skipped Figures 3-4{note}: no eval/grids.npz")
            continue
        figs.update(_grid_figures(with_grids, sfx, note, log))
        figs.update(_difference_figure(with_grids, sfx, note, log))
    with_metrics = {r.label: r.metrics for r in runs if r.metrics is not None}
    if with_metrics:
        figs["probes"] = fig_probes(with_metrics, colors)
    else:
        log("skipped probe figure: no eval/metrics.json")
    if classifier is not None:
        figs["classifier"] = fig_classifier(classifier)
    for radius, group in groups.items():  # one learning-curve figure per sight radius
        figs.update(_learning_curves(radius, group, len(groups) > 1, colors, log))
    return figs


def _trajectory_figure(
    group: Sequence[RunData], sfx: str, note: str, log: Log
) -> dict[str, Figure]:
    """Figure 2 of one sight-radius group (none when no run has trajectories)."""
    with_traj = [(r.label, r.trajectories) for r in group if r.trajectories is not None]
    if not with_traj:
        log(f"skipped Figure 2{note}: no eval/trajectories.npz")
        return {}
    try:
        return {f"fig2_trajectories{sfx}": fig_trajectories(with_traj, note=note)}
    except ValueError as exc:
        log(f"skipped Figure 2{note}: {exc}")
        return {}


def _grid_figures(with_grids: GridRuns, sfx: str, note: str, log: Log) -> dict[str, Figure]:
    """Figure 3 of one sight-radius group: one threshold-grid figure per grid kind."""
    figs: dict[str, Figure] = {}
    for kind, desc in GRID_KINDS.items():
        have = [(r, g) for r, g in with_grids if kind in g]
        if not have:
            log(f"skipped Figure 3 ({kind}){note}: not in grids.npz")
            continue
        seeds = len(have[0][1][kind])
        if kind.startswith("freq"):
            cbar = "visible records per episode with pn > x, c < y"
        else:
            trunc = {
                int(g["truncation"][0 if kind == "trunc_guard" else 1])
                for _, g in have
                if "truncation" in g
            }
            n_rec = str(trunc.pop()) if len(trunc) == 1 else f"N (differs: {sorted(trunc)})"
            desc = desc.format(n=n_rec)
            cbar = "visible records with pn > x, c < y"
        title = f"Threshold grid{note}\n{desc}, mean over {seeds} seeds"
        figs[f"fig3_grid_{kind}{sfx}"] = fig_threshold_grids(
            [(r.label, g[kind]) for r, g in have], title=title, colorbar_label=cbar
        )
    return figs


def _difference_figure(with_grids: GridRuns, sfx: str, note: str, log: Log) -> dict[str, Figure]:
    """Figure 4 of one sight-radius group (none without two conditions of matching seeds)."""
    sets = {}
    for kind, name in (("freq_guard", "guard 0.01"), ("freq_noguard", "no guard (paper)")):
        have = [(r, g) for r, g in with_grids if kind in g]
        shapes = {g[kind].shape for _, g in have}
        seed_lists = {tuple(r.seeds or ()) for r, _ in have}
        if len(have) < 2:
            continue
        if len(shapes) > 1 or len(seed_lists) > 1:
            log(f"skipped Figure 4 ({kind}){note}: runs have different seeds")
            continue
        sets[name] = {r.label: g[kind] for r, g in have}
    if not sets:
        log(f"skipped Figure 4{note}: needs two conditions with matching seeds")
        return {}
    pairs = default_pairs([r for r, _ in with_grids if r.label in next(iter(sets.values()))])
    return {f"fig4_behavioural_difference{sfx}": fig_behavioural_difference(sets, pairs, note=note)}


def _learning_curves(
    radius: float | None,
    group: Sequence[RunData],
    several: bool,
    colors: Mapping[str, str],
    log: Log,
) -> dict[str, Figure]:
    """The learning-curve figure of one sight-radius group (none without histories)."""
    sfx = _suffix(radius, several)
    histories = {r.label: r.history for r in group if r.history}
    if not histories:
        log(f"skipped learning curves{_radius_note(radius)}: no history.jsonl")
        return {}
    offsets = {
        r.label: int(r.meta.get("parent_episode") or 0)
        for r in group
        if r.meta.get("kind") == "finetune"
    }
    return {f"learning_curves{sfx}": fig_learning_curves(histories, colors, offsets)}


def save_figure(fig: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``stem.<fmt>`` for each format; returns the paths."""
    paths = []
    for fmt in formats:
        path = stem.parent / f"{stem.name}.{fmt}"  # not with_suffix: stems hold "r0.125"
        fig.savefig(path, dpi=DPI)
        paths.append(path)
    return paths


def make_all(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    classifier_json: str | Path | None = None,
    log: Log = print,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Load ``run_dirs``, build every figure their files allow and write each in
    ``formats`` (PNG and PDF) into ``out_dir``; returns the written paths.

    Raises ValueError when no run has any evaluation file or history, FileNotFoundError
    for a missing classifier JSON.
    """
    runs = [load_run(d) for d in run_dirs]
    for r in runs:
        if r.empty:
            log(f"{r.run_dir}: no eval files and no history.jsonl")
    if all(r.empty for r in runs):
        raise ValueError("none of the runs has eval files (run `soo-marl evaluate` first)")
    classifier = None
    if classifier_json is not None:
        classifier = json.loads(Path(classifier_json).read_text())
    else:
        log("skipped classifier curve: no --classifier JSON given")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stem, fig in build_figures(runs, classifier, log).items():
        written += save_figure(fig, out / stem, formats)
    return written
