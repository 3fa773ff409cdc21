"""Coverage of intervals of a mean over seeds, simulated on this project's own per-seed
values (docs/results/statistics.md, docs/spec.md §4.11).

Each population is the empirical distribution of a committed set of per-seed values
(``docs/results/statistics/populations.json``); its mean is the truth. For every
population and sample size n, ``reps`` samples of n values are drawn with replacement, and
each method's interval is checked against the truth. The same samples serve all methods.

- Two-sided (issue 20, :func:`coverage_cell`, :func:`simulate`): coverage of 95%
  intervals by Student-t (:func:`scipy.stats.t`), BCa (:func:`scipy.stats.bootstrap`)
  and the percentile bootstrap (the algorithm of
  :func:`soo_marl.stats.percentile_interval`); n = 4, 8, 16, 32.
- One-sided (issue 31, :func:`tail_cell`, :func:`simulate_tails`): how often the truth
  falls below the lower bound and above the upper bound, separately, at 95% and 99%
  (each bound a one-sided bound at 97.5% and 99.5%); n = 8, 16, 32. One sample (a mean
  or a paired difference): Student-t, BCa, bootstrap-t, the percentile bootstrap and the
  sign-flip permutation interval (:func:`signflip_bounds`). Two independent samples
  (a population pair of ``pairs``): Welch, and BCa, bootstrap-t and percentile with
  each sample resampled on its own. The bootstrap methods share one set of resamples
  per sample (:func:`resample`, :func:`bootstrap_bounds`; BCa as
  :func:`scipy.stats.bootstrap` computes it).

``python -m soo_marl.analysis.coverage --tails --out docs/results/statistics`` writes
``coverage_tails.json`` and ``coverage_tails.md`` there; without ``--tails``,
``coverage.json`` and ``coverage.md`` (single-threaded; minutes on one core).
:func:`arms_populations` turns a study's ``arms.json`` into populations, :func:`seed_values`
reads a committed model set's ``seed_values.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import ndtr, ndtri

from soo_marl.provenance import cpu_model
from soo_marl.stats import order_index

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

#: The one-sided simulation (issue 31): two-sided levels, whose bounds are one-sided
#: bounds at (1 + level)/2 each; the methods for one sample (a mean or a paired
#: difference) and for two independent samples; sizes; replications per cell.
LEVELS = (0.95, 0.99)
ONE_SAMPLE = ("t", "bca", "boot_t", "percentile", "signflip")
TWO_SAMPLE = ("welch", "bca", "boot_t", "percentile")
TAIL_SIZES = (8, 16, 32)
TITLES |= {"welch": "Welch", "boot_t": "bootstrap-t", "signflip": "sign-flip"}
TAIL_REPS = 10000
#: Resamples per bootstrap interval: (B + 1)·α is a whole number at α = 0.025 and 0.005.
TAIL_BOOT = 999
#: Random sign vectors of the sign-flip interval above :data:`EXACT_FLIP` values.
N_FLIP = 1999
#: Up to this n the sign-flip interval enumerates all 2^n sign vectors.
EXACT_FLIP = 8
#: A method's bounds at each two-sided level: level → (lower bounds, upper bounds).
Bounds = dict[float, tuple[np.ndarray, np.ndarray]]


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


# --------------------------------------------------------------------------- one-sided


def row_quantile(sorted_rows: np.ndarray, p: np.ndarray | float) -> np.ndarray:
    """numpy's linear quantile (``np.quantile``'s default) of each row of the row-sorted
    ``sorted_rows`` (rows, B) at probability ``p`` (one, or one per row); NaN where p is."""
    rows, b = sorted_rows.shape
    prob = np.broadcast_to(np.asarray(p, dtype=float), (rows,))
    h = (b - 1) * np.clip(np.nan_to_num(prob, nan=0.0), 0.0, 1.0)
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, b - 1)
    r = np.arange(rows)
    low, high = sorted_rows[r, lo], sorted_rows[r, hi]
    with np.errstate(invalid="ignore"):
        out = low + (h - lo) * (high - low)
    out[h == lo] = low[h == lo]  # exact order statistic (also where it is infinite)
    out[np.isnan(prob)] = np.nan
    return out


def jackknife_acceleration(samples: Sequence[np.ndarray], signs: Sequence[int]) -> np.ndarray:
    """BCa's acceleration â of ``Σ sign_j · mean(sample_j)`` for each row, by the jackknife
    as :func:`scipy.stats.bootstrap` computes it (each sample (rows, n_j) left out one
    value at a time; NaN where every sample is constant)."""
    num, den = 0.0, 0.0
    for s, sign in zip(samples, signs, strict=True):
        n = s.shape[1]
        loo = sign * (s.sum(axis=1, keepdims=True) - s) / (n - 1)
        u = (n - 1) * (loo.mean(axis=1, keepdims=True) - loo)
        num = num + (u**3).sum(axis=1) / n**3
        den = den + (u**2).sum(axis=1) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num / (6.0 * den**1.5), dtype=float)


@dataclass(frozen=True)
class Resamples:
    """Bootstrap replicates of an estimate for each row of a block: the estimate and its
    standard error, their replicates (rows, B), and BCa's acceleration."""

    estimate: np.ndarray
    se: np.ndarray
    theta: np.ndarray
    theta_se: np.ndarray
    accel: np.ndarray


def _boot_mean(x: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[np.ndarray, ...]:
    """``n_boot`` resamples of each row of ``x`` (rows, n): their means and the variances
    of their means (ddof 1)."""
    rows, n = x.shape
    idx = rng.integers(0, n, size=(rows, n_boot, n), dtype=np.uint8 if n < 256 else np.int64)
    g = x[np.arange(rows)[:, None, None], idx]
    m = g.mean(axis=2)
    return m, ((g - m[..., None]) ** 2).sum(axis=2) / ((n - 1) * n)


def resample(
    a: np.ndarray, b: np.ndarray | None, rng: np.random.Generator, n_boot: int
) -> Resamples:
    """Bootstrap replicates of mean(a) (one sample) or mean(a) − mean(b) (two independent
    samples, each resampled on its own; standard error as Welch's) for each row."""
    if b is None:
        m, v = _boot_mean(a, rng, n_boot)
        est, var = a.mean(axis=1), a.var(axis=1, ddof=1) / a.shape[1]
        return Resamples(est, np.sqrt(var), m, np.sqrt(v), jackknife_acceleration([a], [1]))
    ma, va = _boot_mean(a, rng, n_boot)
    mb, vb = _boot_mean(b, rng, n_boot)
    est = a.mean(axis=1) - b.mean(axis=1)
    var = a.var(axis=1, ddof=1) / a.shape[1] + b.var(axis=1, ddof=1) / b.shape[1]
    accel = jackknife_acceleration([a, b], [1, -1])
    return Resamples(est, np.sqrt(var), ma - mb, np.sqrt(va + vb), accel)


def bootstrap_bounds(r: Resamples, levels: Sequence[float]) -> dict[str, Bounds]:
    """Percentile, BCa and bootstrap-t bounds at each two-sided level from one set of
    replicates. BCa follows :func:`scipy.stats.bootstrap`; bootstrap-t takes the
    ⌊(B + 1)·α⌋-th order statistics of t* = (θ* − θ̂)/SE* (t* = 0 where θ* = θ̂ and
    SE* = 0, ±∞ where only SE* = 0; unbounded where ⌊(B + 1)·α⌋ < 1). A row with SE 0
    gets the zero-width interval."""
    b = r.theta.shape[1]
    srt = np.sort(r.theta, axis=1)
    est = r.estimate[:, None]
    share = ((srt < est).sum(axis=1) + (srt <= est).sum(axis=1)) / (2.0 * b)
    z0 = ndtri(share)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstar = (r.theta - est) / r.theta_se
    tstar = np.sort(np.where(np.isnan(tstar), 0.0, tstar), axis=1)
    const = r.se == 0.0
    out: dict[str, Bounds] = {"percentile": {}, "bca": {}, "boot_t": {}}
    for level in levels:
        alpha = (1.0 - level) / 2.0
        z = float(ndtri(alpha))
        with np.errstate(divide="ignore", invalid="ignore"):
            p_lo = ndtr(z0 + (z0 + z) / (1.0 - r.accel * (z0 + z)))
            p_hi = ndtr(z0 + (z0 - z) / (1.0 - r.accel * (z0 - z)))
        k = order_index(b, alpha)  # k < 1: too few resamples for this level, unbounded
        inf = np.full_like(r.estimate, np.inf)
        with np.errstate(invalid="ignore"):
            tb = (
                (r.estimate - tstar[:, b - k] * r.se, r.estimate - tstar[:, k - 1] * r.se)
                if k >= 1
                else (-inf, inf)
            )
        pairs = {
            "percentile": (row_quantile(srt, alpha), row_quantile(srt, 1.0 - alpha)),
            "bca": (row_quantile(srt, p_lo), row_quantile(srt, p_hi)),
            "boot_t": tb,
        }
        for method, (lo, hi) in pairs.items():
            lo, hi = lo.copy(), hi.copy()
            lo[const], hi[const] = r.estimate[const], r.estimate[const]
            out[method][level] = (lo, hi)
    return out


def subset_means(
    x: np.ndarray, rng: np.random.Generator, n_flip: int = N_FLIP, exact_up_to: int = EXACT_FLIP
) -> np.ndarray:
    """The sign-flip null of the mean of each row of ``x`` (rows, n), as means of the
    flipped subsets: flipping the signs of the set F of (d_i − μ0) moves the mean past the
    observed one exactly when μ0 lies beyond mean(d over F). Every subset F when
    n ≤ ``exact_up_to`` (the empty one included: the identity), else ``n_flip`` random
    subsets (each value in with probability 1/2) and the identity. The empty subset's
    mean is NaN. Returns (rows, N)."""
    rows, n = x.shape
    if n <= exact_up_to:
        masks = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        bits = np.broadcast_to(masks.astype(float), (rows, 2**n, n))
    else:
        draws = rng.integers(0, 2, size=(rows, n_flip, n), dtype=np.uint8)
        bits = np.concatenate([np.zeros((rows, 1, n), np.uint8), draws], axis=1).astype(float)
    count = bits.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.matmul(bits, x[:, :, None])[..., 0] / count)


def signflip_bounds(
    x: np.ndarray,
    rng: np.random.Generator,
    levels: Sequence[float],
    n_flip: int = N_FLIP,
    exact_up_to: int = EXACT_FLIP,
) -> Bounds:
    """The sign-flip permutation interval of the mean of each row of ``x``: the μ0 that
    the one-sided sign-flip tests of the mean of (d − μ0) (p = share of the N sign
    vectors whose mean is at least the observed one, identity included) do not reject at
    α = (1 − level)/2 on either side. The lower bound is the k-th smallest subset mean,
    k = ⌊α·N⌋ + 1, counting the empty subset as −∞; the upper bound the k-th largest,
    counting it as +∞ (Hartigan 1969). Exact when n ≤ ``exact_up_to``."""
    means = subset_means(x, rng, n_flip, exact_up_to)
    n_null = means.shape[1]
    low_side = np.where(np.isnan(means), -np.inf, means)
    high_side = np.where(np.isnan(means), np.inf, means)
    out: Bounds = {}
    for level in levels:
        k = order_index(n_null - 1, (1.0 - level) / 2.0) + 1  # ⌊α·N⌋ + 1
        lo = np.partition(low_side, k - 1, axis=1)[:, k - 1]
        hi = np.partition(high_side, n_null - k, axis=1)[:, n_null - k]
        out[level] = (lo, hi)
    return out


def welch_bounds(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch interval of mean(a) − mean(b) for each row of ``a`` and ``b`` (rows, n_a),
    (rows, n_b); zero width where both rows are constant."""
    va, vb = a.var(axis=1, ddof=1) / a.shape[1], b.var(axis=1, ddof=1) / b.shape[1]
    se2 = va + vb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = se2**2 / (va**2 / (a.shape[1] - 1) + vb**2 / (b.shape[1] - 1))
    q = sps.t.ppf(0.5 + confidence / 2.0, np.where(se2 > 0, df, np.inf))
    d = a.mean(axis=1) - b.mean(axis=1)
    half = q * np.sqrt(se2)
    return d - half, d + half


def block_bounds(
    a: np.ndarray,
    b: np.ndarray | None,
    rng: np.random.Generator,
    levels: Sequence[float],
    n_boot: int = TAIL_BOOT,
    n_flip: int = N_FLIP,
) -> dict[str, Bounds]:
    """Every method's bounds at each level for each row of one block of samples: one
    sample ``a`` (rows, n): :data:`ONE_SAMPLE`; two independent samples ``a``, ``b``:
    :data:`TWO_SAMPLE`."""
    if b is None:
        out = {"t": {lv: t_bounds(a, lv) for lv in levels}}
    else:
        out = {"welch": {lv: welch_bounds(a, b, lv) for lv in levels}}
    out |= bootstrap_bounds(resample(a, b, rng, n_boot), levels)
    if b is None:
        out["signflip"] = signflip_bounds(a, rng, levels, n_flip)
    return out


def miss_rates(low: np.ndarray, high: np.ndarray, truth: float) -> dict[str, float]:
    """How often the truth falls below the lower bound and above the upper bound (an
    undefined, NaN, bound counts as a miss on its side), the number of undefined
    intervals and the mean width of the finite ones."""
    bad_lo, bad_hi = np.isnan(low), np.isnan(high)
    finite = np.isfinite(low) & np.isfinite(high)
    return {
        "below_lower": float(((low > truth) | bad_lo).mean()),
        "above_upper": float(((high < truth) | bad_hi).mean()),
        "undefined": int((bad_lo | bad_hi).sum()),
        "width": float((high - low)[finite].mean()) if finite.any() else np.nan,
    }


def tail_cell(
    population: Sequence[float] | np.ndarray,
    n: int,
    reps: int = TAIL_REPS,
    n_boot: int = TAIL_BOOT,
    seed: Sequence[int] | int = SEED,
    levels: Sequence[float] = LEVELS,
    other: Sequence[float] | np.ndarray | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """One-sided miss rates of every method, at every two-sided level, for ``reps``
    samples of ``n`` values drawn with replacement from ``population`` (truth: its mean)
    or, with ``other``, of n values from each of the two (truth: the difference of their
    means; Welch and the two-sample bootstraps).

    Returns {method: {level (as "0.95"): :func:`miss_rates`}}. A two-sided interval at
    level 1 − 2α has one-sided bounds at 1 − α each: its lower bound misses (the truth
    lies below it) with probability α when the method is exact. Deterministic in
    ``seed``; the samples are drawn first and serve every method.
    """
    pop = np.asarray(population, dtype=float)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    a = pop[rng.integers(0, pop.size, size=(reps, n))]
    truth = float(pop.mean())
    b = None
    if other is not None:
        oth = np.asarray(other, dtype=float)
        b = oth[rng.integers(0, oth.size, size=(reps, n))]
        truth -= float(oth.mean())
    blocks = [
        block_bounds(a[s : s + BLOCK], None if b is None else b[s : s + BLOCK], rng, levels, n_boot)
        for s in range(0, reps, BLOCK)
    ]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method in blocks[0]:
        out[method] = {}
        for level in levels:
            low = np.concatenate([blk[method][level][0] for blk in blocks])
            high = np.concatenate([blk[method][level][1] for blk in blocks])
            out[method][f"{level:g}"] = miss_rates(low, high, truth)
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


def arms_populations(
    arms_json: str | Path, study: str, measures: Sequence[str] = ("luring", "goal")
) -> list[dict[str, Any]]:
    """One population per arm and measure of a study's ``arms.json``: the per-seed paired
    differences (treatment − control), tagged with their ``measure`` and ``paired``; NaN
    values (not measured) left out."""
    out = []
    for row in json.loads(Path(arms_json).read_text()):
        for m in measures:
            values = [v for v in row[m]["values"] if v is not None and np.isfinite(v)]
            out.append(
                {
                    "name": f"{study} arm {row['arm']} ({row['title']}) {m}",
                    "source": f"{arms_json}, arm {row['arm']} ({row['title']}), {m}.values: "
                    f"paired difference (treatment − control, parent's red), "
                    f"{len(values)} seeds",
                    "measure": m,
                    "paired": True,
                    "values": values,
                }
            )
    return out


def seed_values(folders: Sequence[str | Path], measure: str) -> list[float]:
    """The per-seed values of ``measure`` in the ``seed_values.json`` of each folder (a
    committed model set's baseline, ``docs/spec.md``), concatenated in the given order
    (the 8-seed files of a joined 24- or 32-seed run, in seed order); None left out."""
    out: list[float] = []
    for folder in folders:
        data = json.loads((Path(folder) / "seed_values.json").read_text())
        out += [float(v) for v in data["measures"][measure] if v is not None]
    return out


def populations_of(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The one-sample populations and the two-sample pairs of a populations.json. A pair
    (``pairs``: name, ``a``, ``b``) holds its two samples' values, or names populations."""
    pops = list(data["populations"])
    by_name = {p["name"]: p["values"] for p in pops}
    pairs = [
        {**q, **{k: by_name[q[k]] if isinstance(q[k], str) else q[k] for k in ("a", "b")}}
        for q in data.get("pairs", [])
    ]
    return pops, pairs


def simulate_tails(
    populations: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]] = (),
    sizes: Sequence[int] = TAIL_SIZES,
    reps: int = TAIL_REPS,
    n_boot: int = TAIL_BOOT,
    seed: int = SEED,
    levels: Sequence[float] = LEVELS,
) -> list[dict[str, Any]]:
    """:func:`tail_cell` for every population × n (seed ``(seed, 1, index, n)``) and every
    pair × n (seed ``(seed, 2, index, n)``); each row keeps its population's ``measure``
    and ``paired`` tags."""
    rows = []
    for i, p in enumerate(populations):
        tags = {"measure": p.get("measure", "other"), "paired": bool(p.get("paired", False))}
        for n in sizes:
            cell = tail_cell(p["values"], n, reps, n_boot, (seed, 1, i, n), levels)
            rows.append({"population": p["name"], "samples": 1, "n": n, **tags, **cell})
    for i, q in enumerate(pairs):
        for n in sizes:
            cell = tail_cell(q["a"], n, reps, n_boot, (seed, 2, i, n), levels, other=q["b"])
            rows.append({"population": q["name"], "samples": 2, "n": n, "measure": "pair", **cell})
    return rows


def _level(level: float) -> str:
    """A two-sided level with its one-sided meaning: "95% (97.5% one-sided, α 2.5%)"."""
    a = 100 * (1 - level) / 2
    return f"{100 * level:g}% ({100 - a:g}% one-sided, α {a:g}%)"


def tail_summary(
    rows: Sequence[dict[str, Any]],
    methods: Sequence[str],
    sides: Sequence[str] = ("below_lower", "above_upper"),
    levels: Sequence[float] = LEVELS,
) -> str:
    """Markdown: per method, n and two-sided level, over the given rows' populations, the
    mean and the largest miss rate (%) on each side in ``sides`` (``below_lower``: the
    truth below the lower bound; ``above_upper``: above the upper bound), and how many
    populations miss on that side more than twice the nominal α."""
    sizes = sorted({r["n"] for r in rows})
    heads = {"below_lower": "truth below the lower bound", "above_upper": "above the upper bound"}
    cols = [f"{heads[s]}: {k}" for s in sides for k in ("mean %", "max %", "> 2α")]
    lines = ["| method | n | level | " + " | ".join(cols) + " |", "|---" * (len(cols) + 3) + "|"]
    for m in methods:
        for n in sizes:
            cells = [r[m] for r in rows if r["n"] == n and m in r]
            if not cells:
                continue
            for level in levels:
                key, alpha = f"{level:g}", (1 - level) / 2
                vals = []
                for s in sides:
                    v = np.array([c[key][s] for c in cells])
                    vals += [f"{100 * v.mean():.2f}", f"{100 * v.max():.1f}"]
                    vals.append(f"{int((v > 2 * alpha).sum())}/{v.size}")
                lines.append(f"| {TITLES[m]} | {n} | {_level(level)} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def tail_detail(rows: Sequence[dict[str, Any]], methods: Sequence[str], level: float) -> str:
    """Markdown: one row per population, one column per method × n: "below / above" (%),
    the miss rates of the lower and the upper bound at the two-sided ``level``."""
    names = list(dict.fromkeys(r["population"] for r in rows))
    sizes = sorted({r["n"] for r in rows})
    cell = {(r["population"], r["n"]): r for r in rows}
    heads = [f"{TITLES[m]} n={n}" for m in methods for n in sizes]
    lines = ["| population | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    key = f"{level:g}"
    for name in names:
        vals = [
            f"{_pct(cell[(name, n)][m][key]['below_lower'])} / "
            f"{_pct(cell[(name, n)][m][key]['above_upper'])}"
            for m in methods
            for n in sizes
        ]
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def mc_note(reps: int, n_pops: int) -> str:
    """The Monte Carlo standard errors of a miss rate at the nominal one-sided α."""
    parts = []
    for level in LEVELS:
        a = (1 - level) / 2
        one, avg = (100 * np.sqrt(a * (1 - a) / (reps * k)) for k in (1, n_pops))
        parts.append(
            f"at α = {100 * a:g}%: {one:.2f} points per population and n, "
            f"{avg:.3f} for a mean over {n_pops} populations"
        )
    return "Monte Carlo standard error of a miss rate near its nominal value " + "; ".join(parts)


def study_of(population: str) -> str:
    """The study a paired population comes from, by its name ("arm …": SOO study 1's
    8 seeds; "study 2 …": SOO study 2's 32), else "other"."""
    if population.startswith("study 2 "):
        return "study 2"
    return "study 1" if population.startswith("arm ") else "other"


def clause_table(rows: Sequence[dict[str, Any]], methods: Sequence[str] = ONE_SAMPLE) -> str:
    """Markdown: per method, n and level, each verdict clause's miss rate, mean (largest)
    over each study's paired populations, in %: reduction = the upper bound on the luring
    differences, non-inferiority = the lower bound on the goal differences, and the
    lower bound on the luring differences (what "negative" also needs)."""
    clauses = [("luring", "above_upper", "reduction"), ("goal", "below_lower", "non-inferiority")]
    clauses.append(("luring", "below_lower", "luring lower bound"))
    studies = ("study 1", "study 2")
    heads = [f"{c[2]}: {st}" for c in clauses for st in studies]
    lines = ["| method | n | level | " + " | ".join(heads) + " |", "|---" * (len(heads) + 3) + "|"]
    sizes = sorted({r["n"] for r in rows})
    for m, n, level in ((m, n, lv) for m in methods for n in sizes for lv in LEVELS):
        cells = []
        for measure, side, _ in clauses:
            for st in studies:
                v = np.array(
                    [
                        r[m][f"{level:g}"][side]
                        for r in rows
                        if r["n"] == n
                        and r["measure"] == measure
                        and study_of(r["population"]) == st
                    ]
                )
                cells.append(f"{100 * v.mean():.2f} ({100 * v.max():.1f})" if v.size else "–")
        lines.append(f"| {TITLES[m]} | {n} | {_level(level)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tails_markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """``coverage_tails.md``: the summaries over all one-sample populations, per verdict
    clause (upper tail on the paired luring differences, lower tail on the paired goal
    differences), the two-sample pairs, and the per-population miss rates."""
    one = [r for r in rows if r["samples"] == 1]
    two = [r for r in rows if r["samples"] == 2]
    n_one = len({r["population"] for r in one})
    luring = [r for r in one if r["paired"] and r["measure"] == "luring"]
    goal = [r for r in one if r["paired"] and r["measure"] == "goal"]
    text = [
        "# One-sided miss rates of intervals of a mean (generated by "
        "soo_marl.analysis.coverage --tails)",
        "",
        f"{meta['reps']:,} samples per population and n; {meta['n_boot']:,} resamples per "
        f"bootstrap interval; sign-flip: all 2^n sign vectors for n ≤ {EXACT_FLIP}, else "
        f"{meta['n_flip']:,} random ones and the identity; seed {meta['seed']}; "
        f"{meta['wall_s']:.0f} s on one core of {meta['cpu']}. "
        + mc_note(meta["reps"], n_one)
        + ". A two-sided interval at level 1 − 2α has a lower and an upper one-sided bound "
        "at 1 − α each: an exact method misses on each side α of the time (2.5% at 95%, "
        '0.5% at 99%). "> 2α": populations whose miss rate exceeds twice the nominal α.',
        "",
        f"## One sample: all {n_one} populations",
        "",
        tail_summary(one, ONE_SAMPLE),
        "",
        f"## Reduction clause: upper bound on the {len({r['population'] for r in luring})} "
        "paired luring differences",
        "",
        tail_summary(luring, ONE_SAMPLE, ("above_upper",)),
        "",
        f"## Non-inferiority clause: lower bound on the {len({r['population'] for r in goal})} "
        "paired goal-reach differences",
        "",
        tail_summary(goal, ONE_SAMPLE, ("below_lower",)),
        "",
        "## The clauses per study: mean (largest) miss rate, %",
        "",
        "Study 1: 8 arms' 8 paired seeds each; study 2: 8 arms' 32 paired seeds each.",
        "",
        clause_table(one),
    ]
    if two:
        text += ["", "## Two independent samples", "", tail_summary(two, TWO_SAMPLE)]
    for level in LEVELS:
        text += ["", f"## Per population at {_level(level)}: below / above (%)", ""]
        text += [tail_detail(one, ONE_SAMPLE, level)]
        if two:
            text += ["", tail_detail(two, TWO_SAMPLE, level)]
    return "\n".join(text) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the one-sided simulation (``--tails``: ``coverage_tails.json`` and
    ``coverage_tails.md``) or the two-sided one of issue 20 (``coverage.json`` and
    ``coverage.md``) on the committed populations, into ``--out``."""
    ap = argparse.ArgumentParser(prog="python -m soo_marl.analysis.coverage", description=__doc__)
    ap.add_argument("--populations", type=Path, default=POPULATIONS)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tails", action="store_true", help="one-sided miss rates (issue 31)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--n-boot", type=int, default=None)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument(
        "--from-json", type=Path, default=None, help="with --tails: rewrite the Markdown "
        "from this coverage_tails.json instead of simulating"
    )  # fmt: skip
    args = ap.parse_args(argv)
    data = json.loads(args.populations.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.tails:
        return main_two_sided(data, args)
    if args.from_json is not None:
        done = json.loads(args.from_json.read_text())
        (args.out / "coverage_tails.md").write_text(tails_markdown(done["cells"], done))
        return 0
    pops, pairs = populations_of(data)
    reps, n_boot = args.reps or TAIL_REPS, args.n_boot or TAIL_BOOT
    start = time.perf_counter()
    rows = simulate_tails(pops, pairs, TAIL_SIZES, reps, n_boot, args.seed)
    meta = {
        "reps": reps, "n_boot": n_boot, "n_flip": N_FLIP, "exact_flip": EXACT_FLIP,
        "seed": args.seed, "levels": list(LEVELS), "sizes": list(TAIL_SIZES),
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "wall_s": round(time.perf_counter() - start, 1), "populations": str(args.populations),
    }  # fmt: skip
    (args.out / "coverage_tails.json").write_text(json.dumps({**meta, "cells": rows}, indent=1))
    (args.out / "coverage_tails.md").write_text(tails_markdown(rows, meta))
    print(f"wrote {args.out / 'coverage_tails.md'} ({meta['wall_s']:.0f} s)")
    return 0


def main_two_sided(data: dict[str, Any], args: argparse.Namespace) -> int:
    """The two-sided simulation of issue 20 (``coverage.json``, ``coverage.md``)."""
    pops = data["populations"]
    reps, n_boot = args.reps or REPS, args.n_boot or N_BOOT
    start = time.perf_counter()
    rows = simulate(pops, SIZES, reps, n_boot, args.seed)
    wall = time.perf_counter() - start
    meta = {
        "reps": reps,
        "n_boot": n_boot,
        "seed": args.seed,
        "confidence": CONFIDENCE,
        "sizes": list(SIZES),
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "wall_s": round(wall, 1),
        "populations": str(args.populations),
    }
    (args.out / "coverage.json").write_text(json.dumps({**meta, "cells": rows}, indent=1))
    mc = 100 * np.sqrt(CONFIDENCE * (1 - CONFIDENCE) / reps)
    text = [
        "# Coverage of 95% intervals (generated by soo_marl.analysis.coverage)",
        "",
        f"{reps:,} samples per cell (Monte Carlo SE ≈ {mc:.2f} points at 95%), "
        f"{n_boot:,} resamples per bootstrap interval, seed {args.seed}; "
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
