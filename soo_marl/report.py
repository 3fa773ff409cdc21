"""Markdown tables of evaluation results (read from each run's ``eval/metrics.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl.metrics import behavioural_difference, summarize, summarize_difference

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


# --------------------------------------------------------------------------- comparisons


def _values(m: dict, key: str) -> np.ndarray:
    s = _get(m, key)
    return np.asarray(s["values"] if s else [], float)


def difference(a: dict, b: dict, key: str, paired: bool) -> dict:
    """Mean of ``a`` minus mean of ``b`` for one metric, with a 95% bootstrap CI.

    ``paired`` (for runs fine-tuned from the same parent seeds): per-seed differences are
    resampled together; otherwise each run's seeds are resampled independently.
    """
    va, vb = _values(a, key), _values(b, key)
    if not paired:
        return summarize_difference(va, vb)
    if va.shape != vb.shape or list(a["seeds"]) != list(b["seeds"]):
        raise ValueError(f"paired difference needs the same seeds: {a['seeds']} vs {b['seeds']}")
    return summarize(va - vb)


def verdict(diff: dict, expected_sign: int) -> str:
    """Whether a difference's 95% CI lies on the expected side of zero."""
    lo, hi = diff["ci_low"], diff["ci_high"]
    if not np.isfinite(lo) or not np.isfinite(hi):
        return "not measured"
    if (expected_sign > 0 and lo > 0) or (expected_sign < 0 and hi < 0):
        return "**yes**"
    if (expected_sign > 0 and hi < 0) or (expected_sign < 0 and lo > 0):
        return "**no** (opposite sign)"
    return "**not shown** (CI includes 0)"


def read_grids(run_dir: str | Path, kind: str) -> np.ndarray | None:
    """One kind of (S, 100, 100) threshold grid from ``eval/grids.npz``, or None."""
    path = Path(run_dir) / "eval" / "grids.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z[kind]) if kind in z.files else None


def behaviour_differences(
    run_dirs: Mapping[str, str | Path],
    pairs: Sequence[tuple[str, str]],
    kind: str = "freq_noguard",
) -> dict[tuple[str, str], dict]:
    """Behavioural difference (SPEC §4) of each pair of named runs (matched seeds)."""
    grids = {name: read_grids(d, kind) for name, d in run_dirs.items()}
    out = {}
    for a, b in pairs:
        ga, gb = grids[a], grids[b]
        if ga is None or gb is None or ga.shape != gb.shape:
            continue
        out[(a, b)] = summarize(behavioural_difference(ga, gb))
    return out


def behaviour_table(diffs: Mapping[str, Mapping[tuple[str, str], dict]]) -> str:
    """Rows: pairs of conditions; columns: grid kinds (mean [95% CI] over seeds)."""
    kinds = list(diffs)
    pairs = list(dict.fromkeys(p for d in diffs.values() for p in d))
    rows = ["| pair | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
    for a, b in pairs:
        cells = [fmt(diffs[k].get((a, b)), 4) for k in kinds]
        rows.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _d(diff: dict, digits: int = 3) -> str:
    m, lo, hi = diff["mean"], diff["ci_low"], diff["ci_high"]
    return f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def claims_table(
    ms: Mapping[str, dict],
    behaviour: Mapping[tuple[str, str], dict],
    classifier: Mapping[str, Any] | None,
) -> str:
    """The paper's claims, each with what this run measured and whether it shows.

    ``ms`` maps "deceptive", "honest", "soo", "nosoo" to metrics.json contents;
    ``behaviour`` holds behavioural differences keyed by pairs of those names.
    """
    rows = [
        "| claim | measured (difference, 95% CI) | shown? |",
        "|---|---|---|",
    ]
    dec, hon = ms["deceptive"], ms["honest"]
    d = difference(dec, hon, "trap_rate", paired=False)
    rows.append(
        f"| deceptive baseline traps red more often than honest | trap rate {_d(d)} | "
        f"{verdict(d, +1)} |"
    )
    d = difference(dec, hon, "luring_delta_trap", paired=False)
    rows.append(
        "| …because blue lures (blue-side: luring Δtrap, deceptive − honest) | "
        f"{_d(d)} | {verdict(d, +1)} |"
    )
    d = difference(dec, hon, "blue_at_fake", paired=False)
    rows.append(f"| deceptive blue visits the fake landmark more | {_d(d)} | {verdict(d, +1)} |")
    if "soo" in ms and "nosoo" in ms:
        for key, name in (
            ("trap_rate", "trap rate"),
            ("luring_delta_trap", "luring Δtrap"),
            ("blue_at_fake", "blue at fake"),
            ("headline_noguard", "headline count"),
        ):
            d = difference(ms["soo"], ms["nosoo"], key, paired=True)
            rows.append(
                f"| SOO fine-tuning lowers {name} below the `--no-soo` control (paired by "
                f"parent seed) | {_d(d)} | {verdict(d, -1)} |"
            )
    soo_hon, soo_dec = behaviour.get(("soo", "honest")), behaviour.get(("soo", "deceptive"))
    if soo_hon and soo_dec:
        per_seed = np.asarray(soo_hon["values"]) - np.asarray(soo_dec["values"])
        d = summarize(per_seed)
        rows.append(
            "| SOO behaviour closer to honest than to deceptive (behavioural difference, "
            f"SOO–honest minus SOO–deceptive) | {_d(d, 5)} | {verdict(d, -1)} |"
        )
    if classifier is not None:
        acc = list(classifier["accuracy"])
        ns = list(classifier["n_episodes"])
        full = [n for n, a in zip(ns, acc, strict=True) if a >= 1.0]
        where = f"100% from {full[0]} episodes" if full else f"best {max(acc):.3f} (N ≤ {ns[-1]})"
        rows.append(
            f"| SOO classifier separates honest from deceptive with 100% accuracy | {where} | "
            f"{'**yes**' if full else '**no**'} |"
        )
    return "\n".join(rows)
