"""Comparisons of evaluated runs: behavioural differences, differences of a metric with
their CIs, Holm's adjustment within declared families, and the verdict words of the
reports (docs/spec.md §4.7, §4.11).

Verdict rule v2 (the default) uses the primary interval (:data:`soo_marl.stats.PRIMARY`,
Student-t; Welch for independent runs) at the level Holm's step-down procedure gives a
comparison inside its family (:func:`holm_levels`); v1, kept for the record, used the 95%
percentile bootstrap without adjustment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl import metrics, stats
from soo_marl.analysis.runs import summary
from soo_marl.rundir import require_metrics

#: Verdict words of the reports, each defined once (docs/spec.md §4.11).
SHOWN = "**yes**"
OPPOSITE = "**no** (opposite sign)"
NOT_SHOWN = "**not shown** (CI includes 0)"
NOT_MEASURED = "not measured"
#: Verdict rules: "v2" (primary interval, Holm within declared families) and "v1" (95%
#: percentile bootstrap, no adjustment; kept computable for the record).
RULES = ("v1", "v2")
RULE = "v2"
#: Family-wise error rate of the verdicts (two-sided intervals at 1 − ALPHA).
ALPHA = 0.05
#: The runs of a ``soo-marl reproduce --out`` folder (the training and fine-tuning stages
#: of ``studies/reproduce.yaml``), and the measures :func:`compare_reproductions` compares
#: in each (title → metrics.json key).
REPRODUCTION_RUNS = ("deceptive", "honest", "soo", "nosoo")
REPRODUCTION_MEASURES = {
    "trap rate": "trap_rate",
    "blue goal rate": "blue_goal_rate",
    "blue at fake": "blue_at_fake",
    "luring Δtrap": "luring_delta_trap",
}
#: The verdicts of :func:`compare_reproductions`.
SAME, DIFFERENT = "statistically the same", "different"


def rule_method(rule: str = RULE) -> str:
    """The interval method of a verdict rule: v1 the percentile bootstrap, v2 the primary."""
    if rule not in RULES:
        raise ValueError(f"unknown verdict rule {rule!r}; known: {', '.join(RULES)}")
    return "percentile" if rule == "v1" else stats.PRIMARY


def interval_name(rule: str = RULE) -> str:
    """How a report names the interval of a verdict rule (for table captions)."""
    method = rule_method(rule)
    return {
        "t": "Student-t CI (Welch for independent runs)",
        "bca": "BCa bootstrap CI",
        "percentile": "percentile-bootstrap CI",
    }[method]


def behavioural_differences(
    grids: Mapping[str, np.ndarray],
    pairs: Sequence[tuple[str, str]] | None = None,
    method: str = metrics.SUMMARY_METHOD,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Behavioural difference (docs/spec.md §4.7) of each pair of conditions: per seed
    :func:`metrics.behavioural_difference` of their (S, 100, 100) frequency grids (seeds
    matched by index), summarised by :func:`metrics.summarize` (mean, SD, 95% CI by
    ``method``: the percentile bootstrap of the figures and tables by default; the claims
    table recomputes its behavioural claim under its verdict rule)."""
    labels = list(grids)
    pairs = list(pairs) if pairs is not None else list(combinations(labels, 2))
    out = {}
    for a, b in pairs:
        ga, gb = np.asarray(grids[a]), np.asarray(grids[b])
        if ga.shape != gb.shape:
            raise ValueError(f"{a!r} and {b!r} grids differ in shape: {ga.shape} vs {gb.shape}")
        bd = metrics.behavioural_difference(ga, gb)
        out[(a, b)] = metrics.summarize(bd, method=method)
    return out


def values(m: dict[str, Any], key: str) -> np.ndarray:
    """Per-seed values of one metric of a metrics.json (empty if absent)."""
    s = summary(m, key)
    return np.asarray(s["values"] if s else [], float)


def difference(
    a: dict, b: dict, key: str, paired: bool, rule: str = RULE, confidence: float = 0.95
) -> dict:
    """Mean of ``a`` minus mean of ``b`` for one metric, with the CI of ``rule`` at
    ``confidence`` (v2: Student-t for paired, Welch for unpaired; v1: percentile bootstrap).

    ``paired`` (for runs fine-tuned from the same parent seeds): the per-seed differences
    are summarised; otherwise the two runs' seeds are independent groups.
    """
    va, vb = values(a, key), values(b, key)
    method = rule_method(rule)
    if not paired:
        return metrics.summarize_difference(va, vb, ci=confidence, method=method)
    if va.shape != vb.shape or list(a["seeds"]) != list(b["seeds"]):
        raise ValueError(f"paired difference needs the same seeds: {a['seeds']} vs {b['seeds']}")
    return metrics.summarize(va - vb, ci=confidence, method=method)


def difference_pvalue(
    a: dict, b: dict, key: str, paired: bool, expected_sign: int, null: float = 0.0
) -> float:
    """p-value of the t-test (Welch when unpaired) that the difference a − b lies beyond
    ``null`` on the ``expected_sign`` side, doubled to match the two-sided interval
    (:func:`soo_marl.stats.t_pvalue`); Holm's ranking uses it."""
    va, vb = values(a, key), values(b, key)
    if not paired:
        return stats.welch_pvalue(va[~np.isnan(va)], vb[~np.isnan(vb)], null, expected_sign)
    d = va - vb
    return stats.t_pvalue(d[~np.isnan(d)], null, expected_sign)


def holm_levels(
    pvalues: Mapping[Any, float],
    families: Mapping[str, Sequence[Any]] | None = None,
    alpha: float = ALPHA,
) -> dict[Any, float]:
    """The confidence level of each comparison's interval under rule v2: Holm's step-down
    adjustment (:func:`soo_marl.stats.holm_levels`) inside each family declared in
    ``families`` (family name → comparison keys; a key in no family, or a family member
    without a p-value, is left alone), 1 − ``alpha`` for every other comparison.

    A comparison may belong to one family only; m is the number of the family's members
    that have a finite p-value (the comparisons actually made).
    """
    levels = {k: 1.0 - alpha for k in pvalues}
    seen: dict[Any, str] = {}
    for name, members in (families or {}).items():
        keys = [k for k in members if k in pvalues]
        for k in keys:
            if k in seen:
                raise ValueError(f"{k!r} is in two families: {seen[k]!r} and {name!r}")
            seen[k] = name
        for k, level in zip(
            keys, stats.holm_levels([pvalues[k] for k in keys], alpha), strict=True
        ):
            levels[k] = level
    return levels


def verdict(diff: dict, expected_sign: int) -> str:
    """Whether a difference's CI (computed by :func:`difference` under a rule, at its
    level) lies on the expected side of zero: the same words under v1 and v2."""
    lo, hi = diff["ci_low"], diff["ci_high"]
    if not np.isfinite(lo) or not np.isfinite(hi):
        return NOT_MEASURED
    if (expected_sign > 0 and lo > 0) or (expected_sign < 0 and hi < 0):
        return SHOWN
    if (expected_sign > 0 and hi < 0) or (expected_sign < 0 and lo > 0):
        return OPPOSITE
    return NOT_SHOWN


def compare_reproductions(
    a_out: str | Path,
    b_out: str | Path,
    runs: Sequence[str] = REPRODUCTION_RUNS,
    measures: Mapping[str, str] = REPRODUCTION_MEASURES,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """Are two reproductions (``soo-marl reproduce --out`` folders of the same preset and
    seeds, made with other code, kernels or CPUs) statistically the same?

    For each run and measure the per-seed values of A and B are compared as independent
    groups: the Welch 95% interval of mean(A) − mean(B) (``ci95``) and its two-sided
    p-value, with Holm's step-down correction over all comparisons
    (:func:`soo_marl.stats.holm_levels`: ``holm_level``, ``rejected``). The runs share
    seeds, but a last-bit difference grows into another trajectory within a training
    (docs/spec.md §7.1), so the seeds are not paired. Verdict: :data:`SAME` when no
    comparison is rejected at family-wise ``alpha``, else :data:`DIFFERENT`.
    """
    rows: list[dict[str, Any]] = []
    for run in runs:
        metrics_a = require_metrics(Path(a_out) / run)
        metrics_b = require_metrics(Path(b_out) / run)
        for name, key in measures.items():
            a, b = values(metrics_a, key), values(metrics_b, key)
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            p = min(stats.welch_pvalue(a, b, side=1), stats.welch_pvalue(a, b, side=-1))
            low, high = stats.welch_interval(a, b)
            measured = min(a.size, b.size) > 1  # else p and the interval are NaN
            mean_a = float(a.mean()) if measured else np.nan
            mean_b = float(b.mean()) if measured else np.nan
            sd = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)) if measured else np.nan
            rows.append(
                {
                    "run": run,
                    "measure": name,
                    "n": [int(a.size), int(b.size)],
                    "a": mean_a,
                    "b": mean_b,
                    "difference": mean_a - mean_b,
                    "ci95": [low, high],
                    "p": p,
                    "sd_pooled": sd,
                }
            )
    levels = stats.holm_levels([r["p"] for r in rows], alpha)
    for r, level in zip(rows, levels, strict=True):
        r["holm_level"] = level
        r["rejected"] = bool(r["p"] < 1.0 - level)
    rejected = sum(r["rejected"] for r in rows)
    return {
        "a": str(a_out),
        "b": str(b_out),
        "alpha": alpha,
        "comparisons": rows,
        "rejected": rejected,
        "verdict": DIFFERENT if rejected else SAME,
    }


def format_reproduction_comparison(result: Mapping[str, Any]) -> str:
    """The table and verdict of :func:`compare_reproductions`, as printed by
    ``soo-marl compare-runs``."""
    lines = [
        f"A = {result['a']}, B = {result['b']}; Welch 95% intervals of A − B, Holm over all rows",
        f"{'run':10} {'measure':15} {'A':>7} {'B':>7} {'A − B':>8} {'95% interval':>20} {'p':>6}",
    ]
    for r in result["comparisons"]:
        low, high = r["ci95"]
        flag = "  rejected (Holm)" if r["rejected"] else ""
        lines.append(
            f"{r['run']:10} {r['measure']:15} {r['a']:7.3f} {r['b']:7.3f} "
            f"{r['difference']:+8.3f} [{low:+.3f}, {high:+.3f}] {r['p']:6.3f}{flag}"
        )
    lines.append(
        f"verdict: {result['verdict']} ({result['rejected']} of {len(result['comparisons'])} "
        f"rejected at family-wise {100 * result['alpha']:g}%)"
    )
    return "\n".join(lines)
