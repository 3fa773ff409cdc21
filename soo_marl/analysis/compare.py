"""Comparisons of evaluated runs: behavioural differences, differences of a metric with
their CIs, and the verdict words of the reports (docs/spec.md §4.7, §4.11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from soo_marl import metrics
from soo_marl.analysis.runs import summary

#: Verdict words of the reports, each defined once (docs/spec.md §4.11).
SHOWN = "**yes**"
OPPOSITE = "**no** (opposite sign)"
NOT_SHOWN = "**not shown** (CI includes 0)"
NOT_MEASURED = "not measured"


def behavioural_differences(
    grids: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, str]] | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """Behavioural difference (docs/spec.md §4.7) of each pair of conditions: per seed
    :func:`metrics.behavioural_difference` of their (S, 100, 100) frequency grids (seeds
    matched by index), summarised by :func:`metrics.summarize` (mean, SD, 95% CI)."""
    labels = list(grids)
    pairs = list(pairs) if pairs is not None else list(combinations(labels, 2))
    out = {}
    for a, b in pairs:
        ga, gb = np.asarray(grids[a]), np.asarray(grids[b])
        if ga.shape != gb.shape:
            raise ValueError(f"{a!r} and {b!r} grids differ in shape: {ga.shape} vs {gb.shape}")
        out[(a, b)] = metrics.summarize(metrics.behavioural_difference(ga, gb))
    return out


def values(m: dict[str, Any], key: str) -> np.ndarray:
    """Per-seed values of one metric of a metrics.json (empty if absent)."""
    s = summary(m, key)
    return np.asarray(s["values"] if s else [], float)


def difference(a: dict, b: dict, key: str, paired: bool) -> dict:
    """Mean of ``a`` minus mean of ``b`` for one metric, with a 95% bootstrap CI.

    ``paired`` (for runs fine-tuned from the same parent seeds): per-seed differences are
    resampled together; otherwise each run's seeds are resampled independently.
    """
    va, vb = values(a, key), values(b, key)
    if not paired:
        return metrics.summarize_difference(va, vb)
    if va.shape != vb.shape or list(a["seeds"]) != list(b["seeds"]):
        raise ValueError(f"paired difference needs the same seeds: {a['seeds']} vs {b['seeds']}")
    return metrics.summarize(va - vb)


def verdict(diff: dict, expected_sign: int) -> str:
    """Whether a difference's 95% CI lies on the expected side of zero."""
    lo, hi = diff["ci_low"], diff["ci_high"]
    if not np.isfinite(lo) or not np.isfinite(hi):
        return NOT_MEASURED
    if (expected_sign > 0 and lo > 0) or (expected_sign < 0 and hi < 0):
        return SHOWN
    if (expected_sign > 0 and hi < 0) or (expected_sign < 0 and lo > 0):
        return OPPOSITE
    return NOT_SHOWN
