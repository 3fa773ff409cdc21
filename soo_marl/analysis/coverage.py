"""Coverage of 95% intervals of a mean over seeds, simulated on this project's own per-seed
values (docs/results/statistics.md, docs/spec.md §4.11).

Each population is the empirical distribution of a committed set of per-seed values
(``docs/results/statistics/populations.json``); its mean is the truth. For every
population and sample size n, ``reps`` samples of n values are drawn with replacement, and
each method's interval is checked for containing the truth. The same samples serve all
methods. Methods: Student-t (:func:`scipy.stats.t`), BCa (:func:`scipy.stats.bootstrap`)
and the percentile bootstrap (the algorithm of :func:`soo_marl.stats.percentile_interval`).

``python -m soo_marl.analysis.coverage --out docs/results/statistics`` writes
``coverage.json`` and ``coverage.md`` there (single-threaded; a few minutes on one core).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from soo_marl.provenance import cpu_model

#: The committed populations, relative to the repository root.
POPULATIONS = Path("docs/results/statistics/populations.json")
SIZES = (4, 8, 16, 32)
METHODS = ("t", "bca", "percentile")
TITLES = {"t": "Student-t", "bca": "BCa", "percentile": "percentile bootstrap"}
REPS = 4000
N_BOOT = 2000
CONFIDENCE = 0.95
SEED = 20261206
#: Replications per block of the bootstrap methods (bounds the memory).
BLOCK = 100


def t_bounds(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the mean of each row of ``x`` (reps, n); a constant row gives
    a zero-width interval."""
    n = x.shape[1]
    mean = x.mean(axis=1)
    se = x.std(axis=1, ddof=1) / np.sqrt(n)
    half = sps.t.ppf(0.5 + confidence / 2.0, n - 1) * se
    return mean - half, mean + half


def percentile_bounds(
    x: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of the mean of each row of ``x`` (reps, n): ``n_boot``
    resamples per row, numpy's linear quantiles."""
    reps, n = x.shape
    alpha = (1.0 - confidence) / 2.0
    low, high = np.empty(reps), np.empty(reps)
    for start in range(0, reps, BLOCK):
        rows = x[start : start + BLOCK]
        idx = rng.integers(0, n, size=(rows.shape[0], n_boot, n))
        means = np.take_along_axis(rows[:, None, :], idx, axis=2).mean(axis=2)
        q = np.quantile(means, [alpha, 1.0 - alpha], axis=1)
        low[start : start + BLOCK], high[start : start + BLOCK] = q
    return low, high


def bca_bounds(
    x: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval of the mean of each row of ``x`` (reps, n) by
    :func:`scipy.stats.bootstrap` (vectorised over rows). A constant row gives a zero-width
    interval (as :func:`soo_marl.stats.bca_interval`); other undefined intervals stay NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap(
            (x,),
            np.mean,
            axis=-1,
            vectorized=True,
            confidence_level=confidence,
            n_resamples=n_boot,
            method="BCa",
            batch=BLOCK,
            rng=rng,
        )
    low = np.asarray(res.confidence_interval.low, float).copy()
    high = np.asarray(res.confidence_interval.high, float).copy()
    const = np.all(x == x[:, :1], axis=1)
    low[const], high[const] = x[const, 0], x[const, 0]
    return low, high


def coverage_cell(
    population: Sequence[float] | np.ndarray,
    n: int,
    reps: int = REPS,
    n_boot: int = N_BOOT,
    seed: Sequence[int] | int = SEED,
    methods: Sequence[str] = METHODS,
) -> dict[str, dict[str, float]]:
    """Coverage of each method's 95% interval for samples of ``n`` values drawn with
    replacement from ``population`` (truth: its mean).

    Per method: ``coverage`` (share of the ``reps`` intervals that contain the truth; an
    undefined interval counts as a miss), ``undefined`` (their number) and ``width`` (mean
    width of the defined ones). Deterministic in ``seed``.
    """
    pop = np.asarray(population, dtype=float)
    truth = float(pop.mean())
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    x = pop[rng.integers(0, pop.size, size=(reps, n))]
    out = {}
    for method in methods:
        if method == "t":
            low, high = t_bounds(x)
        elif method == "bca":
            low, high = bca_bounds(x, rng, n_boot)
        elif method == "percentile":
            low, high = percentile_bounds(x, rng, n_boot)
        else:
            raise ValueError(f"unknown method {method!r}")
        ok = np.isfinite(low) & np.isfinite(high)
        hit = ok & (low <= truth) & (truth <= high)
        out[method] = {
            "coverage": float(hit.mean()),
            "undefined": int((~ok).sum()),
            "width": float((high - low)[ok].mean()) if ok.any() else np.nan,
        }
    return out


def simulate(
    populations: Sequence[dict[str, Any]],
    sizes: Sequence[int] = SIZES,
    reps: int = REPS,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> list[dict[str, Any]]:
    """:func:`coverage_cell` for every population × n (seed: ``(seed, population index, n)``)."""
    rows = []
    for i, p in enumerate(populations):
        for n in sizes:
            cell = coverage_cell(p["values"], n, reps, n_boot, (seed, i, n))
            rows.append({"population": p["name"], "n": n, **cell})
    return rows


def _pct(v: float) -> str:
    return f"{100.0 * v:.1f}"


def table(rows: Sequence[dict[str, Any]], sizes: Sequence[int] = SIZES) -> str:
    """Markdown: one row per population, one column per method × n (coverage in %), then
    the average and the minimum over populations."""
    names = list(dict.fromkeys(r["population"] for r in rows))
    cell = {(r["population"], r["n"]): r for r in rows}
    head = [f"{TITLES[m]} n={n}" for m in METHODS for n in sizes]
    lines = ["| population | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name in names:
        vals = [_pct(cell[(name, n)][m]["coverage"]) for m in METHODS for n in sizes]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    for label, f in (("**average**", np.mean), ("**minimum**", np.min)):
        vals = [
            f"**{_pct(f([cell[(p, n)][m]['coverage'] for p in names]))}**"
            for m in METHODS
            for n in sizes
        ]
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def summary_table(rows: Sequence[dict[str, Any]], sizes: Sequence[int] = SIZES) -> str:
    """Markdown: per method and n, the average and minimum coverage over populations, the
    mean distance |coverage − 95%|, and the mean width relative to Student-t's."""
    names = list(dict.fromkeys(r["population"] for r in rows))
    cell = {(r["population"], r["n"]): r for r in rows}
    lines = [
        "| method | n | average coverage % | minimum % | mean abs(coverage − 95) | "
        "width / t-width | undefined intervals |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        for n in sizes:
            cov = np.array([cell[(p, n)][m]["coverage"] for p in names])
            ratio = np.nanmean(
                [cell[(p, n)][m]["width"] / cell[(p, n)]["t"]["width"] for p in names]
            )
            undef = sum(cell[(p, n)][m]["undefined"] for p in names)
            lines.append(
                f"| {TITLES[m]} | {n} | {_pct(cov.mean())} | {_pct(cov.min())} | "
                f"{100 * np.abs(cov - CONFIDENCE).mean():.1f} | {ratio:.2f} | {undef} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulation on the committed populations and write ``coverage.json`` and
    ``coverage.md`` into ``--out``."""
    ap = argparse.ArgumentParser(prog="python -m soo_marl.analysis.coverage", description=__doc__)
    ap.add_argument("--populations", type=Path, default=POPULATIONS)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=REPS)
    ap.add_argument("--n-boot", type=int, default=N_BOOT)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    pops = json.loads(args.populations.read_text())["populations"]
    start = time.perf_counter()
    rows = simulate(pops, SIZES, args.reps, args.n_boot, args.seed)
    wall = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "reps": args.reps,
        "n_boot": args.n_boot,
        "seed": args.seed,
        "confidence": CONFIDENCE,
        "sizes": list(SIZES),
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "wall_s": round(wall, 1),
        "populations": str(args.populations),
    }
    (args.out / "coverage.json").write_text(json.dumps({**meta, "cells": rows}, indent=1))
    mc = 100 * np.sqrt(CONFIDENCE * (1 - CONFIDENCE) / args.reps)
    text = [
        "# Coverage of 95% intervals (generated by soo_marl.analysis.coverage)",
        "",
        f"{args.reps:,} samples per cell (Monte Carlo SE ≈ {mc:.2f} points at 95%), "
        f"{args.n_boot:,} resamples per bootstrap interval, seed {args.seed}; "
        f"{wall:.0f} s on one core of {meta['cpu']}.",
        "",
        "## Summary over populations",
        "",
        summary_table(rows),
        "",
        "## Coverage (%) per population",
        "",
        table(rows),
        "",
    ]
    (args.out / "coverage.md").write_text("\n".join(text))
    print(f"wrote {args.out / 'coverage.md'} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
