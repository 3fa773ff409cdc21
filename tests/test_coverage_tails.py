"""One-sided coverage (issue 31): the miss rate of each bound on known populations, the
bootstrap-t, sign-flip and BCa bounds against direct computations, TOST against the t
distribution, verdict rule v3 on constructed intervals, and the committed v3 re-judgings
reproduced from the committed arms.json files."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from soo_marl import metrics, stats
from soo_marl.analysis import coverage, equivalence, study
from soo_marl.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent


def mc(alpha: float, reps: int) -> float:
    """Monte Carlo SE of a miss rate whose true value is alpha."""
    return math.sqrt(alpha * (1 - alpha) / reps)


# --------------------------------------------------------------------------- miss rates


def test_t_tails_on_a_normal_population_are_nominal_on_each_side():
    pop = np.random.default_rng(1).standard_normal(20_000)
    reps = 3000
    cell = coverage.tail_cell(pop, 8, reps=reps, n_boot=199, seed=7)
    for level in coverage.LEVELS:
        alpha = (1 - level) / 2
        for side in ("below_lower", "above_upper"):
            for method in ("t", "signflip"):  # exact for a normal (symmetric) population
                got = cell[method][f"{level:g}"][side]
                assert got == pytest.approx(alpha, abs=3.5 * mc(alpha, reps)), (method, side)
        assert cell["t"][f"{level:g}"]["undefined"] == 0
    # the percentile bootstrap is too narrow at n = 8 on both sides
    pct = cell["percentile"]["0.95"]
    assert pct["below_lower"] > 0.035 and pct["above_upper"] > 0.035


def test_a_left_skewed_population_misses_below_more_than_above():
    # mostly small values and a long left tail, like the paired luring and goal differences
    rng = np.random.default_rng(2)
    pop = -(rng.exponential(1.0, 20_000) ** 1.5)
    cell = coverage.tail_cell(pop, 16, reps=2000, n_boot=199, seed=3)["t"]["0.95"]
    assert cell["below_lower"] > 0.025 + 3 * mc(0.025, 2000)  # lower bound too high
    assert cell["above_upper"] < 0.025 - 3 * mc(0.025, 2000)  # upper bound conservative
    mirrored = coverage.tail_cell(-pop, 16, reps=2000, n_boot=199, seed=3)["t"]["0.95"]
    assert mirrored["below_lower"] == pytest.approx(cell["above_upper"], abs=0.012)
    assert mirrored["above_upper"] == pytest.approx(cell["below_lower"], abs=0.012)


def test_welch_tails_on_two_normal_populations_are_nominal():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 1.0, 20_000), rng.normal(0.0, 0.3, 20_000)
    reps = 3000
    cell = coverage.tail_cell(a, 8, reps=reps, n_boot=199, seed=5, other=b)
    assert set(cell) == set(coverage.TWO_SAMPLE)
    for side in ("below_lower", "above_upper"):
        got = cell["welch"]["0.95"][side]
        assert got == pytest.approx(0.025, abs=3.5 * mc(0.025, reps))


def test_simulate_tails_tags_rows_and_markdown_names_the_nominal_error():
    pops = [
        {"name": "g", "measure": "goal", "paired": True, "values": [-0.5, 0.0, 0.1, 0.2]},
        {"name": "l", "measure": "luring", "paired": True, "values": [-0.3, -0.1, 0.0, 0.1]},
    ]
    pairs = [{"name": "g vs l", "a": pops[0]["values"], "b": pops[1]["values"]}]
    rows = coverage.simulate_tails(pops, pairs, (8,), reps=50, n_boot=99)
    assert [(r["population"], r["samples"], r["measure"]) for r in rows] == [
        ("g", 1, "goal"), ("l", 1, "luring"), ("g vs l", 2, "pair"),
    ]  # fmt: skip
    meta = {"reps": 50, "n_boot": 99, "n_flip": coverage.N_FLIP, "seed": 1, "wall_s": 0.0}
    text = coverage.tails_markdown(rows, meta | {"cpu": "x"})
    assert "95% (97.5% one-sided, α 2.5%)" in text and "99% (99.5% one-sided, α 0.5%)" in text
    assert "Non-inferiority clause: lower bound on the 1 paired goal-reach" in text


# --------------------------------------------------------------------------- the bounds


def test_bootstrap_t_interval_by_direct_computation():
    x = np.array([0.3, -0.1, 0.25, 0.05, 0.4, 0.1, -0.5, 0.2])
    n, n_boot = x.size, 999
    g = x[np.random.default_rng(11).integers(0, n, size=(n_boot, n))]
    t = np.sort((g.mean(1) - x.mean()) / (g.std(1, ddof=1) / math.sqrt(n)))
    se = x.std(ddof=1) / math.sqrt(n)
    want = (x.mean() - t[n_boot - 25] * se, x.mean() - t[24] * se)  # k = ⌊1000 · 0.025⌋
    assert stats.bootstrap_t_interval(x, 0.95, n_boot, seed=11) == pytest.approx(want)
    assert stats.interval(x, 0.95, "boot_t", n_boot, 11) == pytest.approx(want)
    assert stats.bootstrap_t_interval([0.2] * 4) == (0.2, 0.2)
    # the simulation's vectorised bootstrap-t on the same resamples gives the same bounds
    mean, var = g.mean(1)[None], (g.var(1, ddof=1) / n)[None]
    r = coverage.Resamples(
        np.array([x.mean()]), np.array([se]), mean, np.sqrt(var), np.array([0.0])
    )
    lo, hi = coverage.bootstrap_bounds(r, [0.95])["boot_t"][0.95]
    assert (lo[0], hi[0]) == pytest.approx(want)


def test_bca_bounds_follow_scipy():
    x = np.array([0.3, -0.1, 0.25, 0.05, 0.4, 0.1, -0.5, 0.2, 0.9])
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=100_000, method="BCa", rng=np.random.default_rng(0)
    ).confidence_interval
    r = coverage.resample(x[None], None, np.random.default_rng(1), 100_000)
    lo, hi = coverage.bootstrap_bounds(r, [0.95])["bca"][0.95]
    assert (lo[0], hi[0]) == pytest.approx((ref.low, ref.high), abs=0.01)
    # the acceleration of the mean by the jackknife: skewness / (6 √n)
    u = x.mean() - x
    a = (u**3).sum() / (6 * ((u**2).sum()) ** 1.5)
    assert coverage.jackknife_acceleration([x[None]], [1])[0] == pytest.approx(-a)


def test_signflip_bounds_invert_the_sign_flip_test():
    x = np.array([0.31, -0.12, 0.05, 0.44, 0.18, -0.02, 0.27])
    n = x.size
    signs = np.array(list(itertools.product([1, -1], repeat=n)))

    def p_upper(mu: float) -> float:  # share of sign vectors at least as large as observed
        d = x - mu
        return float(np.mean(signs @ d >= d.sum() - 1e-12))

    def p_lower(mu: float) -> float:
        d = x - mu
        return float(np.mean(signs @ d <= d.sum() + 1e-12))

    for level in (0.8, 0.95):
        alpha = (1 - level) / 2
        lo, hi = coverage.signflip_bounds(x[None], np.random.default_rng(0), [level])[level]
        assert p_upper(lo[0]) > alpha >= p_upper(lo[0] - 1e-6)  # the smallest kept μ0
        assert p_lower(hi[0]) > alpha >= p_lower(hi[0] + 1e-6)  # the largest kept μ0
    # random sign vectors (n above exact_up_to) come close to the exact bounds
    exact = coverage.signflip_bounds(x[None], np.random.default_rng(0), [0.9])[0.9]
    approx = coverage.signflip_bounds(x[None], np.random.default_rng(0), [0.9], 20_000, 4)[0.9]
    assert np.allclose(np.ravel(approx), np.ravel(exact), atol=0.03)


# --------------------------------------------------------------------------- TOST


def test_tost_equivalent_and_not_by_the_t_distribution():
    rng = np.random.default_rng(8)
    control = rng.normal(0.0, 0.05, 32)
    close = control + rng.normal(0.004, 0.02, 32)  # differences: mean ≈ 0, small SD
    far = control + rng.normal(0.05, 0.02, 32)
    for treated, equivalent in ((close, True), (far, False)):
        d = treated - control
        res = stats.tost(treated, control, margin=0.03)
        se = d.std(ddof=1) / math.sqrt(d.size)
        p_lo = sps.t.sf((d.mean() + 0.03) / se, d.size - 1)  # H0: mean ≤ −0.03
        p_hi = sps.t.cdf((d.mean() - 0.03) / se, d.size - 1)  # H0: mean ≥ +0.03
        assert (res["p_lower"], res["p_upper"]) == pytest.approx((p_lo, p_hi))
        assert res["p"] == pytest.approx(max(p_lo, p_hi))
        assert res["equivalent"] is equivalent
        lo, hi = sps.t.interval(0.90, d.size - 1, loc=d.mean(), scale=se)
        assert (res["ci_low"], res["ci_high"]) == pytest.approx((lo, hi))
        assert bool(-0.03 < lo and hi < 0.03) is equivalent  # TOST ⇔ the 90% CI inside ±m
    wide = stats.tost(rng.normal(0.0, 0.3, 8), margin=0.03)  # mean ≈ 0 but too few/noisy
    assert not wide["equivalent"] and wide["n"] == 8
    assert stats.tost([0.01] * 5, margin=0.03)["p"] == 0.0  # no spread, inside the margin
    with pytest.raises(ValueError, match="positive"):
        stats.tost([0.0, 1.0], margin=0.0)


def test_bootstrap_t_pvalue_matches_its_interval():
    rng = np.random.default_rng(12)
    for mu in (-0.09, -0.06, -0.045, -0.03, 0.0):
        d = rng.normal(mu, 0.05, 16)
        p = stats.bootstrap_t_pvalue(d, -0.03, -1, n_boot=2000, seed=3)
        for level in (0.9, 0.95, 0.975, 0.99):
            hi = stats.bootstrap_t_interval(d, level, n_boot=2000, seed=3)[1]
            assert (hi < -0.03) == (p <= 1 - level), (mu, level)
        q = stats.bootstrap_t_pvalue(d, mu - 0.2, 1, n_boot=2000, seed=3)  # far above
        assert q == pytest.approx(2 / 2001)
    assert stats.bootstrap_t_pvalue([-0.1] * 4, -0.03, -1) == 0.0


# --------------------------------------------------------------------------- rule v3


def planted(lo: float, hi: float) -> dict:
    return {"mean": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "n": 32}


MARGINS = {"band": 0.03, "goal_margin": 0.05}


@pytest.mark.parametrize(
    ("luring", "goal", "verdict"),
    [
        ((-0.10, -0.031), (-0.049, 0.02), study.REDUCES),  # both clauses just hold
        ((-0.10, -0.030), (-0.02, 0.02), study.INCONCLUSIVE),  # upper bound not below −band
        ((-0.10, -0.05), (-0.050, 0.02), study.INCONCLUSIVE),  # lower bound not above −margin
        ((-0.10, -0.05), (0.05, 0.30), study.REDUCES),  # an improvement never fails
        ((-0.03, 0.03), (-0.5, -0.3), study.NEGATIVE),  # inside ±band, whatever the goal
        ((-0.031, 0.01), (-0.01, 0.01), study.INCONCLUSIVE),
    ],
)
def test_rule_v3_on_planted_intervals(luring, goal, verdict):
    m = {"luring": planted(*luring), "goal": planted(*goal)}
    assert study.rule_v3(m, MARGINS) == verdict
    rule = study.RULES["v3"]
    assert (rule.method, rule.holm, rule.pvalue) == ("boot_t", True, stats.bootstrap_t_pvalue)


def test_rule_v3_judges_with_bootstrap_t_and_ranks_its_p_values():
    rng = np.random.default_rng(21)
    luring = [rng.normal(-0.08, 0.04, 32), rng.normal(-0.05, 0.06, 32)]
    records = [
        {"arm": x, "title": f"arm {x}", "stage": f"soo_{x}",
         "luring": metrics.summarize(v, method="t"),
         "goal": metrics.summarize(rng.normal(0.0, 0.05, 32), method="t")}
        for x, v in zip("ab", luring, strict=True)
    ]  # fmt: skip
    raw = {"rule": "v3", "record_rules": ["v2"], "parent": "dec", "margins": MARGINS,
           "comparisons": [{"arm": x, "title": f"arm {x}", "treatment": f"soo_{x}",
                            "control": "control"} for x in "ab"]}  # fmt: skip
    spec = study.parse_analysis(
        raw, ["dec", "control", "soo_a", "soo_b"], {"f": ["soo_a", "soo_b"]}, "s"
    )
    judged = study.judge(records, spec)
    p = [stats.bootstrap_t_pvalue(v, -0.03, -1) for v in luring]
    levels = stats.holm_levels(p)
    t_levels = stats.holm_levels([stats.t_pvalue(v, -0.03, -1) for v in luring])
    for r, v, pv, level, t_level in zip(judged, luring, p, levels, t_levels, strict=True):
        assert r["p"] == pytest.approx(pv) and r["level"] == pytest.approx(level)
        luring_ci = (r["luring"]["ci_low"], r["luring"]["ci_high"])
        assert luring_ci == pytest.approx(stats.bootstrap_t_interval(v, level))
        goal_low = stats.bootstrap_t_interval(r["goal"]["values"])[0]  # at 95%
        assert r["goal"]["ci_low"] == pytest.approx(goal_low)
        # the record rule v2 at its own Holm levels, from t p-values
        assert r["v2"]["luring"]["ci_high"] == pytest.approx(stats.t_interval(v, t_level)[1])


@pytest.mark.parametrize("which", ["soo_study", "soo_study2"])
def test_committed_v3_rejudgings_reproduce(which, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the command as the docs give it, from the repository root
    arms = f"docs/results/{which}/arms.json"
    args = ["analyze", f"studies/{which}.yaml", "--arms-json", arms, "--out", str(tmp_path),
            "--rule", "v3", "--name", "verdicts_v3"]  # fmt: skip
    assert CliRunner().invoke(cli_main, args).exit_code == 0
    committed = json.loads((ROOT / "docs" / "results" / which / "verdicts_v3.json").read_text())
    assert json.loads((tmp_path / "verdicts_v3.json").read_text()) == committed
    assert {r["rule"] for r in committed} == {"v3"}
    committed_md = (ROOT / "docs" / "results" / which / "verdicts_v3.md").read_text()
    assert (tmp_path / "verdicts_v3.md").read_text() == committed_md


# --------------------------------------------------------------------------- equivalence


def test_equivalence_words_and_the_study2_differences_pair_by_seed():
    assert equivalence.words(True, False, False, 0.03) == "shown equivalent within ±0.03"
    assert equivalence.words(False, False, False, 0.03).startswith("not shown equivalent")
    assert equivalence.words(False, True, True, 0.03) == "shown different by more than 0.03"
    arms = json.loads((ROOT / "docs/results/soo_study2/arms.json").read_text())
    by = {(r["arm"], r["title"]): np.array(r["luring"]["values"], float) for r in arms}
    (x, y) = equivalence.STUDY2["sham − 2a"]
    d = equivalence.arm_difference(arms, x, y)
    assert np.allclose(d, by[x] - by[y]) and d.size == 32
    rng = np.random.default_rng(3)
    diffs = {"close": rng.normal(0.0, 0.02, 32), "apart": rng.normal(0.1, 0.02, 32)}
    close, apart = equivalence.equivalence(diffs, 0.03)
    assert close["words"] == "shown equivalent within ±0.03"
    assert apart["words"] == "shown different by more than 0.03"
    committed = json.loads((ROOT / "docs/results/soo_study2/equivalence.json").read_text())
    again = equivalence.equivalence(
        {k: equivalence.arm_difference(arms, *v) for k, v in equivalence.STUDY2.items()}
    )
    assert json.loads(json.dumps(again)) == committed["results"]
