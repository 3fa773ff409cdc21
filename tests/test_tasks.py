"""Typed tasks: a study stage and the command line build the same task, every task
round-trips through JSON, estimates read the typed fields (config files included), and
``python -m soo_marl.tasks`` runs a task from its JSON in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from soo_marl import tasks
from soo_marl.cli import main
from soo_marl.sweep import parse_study
from soo_marl.sweep.spec import KINDS, build_tasks

STUDY = {
    "name": "t",
    "stages": [
        {"name": "d", "kind": "train", "options": {"baseline": "deceptive", "seeds": 3,
                                                   "sight-radius": 0.5, "kernels": "reference"}},
        {"name": "h", "kind": "train", "options": {"baseline": "honest"}},
        {"name": "f", "kind": "finetune", "parent": "d",
         "options": {"soo": False, "fresh-buffer": True, "episodes": 100}},
        {"name": "e", "kind": "evaluate", "runs": ["d", "h", "f"], "cross_with": ["d"],
         "options": {"eval-seeds": "5 6", "episodes": 7}},
        {"name": "c", "kind": "classify", "deceptive": "d", "honest": "h",
         "options": {"pool-eval-seeds": True}},
        {"name": "p", "kind": "plot", "runs": ["d"], "classifier": "c",
         "options": {"formats": ["png", "svg"]}},
        {"name": "r", "kind": "report", "classifier": "c", "figures": "p",
         "runs": {"deceptive": "d", "honest": "h", "soo": "f", "no-soo": "f"}},
    ],
}  # fmt: skip


def built() -> dict[str, tasks.Task]:
    return build_tasks(parse_study(STUDY), Path("/O"))


def test_each_stage_becomes_its_typed_task():
    t = built()
    d, f, e = t["d"], t["f"], t["e"]
    assert isinstance(d, tasks.TrainTask) and d.run_dir == Path("/O/d")
    assert d.config.run.seeds == (0, 1, 2) and d.config.env.sight_radius == 0.5
    assert d.config.maddpg.kernels == "reference"
    assert isinstance(f, tasks.FinetuneTask) and f.parent == Path("/O/d")
    assert f.ft.soo_weight == 0 and f.ft.reuse_buffer is False and f.ft.episodes == 100
    assert isinstance(e, tasks.EvaluateTask) and e.eval_seeds == (5, 6) and e.episodes == 7
    assert e.runs == (Path("/O/d"), Path("/O/h"), Path("/O/f")) and e.cross_with == (Path("/O/d"),)
    assert t["c"].result_json == Path("/O/c/classifier_pooled.json")
    assert t["p"].classifier == Path("/O/c/classifier_pooled.json")
    assert t["p"].formats == ("png", "svg")
    assert t["r"].out == Path("/O/r.md") and t["r"].figures == Path("/O/p")
    assert t["r"].runs["no-soo"] == Path("/O/f")


def test_every_task_round_trips_through_json():
    for name, task in built().items():
        again = tasks.task_from_json(task.to_json())
        assert again == task and type(again) is type(task), name
    with pytest.raises(ValueError, match="not a task"):
        tasks.task_from_dict({"kind": "bake"})
    with pytest.raises(ValueError, match="unknown train option"):
        tasks.task_from_dict({**built()["d"].to_dict(), "epsiodes": 3})


def test_every_study_kind_is_a_task_and_the_command_line_builds_the_same_task(monkeypatch):
    """One path from an option to its use: ``soo-marl train`` with the options of stage
    ``d`` builds the task the study builds (the same dataclass, equal field by field)."""
    assert set(KINDS) == set(tasks.TASKS) - {"copy"}
    assert tasks.RUN_KINDS == tuple(
        k for k, v in tasks.TASKS.items() if v.makes_run and k != "copy"
    )
    seen: list[tasks.Task] = []
    monkeypatch.setattr(tasks.TrainTask, "run", lambda self, log=print: seen.append(self))
    monkeypatch.setattr(tasks.FinetuneTask, "run", lambda self, log=print: seen.append(self))
    monkeypatch.setattr("soo_marl.commands.report_run", lambda *a: None)
    CliRunner().invoke(
        main,
        [
            "train",
            "--baseline",
            "deceptive",
            "--seeds",
            "3",
            "--sight-radius",
            "0.5",
            "--kernels",
            "reference",
            "--run-dir",
            "/O/d",
            "--quiet",
        ],
    )
    CliRunner().invoke(main, ["finetune", "--from", "/O/d", "--no-soo", "--fresh-buffer",
                              "--episodes", "100", "--run-dir", "/O/f", "--quiet"])  # fmt: skip
    d, f = built()["d"], built()["f"]
    assert seen == [tasks.replace(d, progress=False), tasks.replace(f, progress=False)]


def test_one_check_per_value_with_the_same_message_everywhere(tmp_path):
    """A bad value is refused by its config dataclass, with its message, from the study
    file, the command line and ``reproduce`` alike."""
    bad = {**STUDY, "stages": [{"name": "d", "kind": "train", "options": {"kernels": "x"}}]}
    message = "unknown kernels 'x'; allowed: fast, reference"
    with pytest.raises(ValueError, match=message):
        parse_study(bad)
    for args in (
        ["train", "--baseline", "honest", "--kernels", "x"],
        ["reproduce", "--preset", "test", "--kernels", "x", "--out", str(tmp_path)],
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code != 0 and message in res.output, res.output  # fmt: skip


def test_estimates_read_the_typed_fields_and_config_files(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"run": {"seeds": [0, 1, 2, 3]}, "maddpg": {"buffer_size": 1000,
                                                                        "batch_size": 64},
                                   "env": {"max_cycles": 20}}))  # fmt: skip
    t = tasks.TrainTask.from_options({"config": str(cfg), "episodes": 500}, tmp_path / "r")
    est = t.estimate()
    assert est.seconds == pytest.approx(500 * (tasks.TRAIN_A_S + 4 * tasks.TRAIN_B_S))
    assert est.memory_gb == pytest.approx(1 + 2 * 4 * 1000 * 152 / 1e9)  # capped at 1,000
    assert est.cpu_seconds == 2 * est.seconds
    short = tasks.TrainTask.from_options({"config": str(cfg), "episodes": 10}, tmp_path / "r")
    assert short.estimate().memory_gb == pytest.approx(1 + 2 * 4 * 10 * 20 * 152 / 1e9)
    ft = tasks.FinetuneTask.from_options({"episodes": 10, "fresh-buffer": True}, tmp_path / "r")
    fresh = ft.estimate({tmp_path / "r": t.config})
    assert fresh.memory_gb == pytest.approx(1 + 2 * 4 * 10 * 20 * 152 / 1e9)
    assert fresh.seconds == pytest.approx(10 * (tasks.TRAIN_A_S + 4 * tasks.TRAIN_B_S) * 1.3)


def test_a_task_runs_from_its_json_in_its_own_process(tmp_path):
    """Exit 0 and the run's files for a finished task; 1 with the error as the last line
    for a task whose input is missing."""
    opts = {"baseline": "honest", "seeds": 1, "episodes": 10, "batch_size": 64,
            "buffer_size": 2000, "log_every": 10}  # fmt: skip
    task = tasks.TrainTask.from_options(opts, tmp_path / "run", progress=False)
    (tmp_path / "t.json").write_text(task.to_json())
    run = [sys.executable, "-m", "soo_marl.tasks", str(tmp_path / "t.json")]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "final_model.pt").exists()
    own_peak = float((tmp_path / "t.rss").read_text())  # the task's own peak RSS, in MB
    assert 50 < own_peak < 4000
    missing = tasks.EvaluateTask((tmp_path / "nothing",), episodes=1)
    (tmp_path / "t.json").write_text(missing.to_json())
    failed = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and failed.stderr.strip().splitlines()[-1].startswith("error:")
    assert json.loads(missing.to_json())["kind"] == "evaluate"


def test_a_stage_s_peak_memory_is_its_own_not_the_sweep_s(tmp_path):
    """A child's ``ru_maxrss`` also counts the parent's peak from before ``exec``; the
    local executor takes the peak the task wrote itself, and ``ru_maxrss`` only without."""
    import types

    from soo_marl.sweep import run as sweep_run

    runner = sweep_run._LocalRunner(1)
    (tmp_path / "a.rss").write_text("123.5")
    runner.rss_files[7] = tmp_path / "a.rss"
    usage = types.SimpleNamespace(ru_maxrss=1_500_000)  # KB: the sweep's 1.5 GB
    assert sweep_run._peak(usage, 7, runner) == 123.5
    assert sweep_run._peak(usage, 8, runner) == pytest.approx(1_500_000 / 1024)
