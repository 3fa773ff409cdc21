"""Confidence intervals of a mean over seeds, the tests behind them, Holm's step-down
adjustment (docs/spec.md §4.11), and the power of a number of seeds (:func:`seed_power`).

Three interval methods for the mean of per-seed values:

- ``"t"``: Student-t, mean ± t_{n−1, 1−α/2} · SD/√n (:func:`scipy.stats.t`); for two
  independent groups the Welch interval. **The primary interval** (:data:`PRIMARY`),
  chosen by the coverage simulation of ``docs/results/statistics.md``.
- ``"bca"``: bias-corrected and accelerated bootstrap (:func:`scipy.stats.bootstrap`).
- ``"percentile"``: the percentile bootstrap of the reports before verdict rule v2
  (``numpy.random.default_rng(seed)``, numpy's linear quantiles).
- ``"boot_t"``: the bootstrap-t (studentized bootstrap) interval of a mean
  (:func:`bootstrap_t_interval`; one sample only).

Every function takes values with NaNs already removed (but :func:`tost`, which drops
them). :func:`tost` tests equivalence within a margin (two one-sided t tests);
:func:`signed_rank_p` and :func:`hodges_lehmann` are the rank-based paired test and
estimate of red decodability.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

#: The interval methods, and the primary one (docs/results/statistics.md).
METHODS = ("t", "bca", "percentile", "boot_t")
PRIMARY = "t"
#: Resamples of the bootstrap methods by default.
N_BOOT = 10_000


def _arr(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()


def t_interval(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Student-t interval of the mean: mean ± t_{n−1, (1+confidence)/2} · SD(ddof 1)/√n.

    Undefined (NaN) for fewer than two values; zero width when all values are equal.
    """
    x = _arr(values)
    if x.size < 2:
        return np.nan, np.nan
    mean, se = float(x.mean()), float(x.std(ddof=1)) / np.sqrt(x.size)
    if se == 0.0:
        return mean, mean
    low, high = sps.t.interval(confidence, x.size - 1, loc=mean, scale=se)
    return float(low), float(high)


def welch(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Standard error and Welch–Satterthwaite degrees of freedom of mean(a) − mean(b)
    (independent groups, at least two values each); df is inf when the SE is 0."""
    a, b = _arr(a), _arr(b)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 == 0.0:
        return 0.0, np.inf
    df = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(np.sqrt(se2)), float(df)


def welch_interval(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Welch interval of mean(a) − mean(b) for independent groups (NaN if a group has fewer
    than two values; zero width when both groups are constant)."""
    a, b = _arr(a), _arr(b)
    if a.size < 2 or b.size < 2:
        return np.nan, np.nan
    d = float(a.mean() - b.mean())
    se, df = welch(a, b)
    if se == 0.0:
        return d, d
    low, high = sps.t.interval(confidence, df, loc=d, scale=se)
    return float(low), float(high)


def percentile_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean: ``n_boot`` resamples of n values with
    replacement from ``default_rng(seed)``, the (1 ∓ confidence)/2 quantiles of their means."""
    x = _arr(values)
    if x.size == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    boot = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(low), float(high)


def percentile_difference_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of mean(a) − mean(b), each group resampled on its own
    (one ``default_rng(seed)``: ``n_boot`` resamples of a, then of b)."""
    a, b = _arr(a), _arr(b)
    if a.size == 0 or b.size == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    boot_a = a[rng.integers(0, a.size, (n_boot, a.size))].mean(1)
    boot_b = b[rng.integers(0, b.size, (n_boot, b.size))].mean(1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot_a - boot_b, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bca_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """BCa bootstrap interval of the mean (:func:`scipy.stats.bootstrap`, ``method="BCa"``,
    ``rng=default_rng(seed)``); zero width when all values are equal, NaN for < 2 values."""
    x = _arr(values)
    if x.size < 2:
        return np.nan, np.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    return _bca((x,), np.mean, confidence, n_boot, seed)


def order_index(n_boot: int, alpha: float) -> int:
    """k = ⌊(n_boot + 1)·alpha⌋ (guarded against rounding just below a whole number): the
    bootstrap-t bounds are the k-th smallest and k-th largest of the n_boot t* values."""
    return int(np.floor((n_boot + 1) * alpha + 1e-9))


def _t_star(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """The sorted t* = (mean* − mean)/SE* of ``n_boot`` resamples of ``x`` (SE = SD(ddof
    1)/√n) from ``default_rng(seed)``: t* = 0 where mean* = mean and SE* = 0, ±∞ where
    only SE* = 0."""
    g = x[np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (g.mean(axis=1) - x.mean()) / (g.std(axis=1, ddof=1) / np.sqrt(x.size))
    return np.sort(np.where(np.isnan(t), 0.0, t))


def bootstrap_t_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap-t (studentized bootstrap) interval of the mean: with the sorted t* of
    ``n_boot`` resamples (:func:`_t_star`), α = (1 − confidence)/2 and k =
    :func:`order_index`, [mean − t*_(n_boot+1−k)·SE, mean − t*_(k)·SE] (order statistics,
    smallest first); ±∞ when k < 1. Zero width when all values are equal, NaN for fewer
    than two values."""
    x = _arr(values)
    if x.size < 2:
        return np.nan, np.nan
    mean, se = float(x.mean()), float(x.std(ddof=1)) / np.sqrt(x.size)
    if se == 0.0:
        return mean, mean
    t = _t_star(x, n_boot, seed)
    k = order_index(n_boot, (1.0 - confidence) / 2.0)
    if k < 1:
        return -np.inf, np.inf
    return float(mean - t[n_boot - k] * se), float(mean - t[k - 1] * se)


def bootstrap_t_pvalue(
    values: Sequence[float] | np.ndarray,
    null: float = 0.0,
    side: int = 1,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> float:
    """:func:`t_pvalue` for the bootstrap-t: the doubled one-sided p-value that matches
    :func:`bootstrap_t_interval` with the same ``n_boot`` and ``seed`` (``side`` +1: the
    mean above ``null``, −1: below). With t0 = (mean − null)/SE and c = #{t* ≤ t0}
    (side −1) or #{t* ≥ t0} (side +1), p = min(1, 2·(c + 1)/(n_boot + 1)): the interval
    at level 1 − α lies beyond ``null`` on that side exactly when p ≤ α (p is never equal
    to 0.05/j, j = 1…5, at n_boot = 10,000, so Holm's strict p < α agrees). NaN for fewer
    than two values; with SD 0, 0 if the mean lies strictly on that side, else 1."""
    x = _arr(values)
    if x.size < 2:
        return np.nan
    mean, se = float(x.mean()), float(x.std(ddof=1)) / np.sqrt(x.size)
    if se == 0.0:
        return 0.0 if side * (mean - null) > 0 else 1.0
    t, t0 = _t_star(x, n_boot, seed), (mean - null) / se
    c = int((t <= t0).sum()) if side < 0 else int((t >= t0).sum())
    return float(min(1.0, 2.0 * (c + 1) / (n_boot + 1)))


def bca_difference_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """BCa interval of mean(a) − mean(b) for independent groups (:func:`scipy.stats.bootstrap`
    with two samples, resampled separately)."""
    a, b = _arr(a), _arr(b)
    if a.size < 2 or b.size < 2:
        return np.nan, np.nan
    if np.all(a == a[0]) and np.all(b == b[0]):
        d = float(a[0] - b[0])
        return d, d

    def diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    return _bca((a, b), diff, confidence, n_boot, seed)


def _bca(
    samples: tuple[np.ndarray, ...], statistic, confidence: float, n_boot: int, seed: int
) -> tuple[float, float]:
    """The BCa interval of ``statistic`` over ``samples`` (scipy, its warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap(
            samples,
            statistic,
            confidence_level=confidence,
            n_resamples=n_boot,
            method="BCa",
            rng=np.random.default_rng(seed),
        )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    method: str = PRIMARY,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """The ``method`` interval (:data:`METHODS`) of the mean of ``values``."""
    if method == "t":
        return t_interval(values, confidence)
    if method == "bca":
        return bca_interval(values, confidence, n_boot, seed)
    if method == "percentile":
        return percentile_interval(values, confidence, n_boot, seed)
    if method == "boot_t":
        return bootstrap_t_interval(values, confidence, n_boot, seed)
    raise ValueError(f"unknown interval method {method!r}; known: {', '.join(METHODS)}")


def difference_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    method: str = PRIMARY,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """The ``method`` interval of mean(a) − mean(b) for independent groups ("t": Welch)."""
    if method == "t":
        return welch_interval(a, b, confidence)
    if method == "bca":
        return bca_difference_interval(a, b, confidence, n_boot, seed)
    if method == "percentile":
        return percentile_difference_interval(a, b, confidence, n_boot, seed)
    raise ValueError(f"unknown difference interval method {method!r}; known: t, bca, percentile")


def _directed_p(estimate: float, se: float, df: float, null: float, side: int) -> float:
    """min(1, 2 · P(T_df ≥ side · (estimate − null)/se)): the p-value that matches the
    two-sided t-interval (the (1 − p) interval has a bound exactly at ``null``)."""
    if not np.isfinite(estimate):
        return np.nan
    z = side * (estimate - null)
    if se == 0.0:
        return 0.0 if z > 0 else 1.0
    return float(min(1.0, 2.0 * sps.t.sf(z / se, df)))


def t_pvalue(values: Sequence[float] | np.ndarray, null: float = 0.0, side: int = 1) -> float:
    """p-value of the one-sample t-test that the mean lies beyond ``null`` on the ``side``
    (+1: above, −1: below), doubled to match the two-sided t-interval: the interval at
    level 1 − α lies entirely beyond ``null`` on that side exactly when p < α (NaN for
    fewer than two values)."""
    x = _arr(values)
    if x.size < 2:
        return np.nan
    se = float(x.std(ddof=1)) / np.sqrt(x.size)
    return _directed_p(float(x.mean()), se, x.size - 1, null, side)


def welch_pvalue(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    null: float = 0.0,
    side: int = 1,
) -> float:
    """:func:`t_pvalue` for mean(a) − mean(b) of independent groups (Welch)."""
    a, b = _arr(a), _arr(b)
    if a.size < 2 or b.size < 2:
        return np.nan
    se, df = welch(a, b)
    return _directed_p(float(a.mean() - b.mean()), se, df, null, side)


def tost(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray | None = None,
    margin: float = 0.03,
    alpha: float = 0.05,
) -> dict[str, float | int | bool]:
    """Equivalence of the mean of the paired differences a − b (or of ``a`` alone) to 0
    within ±``margin``: two one-sided one-sample t tests (:func:`scipy.stats.ttest_1samp`),
    TOST.

    - ``p_lower``: H0 mean ≤ −margin against mean > −margin;
    - ``p_upper``: H0 mean ≥ +margin against mean < +margin;
    - ``p``: the TOST p-value, max(p_lower, p_upper); ``equivalent`` when p < ``alpha``,
      exactly when the (1 − 2·alpha) t interval (``ci_low``, ``ci_high``) lies inside
      (−margin, +margin).

    With no spread (SD 0) each test rejects exactly when the mean lies strictly on its
    side. NaN pairs are left out; fewer than two pairs give NaN p-values.
    """
    x = _arr(a) if b is None else _arr(a) - _arr(b)
    x = x[~np.isnan(x)]
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be positive, not {margin}")
    out: dict[str, float | int | bool] = {"n": int(x.size), "margin": margin, "alpha": alpha}
    if x.size < 2:
        nan = float("nan")
        return out | dict(mean=nan, sd=nan, p_lower=nan, p_upper=nan, p=nan,
                          ci_low=nan, ci_high=nan, equivalent=False)  # fmt: skip
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd == 0.0:
        p_lower, p_upper = float(not mean > -margin), float(not mean < margin)
    else:
        p_lower = float(sps.ttest_1samp(x, -margin, alternative="greater").pvalue)
        p_upper = float(sps.ttest_1samp(x, margin, alternative="less").pvalue)
    low, high = t_interval(x, 1.0 - 2.0 * alpha)
    p = max(p_lower, p_upper)
    return out | dict(mean=mean, sd=sd, p_lower=p_lower, p_upper=p_upper, p=p,
                      ci_low=low, ci_high=high, equivalent=bool(p < alpha))  # fmt: skip


def signed_rank_p(values: Sequence[float] | np.ndarray, null: float = 0.0, side: int = 1) -> float:
    """One-sided Wilcoxon signed-rank p-value (:func:`scipy.stats.wilcoxon`) of "the
    per-seed values are shifted above ``null``" (``side`` 1) or below it (−1): the
    rank-based paired test of red decodability (docs/results/probe_v2.md). NaNs are left
    out; 1 when no value differs from ``null`` (no evidence either way)."""
    x = _arr(values)
    x = x[~np.isnan(x)] - null
    if not np.any(x):
        return 1.0
    return float(sps.wilcoxon(x, alternative="greater" if side > 0 else "less").pvalue)


def hodges_lehmann(values: Sequence[float] | np.ndarray) -> float:
    """The Hodges–Lehmann shift of paired differences: the median of the Walsh averages
    (dᵢ + dⱼ)/2, i ≤ j, the estimate that goes with the signed-rank test."""
    d = _arr(values)
    d = d[~np.isnan(d)]
    i, j = np.triu_indices(len(d))
    return float(np.median((d[i] + d[j]) / 2)) if len(d) else float("nan")


def holm_levels(pvalues: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm's step-down procedure as confidence levels, one per p-value (same order).

    The m finite p-values are ranked, smallest first (ties in input order). While every
    earlier one was rejected, the k-th smallest is tested at α/(m − k + 1) and reported at
    level 1 − α/(m − k + 1). At the first rank j that is not rejected the procedure stops:
    it and every later rank are reported at level 1 − α/(m − j + 1), at which none of them
    is rejected. With p-values that match the intervals (:func:`t_pvalue`), an interval at
    its level excludes the null exactly when Holm rejects. A NaN p-value (not measured)
    is not counted in m and gets 1 − α.
    """
    p = np.asarray(pvalues, dtype=float)
    levels = np.full(p.size, 1.0 - alpha)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    stopped_at: float | None = None
    for k, i in enumerate(order, start=1):
        if stopped_at is None:
            a_k = alpha / (m - k + 1)
            if not p[i] < a_k:
                stopped_at = a_k
            levels[i] = 1.0 - a_k
        else:
            levels[i] = 1.0 - stopped_at
    return [float(v) for v in levels]


def seed_power(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    sizes: Sequence[int],
    draws: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[int, dict[str, float]]:
    """How often would a study of n seeds per group show mean(a) − mean(b) above 0, for
    each n in ``sizes``? The answer for choosing how many seeds a preset trains
    (docs/results/quick/seed_sets.md).

    Each of ``draws`` simulated studies draws n values for each group twice: from normals
    with the observed means and SDs (ddof 1; ``"normal"``) and by resampling the observed
    values with replacement (``"resampled"``); a study shows the difference when its Welch
    interval at ``confidence`` (:func:`welch_interval`) lies above 0. Returns the shares
    of studies that show it, {n: {"normal": …, "resampled": …}}. Both estimates judge the
    values they were fitted on, so they lean optimistic. One generator,
    ``numpy.random.default_rng(seed)``, draws in the order n, study, normal a, normal b,
    resampled a, resampled b.
    """
    a, b = _arr(a), _arr(b)
    if a.size < 2 or b.size < 2:
        raise ValueError("seed_power needs at least two values in each group")
    (ma, sa), (mb, sb) = (a.mean(), a.std(ddof=1)), (b.mean(), b.std(ddof=1))
    rng = np.random.default_rng(seed)
    out = {}
    for n in sizes:
        normal = resampled = 0
        for _ in range(draws):
            low = welch_interval(rng.normal(ma, sa, n), rng.normal(mb, sb, n), confidence)[0]
            normal += low > 0
            low = welch_interval(rng.choice(a, n), rng.choice(b, n), confidence)[0]
            resampled += low > 0
        out[int(n)] = {"normal": normal / draws, "resampled": resampled / draws}
    return out
