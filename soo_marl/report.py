"""Markdown tables of evaluation results (read from each run's ``eval/metrics.json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

#: (key in metrics.json, column title); keys under "metrics" unless listed as top-level.
MAIN_COLUMNS = (
    ("trap_rate", "trap rate"),
    ("luring_delta_trap", "luring Δtrap"),
    ("deceivability", "deceivability"),
    ("blue_at_fake", "blue at fake"),
    ("blue_goal_rate", "blue goal"),
    ("red_goal_rate", "red goal"),
    ("return_blue", "return blue"),
    ("return_red", "return red"),
    ("headline_guard", "headline (guard 0.01)"),
    ("headline_noguard", "headline (guard 0)"),
    ("soo_value", "SOO value"),
)
TOP_LEVEL = {"luring_delta_trap", "deceivability", "blue_at_fake"}


def load_metrics(run_dirs: Sequence[str | Path]) -> list[dict]:
    """The ``eval/metrics.json`` of each run, in order."""
    out = []
    for d in run_dirs:
        path = Path(d) / "eval" / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{d}: no eval/metrics.json (run soo-marl evaluate first)")
        out.append(json.loads(path.read_text()))
    return out


def fmt(s: dict | None, digits: int = 3) -> str:
    """ "mean [ci_low, ci_high]" of a summary, or "–"."""
    if not s or s.get("n", 0) == 0:
        return "–"
    return f"{s['mean']:.{digits}f} [{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def _get(m: dict, key: str) -> dict | None:
    return m.get(key) if key in TOP_LEVEL else m["metrics"].get(key)


def results_table(
    metrics: Sequence[dict], columns: Sequence[tuple[str, str]] = MAIN_COLUMNS
) -> str:
    """One row per run, one column per metric: mean [95% bootstrap CI] over seeds."""
    head = "| condition | seeds | " + " | ".join(t for _, t in columns) + " |"
    sep = "|" + "---|" * (len(columns) + 2)
    rows = [head, sep]
    for m in metrics:
        cells = [fmt(_get(m, k), 2 if k.startswith("return") else 3) for k, _ in columns]
        rows.append(f"| {m['label']} | {len(m['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_seed_table(m: dict, keys: Sequence[str]) -> str:
    """Per-seed values of some metrics of one run."""
    rows = ["| seed | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for i, seed in enumerate(m["seeds"]):
        vals = [_get(m, k)["values"][i] for k in keys]
        rows.append(f"| {seed} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    return "\n".join(rows)


def probe_table(metrics: Sequence[dict]) -> str:
    """Each learned red with scripted blues and with the other runs' blues (cross-play)."""
    rows = [
        "| condition (red from) | own blue | to_goal blue | to_fake blue | still blue | "
        "cross-play: this blue with … red |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics:
        cross = "; ".join(f"{k}: {fmt(v['trap_rate'])}" for k, v in m["cross_play"].items())
        rows.append(
            f"| {m['label']} | {fmt(m['metrics']['trap_rate'])} | "
            + " | ".join(fmt(m["probes"][p]["trap_rate"]) for p in ("to_goal", "to_fake", "still"))
            + f" | {cross or '–'} |"
        )
    return "\n".join(rows)


def saturation_line(m: dict) -> str:
    """ "k/n saturated" on evaluation observations and on a replay batch."""
    parts = []
    for key, name in (
        ("saturation", "evaluation observations"),
        ("saturation_replay", "replay batch"),
    ):
        s = m.get(key)
        if s:
            worst = max(max(x) for x in s["fraction_of_outputs"])
            parts.append(
                f"{s['saturated_actors']}/{s['actors']} saturated on {name} "
                f"(largest fraction of |pre-tanh| > 5 outputs: {worst:.3f})"
            )
    return "; ".join(parts)
