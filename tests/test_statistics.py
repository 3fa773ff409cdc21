"""Intervals, Holm's adjustment and verdict rule v2 (docs/spec.md §4.11): the intervals
against hand computations, the coverage simulation on a known population, and the v2
rule on constructed cases."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from soo_marl import metrics, stats
from soo_marl.analysis import compare, coverage, study
from soo_marl.analysis.tables import claims_table
from soo_marl.sweep.spec import StudyError, parse_study

#: t quantile t_{0.975, 3} from a printed table (12.706, 4.303, 3.182, …).
T975_DF3 = 3.182446305284263


# --------------------------------------------------------------------------- intervals


def test_t_interval_by_hand():
    x = [1.0, 2.0, 3.0, 4.0]
    se = math.sqrt(5.0 / 3.0) / 2.0  # SD (ddof 1) of 1..4 is sqrt(5/3); n = 4
    lo, hi = stats.t_interval(x)
    assert lo == pytest.approx(2.5 - T975_DF3 * se) and hi == pytest.approx(2.5 + T975_DF3 * se)
    s = metrics.summarize(x, method="t")
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    assert stats.t_interval([7.0, 7.0, 7.0]) == (7.0, 7.0)  # no spread: zero width
    assert all(math.isnan(v) for v in stats.t_interval([7.0]))  # one value: undefined


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]
    va, vb = (5.0 / 3.0) / 4.0, (1.0 / 3.0) / 4.0  # variance of each mean
    df = (va + vb) ** 2 / (va**2 / 3.0 + vb**2 / 3.0)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = metrics.summarize_difference(a, b, method="t")
    assert d["mean"] == pytest.approx(2.0)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((2.0 - half, 2.0 + half))
    same = metrics.summarize_difference([0.5] * 3, [0.1] * 3, method="t")
    assert (same["ci_low"], same["ci_high"]) == pytest.approx((0.4, 0.4))


def test_percentile_is_the_old_bootstrap_and_still_the_stored_default():
    x = np.array([0.3, -0.1, 0.25, 0.05, 0.4])
    rng = np.random.default_rng(0)
    boot = x[rng.integers(0, x.size, size=(10_000, x.size))].mean(axis=1)
    old = np.quantile(boot, [0.025, 0.975])
    s = metrics.summarize(x)  # metrics.json summaries keep the percentile bootstrap
    assert (s["ci_low"], s["ci_high"]) == (float(old[0]), float(old[1]))
    assert metrics.SUMMARY_METHOD == "percentile" and stats.PRIMARY == "t"


def test_bca_is_scipys_and_handles_constant_values():
    x = np.array([0.3, -0.1, 0.25, 0.05, 0.4, 0.1])
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(3)
    ).confidence_interval
    assert stats.bca_interval(x, n_boot=2000, seed=3) == pytest.approx((ref.low, ref.high))
    assert stats.bca_interval([0.2] * 5) == (0.2, 0.2)
    with pytest.raises(ValueError, match="unknown interval method"):
        stats.interval(x, method="jackknife")


def test_coverage_of_t_on_a_normal_population_is_95_percent():
    pop = np.random.default_rng(1).standard_normal(20_000)
    reps = 4000
    cell = coverage.coverage_cell(pop, 8, reps=reps, seed=7, methods=("t",))
    mc = math.sqrt(0.95 * 0.05 / reps)  # Monte Carlo SE, about 0.34 points
    assert cell["t"]["coverage"] == pytest.approx(0.95, abs=3.5 * mc)
    assert cell["t"]["undefined"] == 0
    # the percentile bootstrap is known to be too narrow at n = 4 (about 0.8–0.85)
    small = coverage.coverage_cell(pop, 4, reps=1000, n_boot=500, seed=7)
    assert small["percentile"]["coverage"] < 0.9 < small["t"]["coverage"]
    assert small["percentile"]["width"] < small["t"]["width"]


# --------------------------------------------------------------------------- Holm


def test_holm_levels_step_down():
    a = 0.05
    # ranked 0.01 (tested at a/3: rejected), 0.03 (at a/2: not rejected, stop), 0.04
    assert stats.holm_levels([0.01, 0.04, 0.03, math.nan]) == pytest.approx(
        [1 - a / 3, 1 - a / 2, 1 - a / 2, 1 - a]
    )
    # all rejected: the last one is tested at a itself
    assert stats.holm_levels([0.02, 0.001, 0.01]) == pytest.approx([1 - a, 1 - a / 3, 1 - a / 2])
    assert stats.holm_levels([0.5]) == pytest.approx([0.95])  # a family of one: no change


def test_holm_interval_excludes_the_null_exactly_when_holm_rejects():
    rng = np.random.default_rng(5)
    sets = [rng.normal(mu, 0.05, 8) for mu in (-0.08, -0.05, -0.03, 0.0, -0.12)]
    p = [sps.ttest_1samp(d, 0.0, alternative="less").pvalue * 2 for d in sets]
    assert [stats.t_pvalue(d, 0.0, -1) for d in sets] == pytest.approx(p)
    order = np.argsort(p)
    rejected, going = set(), True
    for k, i in enumerate(order):
        going = going and p[i] < 0.05 / (len(p) - k)
        if going:
            rejected.add(int(i))
    levels = stats.holm_levels(p)
    for i, d in enumerate(sets):
        assert (stats.t_interval(d, levels[i])[1] < 0.0) == (i in rejected)


def test_a_comparison_belongs_to_one_family():
    with pytest.raises(ValueError, match="two families"):
        compare.holm_levels({"a": 0.01, "b": 0.2}, {"f": ["a", "b"], "g": ["a"]})
    levels = compare.holm_levels({"a": 0.01, "b": 0.2, "c": 0.03}, {"f": ["a", "b", "gone"]})
    assert levels == pytest.approx({"a": 0.975, "b": 0.95, "c": 0.95})  # m = 2 measured


# --------------------------------------------------------------------------- rule v2


def ci(lo: float, hi: float, mean: float | None = None) -> dict:
    return {"mean": (lo + hi) / 2 if mean is None else mean, "ci_low": lo, "ci_high": hi, "n": 8}


REDUCING = ci(-0.10, -0.04)
MARGINS = {"band": 0.03, "goal_margin": 0.05, "goal_tolerance": 0.05}


@pytest.mark.parametrize(
    ("goal", "v2", "v1"),
    [
        # an improvement in goal reach never fails the clause (v1's two-sided one did)
        (ci(0.05, 0.25), study.REDUCES, study.INCONCLUSIVE),
        # a decrease whose lower bound stays within the margin passes
        (ci(-0.04, 0.02), study.REDUCES, study.REDUCES),
        # a mean decrease within 0.05 but a lower bound beyond -0.05 fails (v1 passed it)
        (ci(-0.08, 0.0), study.INCONCLUSIVE, study.REDUCES),
        (ci(-0.30, -0.10), study.INCONCLUSIVE, study.INCONCLUSIVE),
        (ci(-0.05, 0.05), study.INCONCLUSIVE, study.REDUCES),  # bound must be above
        (ci(math.nan, math.nan, 0.0), study.INCONCLUSIVE, study.REDUCES),
    ],
)
def test_goal_reach_non_inferiority(goal, v2, v1):
    assert study.rule_v2({"luring": REDUCING, "goal": goal}, MARGINS) == v2
    assert study.rule_v1({"luring": REDUCING, "goal": goal}, MARGINS) == v1


def test_luring_words_are_those_of_v1():
    goal = ci(-0.01, 0.01)
    v2 = lambda luring, goal: study.rule_v2({"luring": luring, "goal": goal}, MARGINS)  # noqa: E731
    assert v2(ci(-0.02, 0.03), ci(-0.3, 0.3)) == study.NEGATIVE
    assert v2(ci(-0.10, -0.029), goal) == study.INCONCLUSIVE
    assert v2(ci(0.04, 0.10), goal) == study.INCONCLUSIVE
    assert v2(ci(math.nan, math.nan), goal) == "not measured"
    with pytest.raises(ValueError, match="unknown verdict rule 'v9'"):
        study.parse_analysis(_analysis("v9"), ["dec", "control", "soo_a", "soo_b"], {}, "s")


#: Paired luring differences with mean -0.075 and SE 0.0173: the 95% t-interval lies
#: below -0.03, the 97.5% one does not (p of "below -0.03" about 0.036).
MODERATE = [-0.145, -0.105, -0.025, -0.065, -0.125, -0.005, -0.085, -0.045]
NOTHING = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0]
GOAL = [0.01, -0.01, 0.0, 0.02, -0.02, 0.0, 0.01, -0.01]


def _analysis(rule: str = "v2") -> dict:
    arm = lambda x: {"arm": x, "title": f"arm {x}", "treatment": f"soo_{x}", "control": "control"}  # noqa: E731
    return {"rule": rule, "record_rules": ["v1"], "parent": "dec",
            "margins": {"band": 0.03, "goal_margin": 0.05, "goal_tolerance": 0.05},
            "comparisons": [arm("a"), arm("b")]}  # fmt: skip


def _arm(name: str, luring: list[float]) -> dict:
    goal = metrics.summarize(GOAL, method="t")
    return {"arm": name, "title": f"arm {name}", "stage": f"soo_{name}",
            "luring": metrics.summarize(luring, method="t"), "goal": goal}  # fmt: skip


def test_holm_inside_a_declared_family_changes_a_verdict():
    p = sps.ttest_1samp(MODERATE, -0.03, alternative="less").pvalue * 2
    assert 0.025 < p < 0.05
    stages = ["dec", "control", "soo_a", "soo_b"]
    alone = study.judge(
        [_arm("a", MODERATE), _arm("b", NOTHING)],
        study.parse_analysis(_analysis(), stages, {}, "s"),  # no family: each at 95%
    )
    assert alone[0]["verdict"] == study.REDUCES
    assert alone[0]["level"] == pytest.approx(0.95)
    assert alone[0]["p"] == pytest.approx(p)
    spec = study.parse_analysis(_analysis(), stages, {"soo": ["soo_a", "soo_b"]}, "s")
    family = study.judge([_arm("a", MODERATE), _arm("b", NOTHING)], spec)
    # m = 2: the smaller p (a's) is tested at 0.025 and not rejected, so Holm stops and
    # both intervals are reported at 97.5%; a's no longer lies below -0.03
    a = family[0]
    assert a["level"] == pytest.approx(0.975) and family[1]["level"] == pytest.approx(0.975)
    assert a["family"] == "soo" and a["verdict"] == study.INCONCLUSIVE
    se = np.std(MODERATE, ddof=1) / math.sqrt(8)
    assert a["luring"]["ci_high"] == pytest.approx(np.mean(MODERATE) + sps.t.ppf(0.9875, 7) * se)
    assert a["luring"]["ci_high"] > -0.03
    assert a["v1"]["verdict"] == study.REDUCES  # the committed rule, for the record
    table = "\n".join(study.verdict_lines(family, spec))
    assert "| soo | 97.5% |" in table and "| reduces deception |" in table


def _m(seeds, **vals):
    top = {"luring_delta_trap", "deceivability", "blue_at_fake"}
    m = {"label": "x", "seeds": list(seeds), "metrics": {}}
    for k, v in vals.items():
        (m if k in top else m["metrics"])[k] = metrics.summarize(v)
    return m


def test_claims_table_rule_v2_and_a_family_of_claims():
    seeds = range(8)
    no_soo = _m(seeds, trap_rate=[0.5] * 8, blue_at_fake=[0.2] * 8)
    # paired trap-rate differences = MODERATE + 0.03: mean -0.045, p (below 0) about 0.036;
    # blue-at-fake differences = NOTHING: p about 1
    soo = _m(
        seeds,
        trap_rate=list(0.5 + np.add(MODERATE, 0.03)),
        blue_at_fake=list(0.2 + np.add(NOTHING, 0)),
    )
    ms = {"soo": soo, "no-soo": no_soo}

    def row(**kw):
        rows = claims_table(ms, {}, None, **kw).splitlines()[2:]
        return next(r for r in rows if "lowers trap rate" in r)

    assert row().endswith("**yes** |") and "Holm" not in row()
    assert row(rule="v1").endswith("**yes** |")
    fam = {"soo": ["soo_trap_rate", "soo_blue_at_fake"]}
    assert row(families=fam).endswith("**not shown** (CI includes 0) |")
    assert "(97.5% CI, Holm)" in row(families=fam)
    assert compare.interval_name("v2").startswith("Student-t")
    assert compare.interval_name("v1") == "percentile-bootstrap CI"


# --------------------------------------------------------------------------- study files


def _study(families):
    train = {"kind": "train", "options": {"baseline": "deceptive", "episodes": 10}}
    ft = {"kind": "finetune", "parent": "dec", "options": {"episodes": 10}}
    return {
        "name": "f",
        "stages": [{"name": "dec", **train}, {"name": "a", **ft}, {"name": "b", **ft}],
        "families": families,
    }


def test_study_files_declare_families():
    assert parse_study(_study({"soo": ["a", "b"]})).families == {"soo": ["a", "b"]}
    assert parse_study(_study(None)).families == {}
    with pytest.raises(StudyError, match="'c', which is not a stage"):
        parse_study(_study({"soo": ["a", "c"]}))
    with pytest.raises(StudyError, match="in two families"):
        parse_study(_study({"x": ["a"], "y": ["a", "b"]}))
    with pytest.raises(StudyError, match="non-empty list"):
        parse_study(_study({"x": "a"}))
    # families change no result: the study's digest is the same with or without them
    assert parse_study(_study({"soo": ["a"]})).digest() == parse_study(_study(None)).digest()


# --------------------------------------------------------------------------- seed power


def test_seed_power_of_a_planted_effect_matches_the_t_test_power():
    """n seeds per group, a normal effect of δ = 1 SD: the share of simulated studies whose
    Welch interval lies above 0 is the two-sample t-test's power, P(T(2n − 2, δ/√(2/n)) >
    t_{0.975, 2n − 2}) (noncentral t), once Welch's df is close to 2n − 2 (8 seeds on)."""
    rng = np.random.default_rng(1)
    b = rng.standard_normal(24)
    b = (b - b.mean()) / b.std(ddof=1)  # observed mean 0, SD 1
    a = b + 1.0
    power = stats.seed_power(a, b, [4, 8, 16], draws=4000, seed=0)
    assert list(power) == [4, 8, 16]
    expected = {}
    for n in power:
        df = 2 * n - 2
        expected[n] = sps.nct.sf(sps.t.ppf(0.975, df), df, 1.0 / math.sqrt(2 / n))
    assert expected == pytest.approx({4: 0.222, 8: 0.461, 16: 0.781}, abs=0.001)
    for n in (8, 16):
        assert power[n]["normal"] == pytest.approx(expected[n], abs=0.025), n
    # at 4 seeds Welch's df (often well below 6) costs power against the pooled t-test
    assert 0.15 < power[4]["normal"] < expected[4]
    # resampling the same 24 values (an exact shift) gives about the same power
    for n in power:
        assert power[n]["resampled"] == pytest.approx(power[n]["normal"], abs=0.03), n


def test_seed_power_without_an_effect_is_the_false_positive_rate():
    """Equal groups: a 95% two-sided interval lies above 0 in 2.5% of the studies."""
    x = np.random.default_rng(2).standard_normal(24)
    power = stats.seed_power(x, x, [8], draws=4000, seed=3)
    assert power[8]["normal"] == pytest.approx(0.025, abs=0.01)
    assert power[8]["resampled"] < 0.05


def test_seed_power_is_all_or_nothing_far_from_zero_and_deterministic():
    a = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    b = np.array([0.0, 0.1, -0.1, 0.05, -0.05])
    assert stats.seed_power(a, b, [3, 8], draws=200) == {
        3: {"normal": 1.0, "resampled": 1.0},
        8: {"normal": 1.0, "resampled": 1.0},
    }
    assert stats.seed_power(b, a, [8], draws=200) == {8: {"normal": 0.0, "resampled": 0.0}}
    close = a - 0.9
    first = stats.seed_power(close, b, [6], draws=300, seed=5)
    assert first == stats.seed_power(close, b, [6], draws=300, seed=5)
    assert first != stats.seed_power(close, b, [6], draws=300, seed=6)
    with pytest.raises(ValueError, match="at least two values"):
        stats.seed_power([1.0], b, [8])
