"""`soo-marl reproduce --preset test` runs end to end and skips finished stages."""

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from soo_marl import rundir
from soo_marl.analysis.tables import fmt
from soo_marl.cli import main


@pytest.mark.slow
def test_reproduce_end_to_end_then_skips(tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["reproduce", "--preset", "test", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert any("fig2_trajectories" in link for link in links)
    for link in links:  # every file the report links to exists
        assert (out / link).is_file(), link
    rows: dict[str, str] = {}
    for r in report.splitlines():  # the first row of each label: the results table
        rows.setdefault(r.split(" | ")[0].lstrip("| "), r)
    for cond in ("deceptive", "honest", "soo", "nosoo"):
        m = rundir.require_metrics(out / cond)  # every condition evaluated …
        row = rows[m["label"]]  # … with its own row in the results table, quoting its numbers
        assert f"| {len(m['seeds'])} | {fmt(m['metrics']['trap_rate'])} |" in row
        assert row.endswith(f"| {fmt(m['metrics']['soo_value'])} |")
    blind = report.split("## Does blue's luring need to see red?")[1].split("\n## ")[0]
    states = report.split("## SOO value by trap state")[1].split("\n## ")[0]
    for cond in ("deceptive", "honest", "soo", "nosoo"):  # the instruments' rows, per run
        m = rundir.require_metrics(out / cond)
        cells = [m["luring_delta_trap"], m["blind"]["luring_delta_trap"], m["closed_loop_share"]]
        assert f"| {m['label']} | " + " | ".join(fmt(c) for c in cells) + " |" in blind
        values = [fmt(m["metrics"][k]) for k in ("soo_value", "soo_value_pre_trap")]
        assert f"| {m['label']} | {values[0]} | {values[1]} |" in states
    for cond in ("deceptive", "honest", "soo", "nosoo"):  # buffers pruned, after evaluation
        saved = rundir.load_checkpoint(out / cond / rundir.CHECKPOINT)
        assert saved.get("buffer_pruned") and "buffer" not in saved, cond
        assert rundir.require_metrics(out / cond)["saturation_replay"] is not None, cond
    labels = {rundir.require_metrics(out / c)["label"] for c in ("soo", "nosoo")}
    assert labels == {"soo r0.125", "no-soo r0.125"}
    stamp = (out / "deceptive" / "final_model.pt").stat().st_mtime_ns
    again = CliRunner().invoke(
        main, ["reproduce", "--preset", "test", "--out", str(out), "--quiet"]
    )
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipped") == 8  # every stage, the report too
    assert (out / "deceptive" / "final_model.pt").stat().st_mtime_ns == stamp
    report = (out / "report.md").read_text()
    assert "## The paper's claims, as measured here" in report
    assert "soo-marl reproduce --preset test --seeds 2 --sight-radius 0.125" in report
    assert (out / "provenance.json").exists()
    for key in ("| torch | ", "| numpy | ", "| machine | ", "| **total** |"):
        assert key in report, key
    assert "SOO fine-tuning lowers trap rate below the `--no-soo` control" in report
    # other settings in the same directory are refused, nothing is overwritten
    clash = CliRunner().invoke(
        main, ["reproduce", "--preset", "test", "--seeds", "3", "--out", str(out), "--quiet"]
    )
    assert clash.exit_code != 0
    assert "other settings" in clash.output and "seeds 2 there, 3 now" in clash.output
    assert (out / "deceptive" / "final_model.pt").stat().st_mtime_ns == stamp


def _m(seeds, **vals):
    """A metrics.json-like dict with per-seed values of some metrics."""
    from soo_marl.metrics import summarize

    top = {"luring_delta_trap", "deceivability", "blue_at_fake"}
    m = {"label": "x", "seeds": list(seeds), "metrics": {}}
    for k, v in vals.items():
        (m if k in top else m["metrics"])[k] = summarize(v)
    return m


def test_paired_and_unpaired_differences_and_verdicts():
    from soo_marl.analysis.compare import difference, verdict

    a = _m([0, 1, 2, 3], trap_rate=[0.5, 0.6, 0.4, 0.5])
    b = _m([0, 1, 2, 3], trap_rate=[0.4, 0.5, 0.3, 0.4])
    paired = difference(a, b, "trap_rate", paired=True)
    # every seed differs by exactly 0.1: the paired CI collapses onto 0.1
    assert paired["mean"] == pytest.approx(0.1)
    assert paired["ci_low"] == pytest.approx(0.1) and paired["ci_high"] == pytest.approx(0.1)
    assert verdict(paired, +1) == "**yes**"
    assert verdict(paired, -1) == "**no** (opposite sign)"
    unpaired = difference(a, b, "trap_rate", paired=False)
    assert unpaired["mean"] == pytest.approx(0.1)
    assert unpaired["ci_low"] < 0.1 < unpaired["ci_high"]  # seed spread widens it
    noisy = difference(_m([0, 1], trap_rate=[0.1, 0.9]), b, "trap_rate", paired=False)
    assert verdict(noisy, +1) == "**not shown** (CI includes 0)"
    with pytest.raises(ValueError, match="same seeds"):
        difference(a, _m([4, 5, 6, 7], trap_rate=[0.1] * 4), "trap_rate", paired=True)


def test_claims_table_reads_each_claim():
    from soo_marl.analysis.tables import claims_table
    from soo_marl.metrics import summarize

    seeds = [0, 1, 2]
    common = dict(blue_at_fake=[0.2, 0.2, 0.2], headline_noguard=[3.0, 3.0, 3.0])
    ms = {
        "deceptive": _m(
            seeds, trap_rate=[0.5, 0.5, 0.5], luring_delta_trap=[0.1, 0.1, 0.1], **common
        ),
        "honest": _m(seeds, trap_rate=[0.1, 0.1, 0.1], luring_delta_trap=[0.0, 0.0, 0.0], **common),
        "soo": _m(seeds, trap_rate=[0.3, 0.3, 0.3], luring_delta_trap=[0.1, 0.1, 0.1], **common),
        # paired trap-rate differences -0.2, -0.15, -0.25: the 3-seed Student-t CI of verdict
        # rule v2 (-0.324, -0.076) lies below 0 (with -0.2, -0.1, -0.3 it would include 0)
        "no-soo": _m(
            seeds, trap_rate=[0.5, 0.45, 0.55], luring_delta_trap=[0.1, 0.1, 0.1], **common
        ),
    }
    beh = {
        ("soo", "honest"): summarize([1.0, 1.0, 1.0]),
        ("soo", "deceptive"): summarize([2.0, 2.0, 2.0]),
    }
    clf = {"n_episodes": [10, 100], "accuracy": [0.5, 1.0]}
    rows = {r.split(" | ")[0].lstrip("| "): r for r in claims_table(ms, beh, clf).splitlines()[2:]}
    assert rows["deceptive baseline traps red more often than honest"].endswith("**yes** |")
    assert "+0.400" in rows["deceptive baseline traps red more often than honest"]
    lure = [r for k, r in rows.items() if k.startswith("…because blue lures")][0]
    assert lure.endswith("**yes** |")
    assert [r for k, r in rows.items() if k.startswith("deceptive blue visits")][0].endswith(
        "**not shown** (CI includes 0) |"
    )
    soo_trap = [r for k, r in rows.items() if k.startswith("SOO fine-tuning lowers trap rate")][0]
    assert "-0.200" in soo_trap and soo_trap.endswith("**yes** |")
    closer = [r for k, r in rows.items() if k.startswith("SOO behaviour closer")][0]
    assert closer.endswith("**yes** |")
    assert (
        "100% from 100 episodes"
        in rows["SOO classifier separates honest from deceptive with 100% accuracy"]
    )


def test_remaining_time_estimate_scales_with_measured_stages():
    from soo_marl import tasks
    from soo_marl.reproduce import preset_study
    from soo_marl.sweep.costs import stage_costs
    from soo_marl.sweep.run import remaining_seconds
    from soo_marl.sweep.spec import build_tasks

    study = preset_study("quick")
    costs = stage_costs(study, build_tasks(study, Path("/O")))
    est = {name: c["seconds"] for name, c in costs.items()}
    assert est["deceptive"] == est["honest"] > est["soo"] == est["nosoo"] > est["evaluate"] > 0
    assert est["deceptive"] == pytest.approx(6_000 * (tasks.TRAIN_A_S + 24 * tasks.TRAIN_B_S))
    pending = study.stages[1:]
    plain = sum(est[s.name] for s in pending)
    assert remaining_seconds(pending, est, {}) == pytest.approx(plain)  # nothing measured yet
    # the first stage took twice its estimate: the rest is expected to take twice theirs
    assert remaining_seconds(pending, est, {"deceptive": 2.0}) == pytest.approx(2 * plain)
    paper = preset_study("paper", seeds=4)
    assert paper.stage("deceptive").options["seeds"] == 4


def _train(seeds, episodes, radius, log_every, extra, baseline="deceptive"):
    return {"baseline": baseline, "seeds": seeds, "episodes": episodes,
            "sight-radius": radius, "log-every": log_every, "device": "auto", **extra}  # fmt: skip


#: The stage options of each preset (train options in this order; null preset values leave
#: an option out); paper and test as the three study files before `studies/reproduce.yaml`
#: had them, quick as re-chosen for issue 19, at 24 seeds since (docs/results/quick/seed_sets.md).
PRESET_OPTIONS = {
    "quick": (_train(24, 6000, 0.5, 120, {"noise-decay-episodes": 3000}), 1000, 100,
              "Baselines 6,000 episodes, fine-tuning 1,000 episodes", "evaluation 100 episodes"),
    "paper": (_train(8, 40000, 0.125, 800, {}), 10000, 500,
              "Baselines 40,000 episodes, fine-tuning 10,000 episodes", "evaluation 500 episodes"),
    "test": (_train(2, 20, 0.125, 10, {"batch-size": 64, "buffer-size": 5000}), 20, 3,
             "Baselines 20 episodes, fine-tuning 20 episodes", "evaluation 3 episodes"),
}  # fmt: skip


@pytest.mark.parametrize("preset", list(PRESET_OPTIONS))
def test_each_preset_resolves_to_its_stage_options(preset):
    """One study file, ``studies/reproduce.yaml``, holds the three presets; each resolves
    to exactly the stages and options of its former study file."""
    from soo_marl.reproduce import PRESETS, preset_study, study_file
    from soo_marl.sweep import load_study

    train, ft_episodes, eval_episodes, scale_start, scale_eval = PRESET_OPTIONS[preset]
    study = preset_study(preset)
    assert [(s.name, s.kind) for s in study.stages] == [
        ("deceptive", "train"), ("honest", "train"), ("soo", "finetune"), ("nosoo", "finetune"),
        ("evaluate", "evaluate"), ("classifier", "classify"), ("figures", "plot"),
        ("report", "report"),
    ]  # fmt: skip
    o = {s.name: s.options for s in study.stages}
    assert list(o["deceptive"].items()) == list(train.items())
    assert list(o["honest"].items()) == list({**train, "baseline": "honest"}.items())
    assert o["soo"] == {"episodes": ft_episodes, "soo": True, "device": "auto"}
    assert o["nosoo"] == {"episodes": ft_episodes, "soo": False, "device": "auto"}
    assert o["evaluate"] == {"episodes": eval_episodes, "device": "cpu"}
    assert o["classifier"] == {"pool-eval-seeds": True} and o["figures"] == {}
    radius = train["sight-radius"]
    assert o["report"]["title"] == (
        f"soo-marl reproduction (preset {preset}, {train['seeds']} seeds, sight radius {radius})"
    )
    assert o["report"]["scale"] == (
        f"{scale_start} (`--soo`: SOO weight 1, anchor 1; `--no-soo`: anchor only), "
        f"{scale_eval} × 8 evaluation seeds per trained seed."
    )
    assert {s.name: s.resources for s in study.stages if s.resources} == {
        n: {"cpus": 1.0} for n in ("deceptive", "honest", "soo", "nosoo")
    }
    assert study.stage("soo").refs == {"parent": "deceptive"}
    # the presets of reproduce are those of the file, the first the default
    raw = yaml.safe_load(study_file().read_text())
    assert tuple(raw["presets"]) == PRESETS
    assert load_study(study_file(), preset=preset).digest() == study.digest()
