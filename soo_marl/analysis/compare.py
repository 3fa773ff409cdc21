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
from typing import Any

import numpy as np

from soo_marl import metrics, stats
from soo_marl.analysis.runs import summary

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
