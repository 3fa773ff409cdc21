"""Every reported number recomputable (issue 31 item 4): each committed model folder carries
a ``seed_values.json`` (docs/spec.md §4.13), and an interval quoted by each results
document is recomputed from those files with the document's own interval method and
compared, at the document's precision, with the text the document shows.

A check names the document, a piece of the line that holds the number (so it is the
right row), and the quoted text itself: the test fails if the document changes the text or
if the committed per-seed values no longer give it. How the files were made:
docs/results/models/README.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from soo_marl import metrics, seed_values

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "docs" / "results" / "models"
RESULTS = ROOT / "docs" / "results"

# Model folders (set/run) still without a seed_values.json: none. Add a folder here only
# with a comment saying why; the test below fails for any other folder without one.
MISSING_ALLOWED: set[str] = set()


def _run_dirs() -> list[Path]:
    return sorted(p.parent for p in MODELS.glob("*/*/final_model.pt"))


def test_every_model_folder_has_seed_values_of_the_schema():
    runs = _run_dirs()
    assert len(runs) >= 50
    missing = []
    for run in runs:
        name = f"{run.parent.name}/{run.name}"
        if not (run / seed_values.FILE).exists():
            missing.append(name)
            continue
        for path in sorted(run.glob("seed_values*.json")):
            rec = seed_values.read_seed_values(path)
            assert rec["seeds"], path
            assert len(set(rec["seeds"])) == len(rec["seeds"]), path
            assert rec["measures"], path
            for measure, values in rec["measures"].items():
                assert len(values) == len(rec["seeds"]), (path, measure)
            ev = rec["evaluation"]
            assert ev["episodes_per_eval_seed"] > 0 and ev["eval_seeds"], path
            assert rec["provenance"].get("torch") and rec["provenance"].get("processor"), path
            assert rec["made_by"]["command"].startswith("OMP_NUM_THREADS=1"), path
    assert sorted(set(missing) - MISSING_ALLOWED) == [], "model folders without seed_values.json"


def _rec(run: str, fname: str = seed_values.FILE) -> dict:
    return seed_values.read_seed_values(MODELS / run / fname)


def _joined(runs: list[str], fname: str = seed_values.FILE) -> dict:
    """Files of one stack split by seed (e.g. quick24_r0.5_s*), joined in seed order."""
    recs = [_rec(r, fname) for r in runs]
    out = dict(recs[0])
    out["seeds"] = [s for r in recs for s in r["seeds"]]
    out["measures"] = {m: [v for r in recs for v in r["measures"][m]] for m in recs[0]["measures"]}
    assert out["seeds"] == sorted(out["seeds"])
    return out


def _vals(rec: dict, measure: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in rec["measures"][measure]], float)


def _parse(text: str) -> tuple[list[float], list[int]]:
    """The numbers of a quoted "m [lo, hi]" and their decimals."""
    nums = re.findall(r"[+\-−]?\d+\.\d+", text)
    return [float(n.replace("−", "-")) for n in nums], [len(n.split(".")[1]) for n in nums]


def _assert_quoted(doc: str, anchor: str, quoted: str, got: tuple[float, ...]) -> None:
    lines = (RESULTS / doc).read_text().splitlines()
    assert any(anchor in ln and quoted in ln for ln in lines), (
        f"{doc}: no line with {anchor!r} and {quoted!r}"
    )
    numbers, decimals = _parse(quoted)
    assert len(numbers) == len(got), quoted
    for want, d, x in zip(numbers, decimals, got, strict=True):
        assert round(x, d) == pytest.approx(want, abs=1e-9), (doc, quoted, got)


def _single(rec: dict, measure: str, method: str) -> tuple[float, float, float]:
    s = metrics.summarize(_vals(rec, measure), method=method)
    return s["mean"], s["ci_low"], s["ci_high"]


def _diff(a: dict, b: dict, measure: str, method: str) -> tuple[float, float, float]:
    d = metrics.summarize_difference(_vals(a, measure), _vals(b, measure), method=method)
    return d["mean"], d["ci_low"], d["ci_high"]


P, T = "percentile", "t"  # the reports' bootstrap; Student-t / Welch (rule v2, §4.11)

# (document, anchor on the quoted line, quoted text, how to recompute it)
SINGLE = [
    # paper-scale baselines, 500 x 8 (reproduce --preset paper; deception.md's probes)
    (
        "paper_r0.5/report.md",
        "| deceptive r0.5 | 8 |",
        "0.112 [0.097, 0.130]",
        "paper_r0.5/deceptive",
        "luring_delta_trap",
        P,
    ),
    (
        "paper_r0.125/report.md",
        "| honest r0.125 | 8 |",
        "0.258 [0.205, 0.319]",
        "paper_r0.125/honest",
        "metrics.trap_rate",
        P,
    ),
    (
        "deception.md",
        "red decodability R²",
        "0.839 [0.774, 0.898]",
        "paper_r0.5/deceptive",
        "red_decodability",
        P,
    ),
    (
        "deception.md",
        "shuffled-red luring Δtrap",
        "0.121 [0.101, 0.139]",
        "paper_r0.5/deceptive",
        "shuffled.luring_delta_trap",
        P,
    ),
    (
        "reproduce.md",
        "1a. …and the deception is blue's",
        "−0.000 [−0.007, 0.007]",
        "paper_r0.125/deceptive",
        "luring_delta_trap",
        P,
    ),
    # 20,000-episode baselines, 200 x 8 (baselines.md, deception.md)
    (
        "baselines.md",
        "| deceptive r0.5 | 8 |",
        "0.514 [0.465, 0.554]",
        "r0.5/deceptive",
        "metrics.trap_rate",
        P,
    ),
    (
        "deception.md",
        "| deceptive r0.5 |",
        "0.064 [0.032, 0.096]",
        "r0.5/deceptive",
        "luring_delta_trap",
        P,
    ),
]
SINGLE_E50 = [
    # the parents in the SOO study's evaluation, 50 x 8 (seed_values_e50.json)
    (
        "soo_study.md",
        "| deceptive r0.5 |",
        "0.694 [0.530, 0.850]",
        "paper_r0.5/deceptive",
        "metrics.blue_goal_rate",
        P,
    ),
    (
        "reproduce.md",
        "| deceptive r0.5 |",
        "0.107 [0.082, 0.132]",
        "paper_r0.5/deceptive",
        "blind.luring_delta_trap",
        P,
    ),
    (
        "reproduce.md",
        "| honest r0.125 |",
        "−2.641 [−3.146, −2.232]",
        "paper_r0.125/honest",
        "metrics.soo_value_pre_trap",
        P,
    ),
]
DIFF_E50 = [
    # the old quick preset's own evaluation, 50 x 8 (its report at d160687)
    (
        "quick/seed_sets.md",
        "luring Δtrap was",
        "+0.026 [+0.010, +0.041]",
        "quick_r0.5",
        "luring_delta_trap",
        P,
    ),
]
DIFF = [
    (
        "reproduce.md",
        "1. The deceptive baseline deceives",
        "+0.335 [+0.287, +0.378]",
        "paper_r0.5",
        "metrics.trap_rate",
        P,
    ),
    (
        "reproduce.md",
        "1. The deceptive baseline deceives",
        "+0.161 [+0.040, +0.263]",
        "paper_r0.125",
        "metrics.trap_rate",
        P,
    ),
    (
        "paper_r0.5/report.md",
        "blue-side: luring Δtrap",
        "+0.115 [+0.097, +0.134]",
        "paper_r0.5",
        "luring_delta_trap",
        P,
    ),
    (
        "soo_study.md",
        "| speed: red speed",
        "+0.054 [+0.031, +0.082]",
        "variant_speed_r0.5",
        "luring_delta_trap",
        P,
    ),
    (
        "soo_study.md",
        "| delay: red waits",
        "+0.056 [+0.028, +0.093]",
        "variant_delay_r0.5",
        "luring_delta_trap",
        P,
    ),
    (
        "soo_study.md",
        "| both |",
        "+0.002 [−0.012, +0.016]",
        "variant_both_r0.5",
        "luring_delta_trap",
        P,
    ),
    (
        "closed_loop.md",
        "| L leash and deadline |",
        "+0.183 [+0.129, +0.237]",
        "closed_loop_pilot_L",
        "luring_delta_trap",
        T,
    ),
    (
        "closed_loop.md",
        "| 1. deceptive − honest luring",
        "+0.152 [+0.111, +0.192]",
        "closed_loop_L_r0.5",
        "luring_delta_trap",
        T,
    ),
    (
        "quick/seed_sets.md",
        "| 8–15 | luring Δtrap |",
        "[+0.004, +0.112]",
        "quick8_s8-15_r0.5",
        "luring_delta_trap",
        T,
    ),
]


@pytest.mark.parametrize("doc,anchor,quoted,run,measure,method", SINGLE)
def test_a_quoted_interval_recomputes(doc, anchor, quoted, run, measure, method):
    _assert_quoted(doc, anchor, quoted, _single(_rec(run), measure, method))


@pytest.mark.parametrize("doc,anchor,quoted,run,measure,method", SINGLE_E50)
def test_a_quoted_interval_of_the_soo_study_evaluation_recomputes(
    doc, anchor, quoted, run, measure, method
):
    _assert_quoted(doc, anchor, quoted, _single(_rec(run, "seed_values_e50.json"), measure, method))


@pytest.mark.parametrize("doc,anchor,quoted,models,measure,method", DIFF)
def test_a_quoted_difference_recomputes(doc, anchor, quoted, models, measure, method):
    got = _diff(_rec(f"{models}/deceptive"), _rec(f"{models}/honest"), measure, method)
    if quoted.startswith("["):  # the document quotes the interval in its own column
        got = got[1:]
    _assert_quoted(doc, anchor, quoted, got)


@pytest.mark.parametrize("doc,anchor,quoted,models,measure,method", DIFF_E50)
def test_a_quoted_difference_of_an_earlier_evaluation_recomputes(
    doc, anchor, quoted, models, measure, method
):
    fname = "seed_values_e50.json"
    got = _diff(
        _rec(f"{models}/deceptive", fname), _rec(f"{models}/honest", fname), measure, method
    )
    _assert_quoted(doc, anchor, quoted, got)


def test_the_quick_preset_24_seeds_recompute_from_the_three_files():
    sets = [f"quick24_r0.5_s{s}" for s in ("0-7", "8-15", "16-23")]
    dec = _joined([f"{s}/deceptive" for s in sets])
    hon = _joined([f"{s}/honest" for s in sets])
    assert dec["seeds"] == list(range(24))
    got = _diff(dec, hon, "luring_delta_trap", T)
    _assert_quoted("quick/report.md", "blue-side: luring Δtrap", "+0.044 [+0.020, +0.067]", got)
    _assert_quoted(
        "quick/seed_sets.md", "deceptive − honest luring Δtrap", "+0.044 [+0.020, +0.067]", got
    )


def test_short_trained_agent_and_per_seed_values():
    _assert_quoted(
        "soo_study.md",
        "Its own luring Δtrap is",
        "0.048 [0.017, 0.093]",
        _single(_rec("short10k_r0.5/deceptive"), "luring_delta_trap", P),
    )
    # a per-seed row quoted to three decimals (quick8_r0.5: seeds 0-7 of the chosen setting)
    row = "0.008 0.101 0.070 0.085 0.045 −0.039 0.091 0.036"
    assert row in (RESULTS / "quick/seed_sets.md").read_text()
    got = _vals(_rec("quick8_r0.5/deceptive"), "luring_delta_trap")
    assert [f"{v:.3f}".replace("-", "−") for v in got] == row.split()


def test_probe_v2_regenerated_arms_recompute_from_seed_values():
    """probe_v2.md's regeneration table: the positive control's and the blinding arm's
    paired luring (arm − control, with the parent's red) recomputed from the arms'
    seed_values.json equal the regenerated arms.json, seed for seed."""
    arms = json.loads((MODELS.parent / "probe_v2" / "regenerated" / "arms.json").read_text())
    key = "cross_play.deceptive r0.5.luring_delta_trap"
    halves = ("soo_study2_arms_s0-15", "soo_study2_arms_s16-31")
    control = _vals(_joined([f"{h}/control" for h in halves]), key)
    for r in arms:
        arm = _vals(_joined([f"{h}/{r['stage']}" for h in halves]), key)
        np.testing.assert_allclose(arm - control, r["luring"]["values"], atol=1e-12)
