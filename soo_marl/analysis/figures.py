"""Figures of the reproduction (docs/spec.md §4.3–§4.11, §5.4), drawn from data already in memory.

Every ``fig_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot
(no global figure state, no GUI backend: files are rendered by Agg), so the same functions
serve the CLI, the tests and the notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle
from matplotlib.ticker import MaxNLocator

from soo_marl import metrics, rundir
from soo_marl.analysis.compare import behavioural_differences
from soo_marl.envs import core

#: history.jsonl columns of the learning curves (TensorBoard tags without "charts/").
LEARNING_CURVES: dict[str, str] = {
    "trap_rate": "trap rate",
    "blue_goal_rate": "blue goal-reach rate",
    "return_blue": "blue episode return",
    "return_red": "red episode return",
}
CONDITION_COLORS = {
    "deceptive": "tab:orange",
    rundir.SOO: "tab:green",
    rundir.NO_SOO: "tab:gray",
    "honest": "tab:purple",
}


def condition_color(condition: str, index: int = 0) -> str:
    """Colour of a condition in every figure (a cycle colour for unknown ones)."""
    return CONDITION_COLORS.get(condition, f"C{index % 10}")


# --------------------------------------------------------------------------- Figure 2


def pick_episodes(
    trajectories: dict[str, np.ndarray], count: int = 3, seed_index: int = 0
) -> list[int]:
    """Episode indices for :func:`fig_trajectories`: one per evaluation seed (cycling),
    the first in each block whose goal and fake landmark are at least 0.6 apart (so a
    detour toward the fake is visible), else the block's first episode."""
    lm = np.asarray(trajectories["landmarks"])[seed_index]
    m = lm.shape[0]
    n = max(1, min(int(trajectories.get("episodes_per_eval_seed", m)), m))
    blocks = max(1, m // n)
    apart = np.linalg.norm(lm[:, 0] - lm[:, 1], axis=-1) >= 0.6
    chosen: list[int] = []
    for i in range(min(count, m)):
        b = i % blocks
        pool = [j for j in range(b * n, (b + 1) * n) if j not in chosen]
        pool = pool or [j for j in range(m) if j not in chosen]
        good = [j for j in pool if apart[j]]
        chosen.append((good or pool)[0])
    return chosen


def _check_same_starts(
    conditions: Sequence[tuple[str, dict[str, np.ndarray]]], episodes: Sequence[int], s: int
) -> None:
    ref_label, ref = conditions[0]
    for label, tr in conditions[1:]:
        for key in ("landmarks", "goal_index"):
            if not np.allclose(ref[key][s, list(episodes)], tr[key][s, list(episodes)]):
                raise ValueError(
                    f"{label!r} and {ref_label!r} do not share start states ({key} differ): "
                    "evaluate them with the same evaluation seeds"
                )
        for key in ("red_pos", "blue_pos"):
            if not np.allclose(ref[key][s, list(episodes), 0], tr[key][s, list(episodes), 0]):
                raise ValueError(
                    f"{label!r} and {ref_label!r} do not share start states ({key} differ)"
                )


def fig_trajectories(
    conditions: Sequence[tuple[str, dict[str, np.ndarray]]],
    episodes: Sequence[int] | None = None,
    seed_index: int = 0,
    landmark_radius: float = core.EnvConfig.landmark_radius,
    arena: float = core.EnvConfig.arena_half_width,
    note: str = "",
) -> Figure:
    """Figure 2: blue's and red's paths on the same start states, one row per episode and
    one column per condition.

    ``conditions`` is a sequence of (label, trajectories) with the arrays of
    ``eval/trajectories.npz``; ``episodes`` defaults to :func:`pick_episodes` of the first
    condition. Raises ValueError when the conditions do not share those start states.
    """
    if not conditions:
        raise ValueError("fig_trajectories needs at least one condition")
    first = conditions[0][1]
    episodes = list(episodes) if episodes is not None else pick_episodes(first, 3, seed_index)
    _check_same_starts(conditions, episodes, seed_index)
    n_per = int(
        first["episodes_per_eval_seed"]
        if "episodes_per_eval_seed" in first
        else first["landmarks"].shape[1]
    )
    eval_seeds = first.get("eval_seeds")
    seed = int(first["seeds"][seed_index]) if "seeds" in first else seed_index
    rows, cols = len(episodes), len(conditions)
    fig = Figure(figsize=(max(8.5, 2.9 * cols + 0.6), 2.9 * rows + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for c, (label, tr) in enumerate(conditions):
        for r, j in enumerate(episodes):
            ax = axes[r, c]
            _draw_episode(ax, tr, seed_index, j, landmark_radius, arena)
            if r == 0:
                ax.set_title(label, fontsize=11)
            if c == 0:
                k = f", eval seed {int(eval_seeds[j // n_per])}" if eval_seeds is not None else ""
                ax.set_ylabel(f"episode {j}{k}\ny", fontsize=9)
            if r == rows - 1:
                ax.set_xlabel("x", fontsize=9)
    fig.legend(
        handles=_trajectory_legend(), loc="outside lower center", ncol=4, fontsize=9, frameon=False
    )
    fig.suptitle(
        f"Trajectories on the same start states (trained seed {seed}; dots every step){note}",
        fontsize=12,
    )
    return fig


def _draw_episode(
    ax: Axes,
    tr: Mapping[str, np.ndarray],
    seed_index: int,
    j: int,
    landmark_radius: float,
    arena: float,
) -> None:
    """One panel of Figure 2: the arena, both landmarks, both paths and where red got trapped."""
    goal, fake = metrics.goal_and_fake(
        tr["landmarks"][seed_index, j], tr["goal_index"][seed_index, j]
    )
    ax.add_patch(Rectangle((-arena, -arena), 2 * arena, 2 * arena, fill=False, lw=1.0, ec="0.4"))
    ax.add_patch(Circle(tuple(goal), landmark_radius, color="tab:green", zorder=2))
    ax.add_patch(Circle(tuple(fake), landmark_radius, color="black", zorder=2))
    for key, color in (("red_pos", "tab:red"), ("blue_pos", "tab:blue")):  # blue on top
        p = tr[key][seed_index, j]
        ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.6, zorder=3)
        ax.plot(p[:, 0], p[:, 1], ".", color=color, ms=2.5, zorder=3)
        ax.plot(*p[0], "o", mfc="white", mec=color, mew=1.6, ms=7, zorder=4)
        ax.plot(*p[-1], "o", color=color, ms=5, zorder=4)
    trapped = np.flatnonzero(tr["trapped"][seed_index, j])
    if trapped.size:
        t = int(trapped[0])
        ax.plot(*tr["red_pos"][seed_index, j, t], "X", color="gold", mec="black", ms=11, zorder=5)
    ax.set_xlim(-arena, arena)
    ax.set_ylim(-arena, arena)
    ax.set_aspect("equal")
    ticks = [-arena, -arena / 2, 0.0, arena / 2, arena]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.tick_params(labelsize=8)


def _trajectory_legend() -> list[Line2D]:
    """The legend entries of Figure 2: landmarks, paths, start, end and the trap marker."""
    return [
        Line2D([], [], marker="o", ls="", color="tab:green", ms=9, label="goal landmark"),
        Line2D([], [], marker="o", ls="", color="black", ms=9, label="fake landmark"),
        Line2D([], [], color="tab:blue", lw=1.6, label="blue path"),
        Line2D([], [], color="tab:red", lw=1.6, label="red path"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="0.2", ms=7, label="start"),
        Line2D([], [], marker="o", ls="", color="0.2", ms=5, label="end"),
        Line2D([], [], marker="X", ls="", color="gold", mec="black", ms=10, label="red trapped"),
    ]


# --------------------------------------------------------------------------- Figure 3


def _grid_extent() -> list[float]:
    dx = metrics.THRESH_X[1] - metrics.THRESH_X[0]
    dy = metrics.THRESH_Y[1] - metrics.THRESH_Y[0]
    return [
        metrics.THRESH_X[0] - dx / 2,
        metrics.THRESH_X[-1] + dx / 2,
        metrics.THRESH_Y[0] - dy / 2,
        metrics.THRESH_Y[-1] + dy / 2,
    ]


def fig_threshold_grids(
    grids: Sequence[tuple[str, np.ndarray]],
    title: str = "Threshold grid",
    colorbar_label: str = "visible records per episode",
    cmap: str = "viridis",
) -> Figure:
    """Figure 3: one threshold-grid map per condition on ONE colour scale.

    ``grids`` is a sequence of (label, grid) with grid (S, 100, 100) (averaged over seeds
    here) or (100, 100); cell [i, j] counts records with pn > x_i and c < y_j. The axes are
    the panels followed by one shared colourbar; the headline cell (x = 0.7, y = 0.6) is
    marked.
    """
    if not grids:
        raise ValueError("fig_threshold_grids needs at least one grid")
    means = []
    for label, g in grids:
        g = np.asarray(g, dtype=np.float64)
        if g.shape[-2:] != (len(metrics.THRESH_X), len(metrics.THRESH_Y)):
            raise ValueError(f"{label!r}: grid shape {g.shape} is not (..., 100, 100)")
        means.append(g.reshape(-1, *g.shape[-2:]).mean(axis=0))
    vmax = max(float(np.nanmax(m)) for m in means)
    vmax = vmax if vmax > 0 else 1.0
    n = len(grids)
    fig = Figure(figsize=(max(9.0, 3.3 * n + 1.2), 3.8), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    image = None
    for ax, (label, _), mean in zip(axes, grids, means, strict=True):
        image = ax.imshow(
            mean.T,
            origin="lower",
            extent=_grid_extent(),
            aspect="auto",
            vmin=0.0,
            vmax=vmax,
            cmap=cmap,
            interpolation="nearest",
        )
        ax.plot(
            metrics.HEADLINE_X,
            metrics.HEADLINE_Y,
            "+",
            color="white",
            mew=2,
            ms=10,
            label=f"headline (x={metrics.HEADLINE_X}, y={metrics.HEADLINE_Y})",
        )
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("projection threshold x")
        ax.set_ylabel("cosine threshold y")
    axes[0].legend(loc="lower right", fontsize=7, framealpha=0.7)
    assert image is not None  # grids is not empty
    cbar = fig.colorbar(image, ax=list(axes), shrink=0.95)
    cbar.set_label(colorbar_label)
    fig.suptitle(title, fontsize=12)
    return fig


# --------------------------------------------------------------------------- Figure 4


def _summary_points(
    ax: Any,
    summaries: Sequence[dict[str, Any]],
    colors: Sequence[str],
    show_sd: bool = True,
) -> None:
    """Per-seed dots, mean marker, ±SD (thick) and 95% CI (thin, capped) at x = 0, 1, …"""
    rng = np.random.default_rng(0)
    for i, (s, color) in enumerate(zip(summaries, colors, strict=True)):
        vals = np.asarray(s["values"], dtype=float)
        x = i + 0.22 + rng.uniform(-0.08, 0.08, vals.size)
        ax.plot(x, vals, "o", ms=3.5, color=color, alpha=0.5, mec="none")
        if not np.isfinite(s["mean"]):
            continue
        ax.errorbar(
            i,
            s["mean"],
            yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
            fmt="none",
            ecolor="black",
            elinewidth=1.0,
            capsize=5,
            zorder=3,
        )
        if show_sd:
            ax.errorbar(
                i,
                s["mean"],
                yerr=s["sd"],
                fmt="none",
                ecolor=color,
                elinewidth=5,
                alpha=0.6,
                zorder=2,
            )
        ax.plot(i, s["mean"], "D", color=color, mec="black", ms=7, zorder=4)


def _summary_legend(target: Any, show_sd: bool = True, **kwargs: Any) -> None:
    """Legend of :func:`_summary_points` on an Axes or (with ``loc`` etc.) a Figure."""
    handles = [Line2D([], [], marker="D", ls="", color="0.5", mec="black", label="mean")]
    if show_sd:
        handles.append(Line2D([], [], color="0.5", lw=5, alpha=0.6, label="± SD"))
    handles += [
        Line2D([], [], color="black", lw=1, marker="_", ms=10, label="95% CI (bootstrap)"),
        Line2D([], [], marker="o", ls="", color="0.5", alpha=0.5, ms=4, label="per seed"),
    ]
    target.legend(handles=handles, **{"fontsize": 8, "loc": "best", **kwargs})


def fig_behavioural_difference(
    grid_sets: Mapping[str, Mapping[str, np.ndarray]],
    pairs: Sequence[tuple[str, str]] | None = None,
    note: str = "",
) -> Figure:
    """Figure 4: behavioural difference of pairs of conditions, one panel per grid kind.

    ``grid_sets`` maps a panel title (e.g. "guard 0.01") to {label: (S, 100, 100)
    per-episode frequency grid}; ``pairs`` defaults to all pairs in the given order.
    Each pair shows per-seed values, the mean ± SD and its 95% bootstrap CI.
    """
    if not grid_sets:
        raise ValueError("fig_behavioural_difference needs at least one grid set")
    n = len(grid_sets)
    n_pairs = max(
        len(pairs) if pairs is not None else len(list(combinations(g, 2)))
        for g in grid_sets.values()
    )
    fig = Figure(figsize=(max(4.5, 1.3 * n_pairs + 1.5) * n, 4.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (title, grids) in zip(axes, grid_sets.items(), strict=True):
        diffs = behavioural_differences(grids, pairs)
        names = [f"{a}\nvs\n{b}" for a, b in diffs]
        pair_colors = ["0.3"] * len(diffs)
        _summary_points(ax, list(diffs.values()), pair_colors)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("behavioural difference\n(mean over grid of squared difference)")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    _summary_legend(fig, loc="outside lower center", ncol=4, frameon=False)
    fig.suptitle(f"Behavioural difference between conditions (per-episode threshold grids){note}")
    return fig


# --------------------------------------------------------------------------- probes


#: Probe panels: (path in metrics.json, y label, title, differences around 0?).
PROBES = (
    (("luring_delta_trap",), "Δ trap rate", "luring Δtrap\n(own blue − to_goal blue)", True),
    (
        ("blind", "luring_delta_trap"),
        "Δ trap rate",
        "blind luring Δtrap\n(blue blind to red − to_goal)",
        True,
    ),
    (
        ("closed_loop_share",),
        "Δ trap rate",
        "closed-loop share of luring\n(luring − blind luring)",
        True,
    ),
    (
        ("blue_at_fake",),
        "fraction of episodes",
        f"blue at fake landmark\n(within {core.EnvConfig().at_landmark_distance:g})",
        False,
    ),
    (("deceivability",), "trap rate", "deceivability\n(trap rate with to_fake blue)", False),
)


def _path(m: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = m
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def fig_probes(
    metrics_by_label: Mapping[str, Mapping[str, Any]], colors: Mapping[str, str] | None = None
) -> Figure:
    """Blue-centric probes (docs/spec.md §4.4) per condition: luring Δtrap, blind luring
    Δtrap, the closed-loop share of luring, blue-at-fake and deceivability, each with its
    95% bootstrap CI and per-seed values (a panel is empty for files without it).

    ``metrics_by_label`` maps a condition label to its ``eval/metrics.json`` content.
    """
    if not metrics_by_label:
        raise ValueError("fig_probes needs at least one condition")
    colors = colors or {}
    labels = list(metrics_by_label)
    cols = [colors.get(lb, f"C{i}") for i, lb in enumerate(labels)]
    fig = Figure(figsize=(max(15.0, 5 * 1.0 * len(labels) + 2), 4.6), layout="constrained")
    axes = fig.subplots(1, len(PROBES), squeeze=False)[0]
    empty = {"values": [], "mean": float("nan"), "sd": float("nan")}
    for ax, (path, ylabel, title, around_zero) in zip(axes, PROBES, strict=True):
        sums = [_path(metrics_by_label[lb], path) or empty for lb in labels]
        _summary_points(ax, sums, cols, show_sd=False)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if not around_zero:
            ax.set_ylim(-0.02, 1.02)
    _summary_legend(fig, show_sd=False, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle("Blue-centric deception probes (mean over seeds, 95% CI)")
    return fig


# --------------------------------------------------------------------------- classifier


def fig_classifier(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Figure:
    """SOO classifier accuracy vs number of evaluation episodes: one ``classifier.json``
    (``n_episodes``, ``accuracy``, optionally ``units``, ``mean_soo``, ``variant``), or
    several variants side by side as one line each."""
    several = not isinstance(results, Mapping)
    results = [results] if isinstance(results, Mapping) else list(results)
    if not results:
        raise ValueError("fig_classifier needs at least one classifier result")
    fig = Figure(figsize=(6.4, 4.2) if several else (6.0, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, result in enumerate(results):
        n, acc = list(result["n_episodes"]), list(result["accuracy"])
        if not n or len(n) != len(acc):
            raise ValueError("classifier result needs equally long, non-empty n_episodes/accuracy")
        name = result.get("variant", "classifier accuracy") if several else "classifier accuracy"
        if several and result.get("mean_soo"):
            soo = result["mean_soo"]
            name += f" (mean SOO: hon {soo['honest']:.3g}, dec {soo['deceptive']:.3g})"
        marker, ls = "osD^"[i % 4], ("-", "--", "-.", ":")[i % 4]
        color = f"C{i}" if several else "tab:blue"
        ax.plot(n, acc, color=color, ms=4, label=name, marker=marker, ls=ls)
    ax.axhline(0.5, color="0.5", ls="--", lw=1, label="chance")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("evaluation episodes N per unit")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (honest has lower mean SOO)")
    ax.grid(alpha=0.3)
    first = results[0]
    sub = []
    if "units" in first:
        kind = (
            "trained seeds, eval seeds pooled"
            if first.get("pooled_eval_seeds")
            else "trained seed × eval seed"
        )
        sub.append(f"{first['units']} units ({kind})")
        sub.append("a unit with no out-of-sight step counts as wrong")
    soo = first.get("mean_soo") or {}
    if soo and not several:
        sub.append(
            "mean SOO over all out-of-sight steps, seeds pooled: "
            + ", ".join(f"{k} {v:.3g}" for k, v in soo.items())
        )
    names = [first.get(k, {}).get("label", k) for k in ("honest", "deceptive")]
    title = "\n".join([f"SOO classifier: {names[0]} vs {names[1]}", *sub])
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7 if several else 9)
    return fig


# --------------------------------------------------------------------------- learning curves


def fig_learning_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    colors: Mapping[str, str] | None = None,
    offsets: Mapping[str, int] | None = None,
    keys: Mapping[str, str] = LEARNING_CURVES,
) -> Figure:
    """Learning curves: mean ± SD over seeds vs training episode of the ``charts/*``
    scalars of ``history.jsonl`` (the same values the run logs to TensorBoard, one
    per seed and log interval). One panel per key, one line per condition.

    ``offsets`` shifts a run's episodes, e.g. a fine-tuned run by its parent's episodes
    so that its curve continues the parent's (drawn dashed, start marked).
    """
    if not histories:
        raise ValueError("fig_learning_curves needs at least one history")
    colors = colors or {}
    offsets = offsets or {}
    fig = Figure(figsize=(11.0, 7.0), layout="constrained")
    axes = fig.subplots(2, (len(keys) + 1) // 2, squeeze=False).ravel()
    for ax, (key, name) in zip(axes, keys.items(), strict=False):
        for i, (label, rows) in enumerate(histories.items()):
            pts = [(r["episode"], r[f"charts/{key}"]) for r in rows if f"charts/{key}" in r]
            if not pts:
                continue
            shift = int(offsets.get(label, 0))
            ep = np.array([p[0] for p in pts], dtype=float) + shift
            vals = np.array([p[1] for p in pts], dtype=float)  # (rows, seeds)
            mean = vals.mean(axis=1)
            sd = vals.std(axis=1, ddof=1) if vals.shape[1] > 1 else np.zeros_like(mean)
            color = colors.get(label, f"C{i}")
            extra = f", fine-tuned from episode {shift}" if shift else ""
            ax.plot(
                ep, mean, color=color, lw=1.5, ls="--" if shift else "-",
                label=f"{label} ({vals.shape[1]} seeds{extra})",
            )  # fmt: skip
            if shift:
                ax.axvline(shift, color=color, lw=0.8, ls=":")
            ax.fill_between(ep, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training episode (per seed)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(
        "Learning curves, mean ± SD over seeds (TensorBoard charts/* scalars, from history.jsonl)"
    )
    return fig
