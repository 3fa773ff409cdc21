"""soo-marl sweep: study files are validated before anything runs; a study runs locally and
on a two-node Ray cluster with identical results; a killed Ray worker does not change them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from soo_marl import rundir, tasks
from soo_marl.cli import main
from soo_marl.sweep import StudyError, load_study, parse_study, run_study
from soo_marl.sweep.spec import build_tasks

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
TRAIN = {"baseline": "deceptive", "seeds": 2, "episodes": 20, "batch-size": 64,
         "buffer-size": 5000}  # fmt: skip


def study(*stages: dict, **top) -> dict:
    return {"name": "t", "stages": list(stages), **top}


def train(name: str = "dec", **options) -> dict:
    return {"name": name, "kind": "train", "options": {**TRAIN, **options}}


@pytest.mark.parametrize(
    "raw, message",
    [
        (study({"name": "x", "kind": "bake"}), "unknown stage kind 'bake'"),
        (study(train(epsiodes=3)), "unknown train option epsiodes"),
        (study(train(**{"run-dir": "x"})), "unknown train option run_dir"),
        (study(train(), {"name": "ft", "kind": "finetune", "parent": "nope"}),
         "parent names a missing stage 'nope'"),
        (study(train(), {"name": "ft", "kind": "finetune"}), "a finetune stage needs parent"),
        (study(train(), train()), "two stages write 'dec'"),
        (study(train(), {"name": "ev", "kind": "evaluate", "runs": ["ev2"]},
               {"name": "ev2", "kind": "finetune", "parent": "dec", "after": ["ev"]}),
         "cycle"),
        (study(train(), {"name": "c", "kind": "classify", "deceptive": "dec", "honest": "dec"}),
         "never evaluated"),
        (study(train(), {"name": "ft", "kind": "finetune", "parent": "ev"},
               {"name": "ev", "kind": "evaluate", "runs": ["dec"]}),
         "must name a train or stack stage"),
        (study(train(seeds="${n}")), "unknown parameter ${n}"),
        (study(train(), train("hon"), {"name": "ev", "kind": "evaluate", "runs": ["dec"],
                                       "cross_with": ["hon"]}),
         "cross_with names runs that are not evaluated"),
        (study(train(), {"name": "ev", "kind": "evaluate", "runs": {"d": "dec"}}),
         "runs is a stage name or a list of names"),
    ],
)  # fmt: skip
def test_invalid_studies_are_refused_before_anything_runs(tmp_path, raw, message):
    with pytest.raises(StudyError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_study(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "Error:" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_shipped_studies_are_valid_and_estimated():
    for path in sorted(STUDIES.glob("*.yaml")):
        s = load_study(path)
        assert s.stages and s.order()[0].deps() == []
    big = load_study(STUDIES / "seeds_1500.yaml")
    assert len(big.stages) == 150 * 3 + 1
    assert big.stage("deceptive-149").options["first-seed"] == 1490
    assert big.stage("classifier").refs["deceptive"][:2] == ["deceptive-0", "deceptive-1"]
    res = CliRunner().invoke(
        main, ["sweep", str(STUDIES / "seeds_1500.yaml"), "--out", "unused", "--dry-run"]
    )
    assert res.exit_code == 0 and "451 stages" in res.output and "CPU-hours" in res.output
    assert not Path("unused").exists()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "final_model.pt", weights_only=True)["model"]


def _same_results(a: Path, b: Path, runs: list[str]) -> None:
    for r in runs:
        wa, wb = _weights(a / r), _weights(b / r)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), r
        ma, mb = rundir.read_metrics(a / r), rundir.read_metrics(b / r)
        if ma is not None:
            for m in (ma, mb):
                m.pop("run")
                m["meta"].pop("parent", None), m["meta"].pop("parent_checkpoint", None)
                m["meta"].pop("parent_sha256", None)
            assert ma == mb, r


def test_tiny_study_runs_locally_and_resumes(tmp_path):
    out = tmp_path / "tiny"
    logs: list[str] = []
    outcomes = run_study(load_study(STUDIES / "tiny.yaml"), out, max_parallel=2, log=logs.append)
    assert [o.status for o in outcomes] == ["done"] * 5
    for r in ("deceptive", "honest", "soo", "nosoo"):
        assert rundir.read_metrics(out / r)["label"]
    assert set(json.loads((out / "timings.json").read_text())) == {
        "deceptive", "honest", "soo", "nosoo", "evaluate"
    }  # fmt: skip
    assert any("about" in line and "left" in line for line in logs)  # estimated time left
    again = run_study(load_study(STUDIES / "tiny.yaml"), out, log=lambda m: None)
    assert [o.status for o in again] == ["skipped"] * 5
    other = parse_study({**yaml.safe_load((STUDIES / "tiny.yaml").read_text()),
                         "parameters": {"x": 1}})  # fmt: skip
    with pytest.raises(StudyError, match="other settings"):
        run_study(other, out, log=lambda m: None)


def test_run_killed_before_its_first_checkpoint_is_started_again(tmp_path):
    """A stage whose process died after writing config.yaml but before any checkpoint is
    run again from scratch (``--resume`` on a directory without a checkpoint) and gives
    the same weights as an uninterrupted run."""
    raw = study(train())
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    run_study(parse_study(raw), clean, log=lambda m: None)
    run_study(parse_study(raw), broken, log=lambda m: None)
    for f in ("checkpoint.pt", "final_model.pt", "history.jsonl"):
        (broken / "dec" / f).unlink()
    outcomes = run_study(parse_study(raw), broken, log=lambda m: None)
    assert [o.status for o in outcomes] == ["done"]
    _same_results(clean, broken, ["dec"])


def test_pruning_waits_for_fine_tuning_and_evaluation(tmp_path):
    raw = study(
        train(),
        {"name": "ft", "kind": "finetune", "parent": "dec",
         "options": {"episodes": 10, "device": "cpu"}},
        {"name": "ev", "kind": "evaluate", "runs": ["dec", "ft"], "options": {"episodes": 2}},
    )  # fmt: skip
    logs: list[str] = []
    run_study(parse_study(raw), tmp_path, prune_buffers=True, log=logs.append)
    for r in ("dec", "ft"):
        assert rundir.load_checkpoint(tmp_path / r / rundir.CHECKPOINT).get("buffer_pruned")
        assert rundir.require_metrics(tmp_path / r)["saturation_replay"] is not None, r
    pruned = [i for i, line in enumerate(logs) if "pruned the replay buffer of dec" in line]
    evaluated = [i for i, line in enumerate(logs) if "evaluate ev: done" in line]
    assert pruned and evaluated and pruned[0] > evaluated[0]


def test_ray_executor_without_an_address_starts_its_own_instance(tmp_path, monkeypatch):
    """Not the cluster a stale /tmp/ray/ray_current_cluster names (Ray's default), which
    made a sweep wait forever after an earlier cluster died."""
    import types

    from soo_marl.sweep import run as sweep_run

    calls = []
    fake = types.SimpleNamespace(
        is_initialized=lambda: False,
        init=lambda **kw: calls.append(kw),
        remote=lambda f: f,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(sweep_run, "check_shared_storage", lambda out, ray: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    sweep_run._RayRunner(tmp_path, None)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    sweep_run._RayRunner(tmp_path, None)
    sweep_run._RayRunner(tmp_path, "auto")
    assert [c["address"] for c in calls] == ["local", "10.0.0.1:6379", "auto"]


def test_copy_from_stage_copies_a_trained_run_and_the_study_goes_on(tmp_path):
    """A train stage with ``copy_from`` copies the run's config and final model (nothing is
    trained, no checkpoint), a fine-tuning starts from the copy and both are evaluated;
    its buffer is never pruned (it has none), and a second invocation skips everything."""
    source = tmp_path / "trained"
    run_study(parse_study(study(train())), source, log=lambda m: None)
    raw = study(
        {"name": "copied", "kind": "train", "copy_from": "${src}"},
        {"name": "ft", "kind": "finetune", "parent": "copied",
         "options": {"episodes": 10, "device": "cpu"}},
        {"name": "ev", "kind": "evaluate", "runs": ["copied", "ft"], "options": {"episodes": 2}},
        parameters={"src": str(source / "dec")},
    )  # fmt: skip
    out = tmp_path / "out"
    logs: list[str] = []
    outcomes = run_study(parse_study(raw), out, prune_buffers=True, log=logs.append)
    assert [o.status for o in outcomes] == ["done"] * 3
    assert any(f"train copied: copied {source / 'dec'}" in line for line in logs)
    for name in (rundir.CONFIG, rundir.FINAL_MODEL):
        assert (out / "copied" / name).read_bytes() == (source / "dec" / name).read_bytes()
    assert not (out / "copied" / rundir.CHECKPOINT).exists()  # weights only
    assert not any("pruned the replay buffer of copied" in line for line in logs)
    assert "copied" not in json.loads((out / "timings.json").read_text())
    assert rundir.read_metrics(out / "copied")["label"] and rundir.read_metrics(out / "ft")
    again = run_study(parse_study(raw), out, log=lambda m: None)
    assert [o.status for o in again] == ["skipped"] * 3
    missing = parse_study(raw, overrides={"src": str(tmp_path / "nothing")})
    with pytest.raises(StudyError, match="no trained run there"):
        run_study(missing, tmp_path / "out2", log=lambda m: None)


def _most_at_once(monkeypatch, threads: list[int] | None = None) -> list[int]:
    """Record, at every stage start of the local executor, how many stages run (and, into
    ``threads``, the torch threads the stage was given)."""
    from soo_marl.sweep import run as sweep_run

    counts: list[int] = []
    start = sweep_run._LocalRunner.start

    def counting_start(self, stage, argv, res, out):
        start(self, stage, argv, res, out)
        counts.append(len(self.procs))
        if threads is not None:
            threads.append(res["cpus"])

    monkeypatch.setattr(sweep_run._LocalRunner, "start", counting_start)
    return counts


def test_stages_wait_for_memory_held_by_running_stages(tmp_path, monkeypatch):
    """Local executor: two independent trainings (1.0 GB each) run one after the other
    when 1.5 GB is available, the holding back logged once; the evaluation (2 GB, more
    than available) still starts once nothing else runs; with 100 GB the two trainings
    run side by side, in the same order of starts."""
    ev = {"name": "ev", "kind": "evaluate", "runs": ["a", "b"], "options": {"episodes": 2}}
    raw = study(train("a"), train("b"), ev)
    counts = _most_at_once(monkeypatch)
    logs: list[str] = []
    outcomes = run_study(parse_study(raw), tmp_path / "small", max_parallel=2, memory_gb=1.5,
                         log=logs.append)  # fmt: skip
    assert [o.status for o in outcomes] == ["done"] * 3
    assert counts == [1, 1, 1]  # never two at once
    held = [line for line in logs if line.startswith("holding back")]
    assert held == ["holding back [2/3] train b: needs 1.0 GB, 1.0 GB in use by running "
                    "stages, 1.5 GB available"]  # fmt: skip
    started = [line.split(":")[0] for line in logs if ": started" in line]
    assert started == ["[1/3] train a", "[2/3] train b", "[3/3] evaluate ev"]
    first_done = next(i for i, line in enumerate(logs) if "train a: done" in line)
    assert (
        logs.index(held[0])
        < first_done
        < next(i for i, line in enumerate(logs) if "train b: started" in line)
    )
    counts.clear()
    logs.clear()
    outcomes = run_study(parse_study(raw), tmp_path / "ample", max_parallel=2, memory_gb=100,
                         log=logs.append)  # fmt: skip
    assert [o.status for o in outcomes] == ["done"] * 3
    assert counts == [1, 2, 1]  # a and b side by side
    assert not any("holding back" in line for line in logs)
    assert [line.split(":")[0] for line in logs if ": started" in line] == started
    with pytest.raises(StudyError, match="--memory-gb must be positive"):
        run_study(parse_study(raw), tmp_path / "zero", memory_gb=0, log=lambda m: None)
    for command in ("sweep", "reproduce"):
        assert "--memory-gb" in CliRunner().invoke(main, [command, "--help"]).output


def test_memory_estimates_of_constructed_stages():
    """``Task.estimate`` (via ``costs.stage_costs``): 1 GB besides the replay buffers, each
    buffer min(capacity, episodes × 50) transitions of 152 bytes per seed, counted twice
    for a training (a copy while the checkpoint is written) and three times for a
    fine-tuning (the parent's checkpoint too); evaluation 2 GB; every other stage and a
    copied run 1 GB."""
    from soo_marl.sweep import costs

    s = parse_study(
        study(
            {"name": "paper", "kind": "train", "options": {"baseline": "deceptive"}},
            {"name": "ft", "kind": "finetune", "parent": "paper"},
            train("small"),  # 2 seeds × 20 episodes × 50 steps < the 5,000-transition buffer
            {"name": "capped", "kind": "train",
             "options": {"seed": [0, 1, 2], "episodes": 1000, "buffer-size": 10000}},
            {"name": "copy", "kind": "train", "copy_from": "somewhere"},
            {"name": "ft_copy", "kind": "finetune", "parent": "copy"},
            {"name": "ft_fresh", "kind": "finetune", "parent": "paper",
             "options": {"episodes": 2000, "fresh-buffer": True}},
            {"name": "ft_honest", "kind": "finetune", "parent": "paper",
             "options": {"reward": "honest"}},
            {"name": "ev", "kind": "evaluate", "runs": ["paper", "small"]},
            {"name": "c", "kind": "classify", "deceptive": "paper", "honest": "small"},
        )
    )  # fmt: skip
    expected = {
        "paper": 1 + 2 * 8 * 40_000 * 50 * 152 / 1e9 * (1e6 / 2e6),  # buffer full at 1e6
        "ft": 1 + 3 * 8 * 1e6 * 152 / 1e9,
        "small": 1 + 2 * 2 * 20 * 50 * 152 / 1e9,
        "capped": 1 + 2 * 3 * 10_000 * 152 / 1e9,
        "copy": 1.0,
        "ft_copy": 1 + 3 * 8 * 1e6 * 152 / 1e9,  # the copy says nothing: the defaults
        "ft_fresh": 1 + 2 * 8 * 2000 * 50 * 152 / 1e9,  # its own transitions only
        "ft_honest": 1 + 2 * 8 * 10_000 * 50 * 152 / 1e9,  # honest reward: empty buffer
        "ev": 2.0,
        "c": 1.0,
    }
    tasks = build_tasks(s, Path("/O"))
    got = {st.name: tasks[st.name].estimate(_known(tasks)).memory_gb for st in s.stages}
    assert got == pytest.approx(expected)
    assert got["paper"] == pytest.approx(3.432)  # spec's example: an 8-seed baseline
    res = costs.stage_costs(s, tasks)
    assert {k: v for k, v in res["paper"].items() if k != "seconds"} == {
        "cpus": 2, "gpus": 0.0, "memory_gb": 3.43
    }  # fmt: skip
    assert res["c"]["cpus"] == 1


def _known(tasks: dict) -> dict:
    """Run directory → config of the runs the tasks make (what ``stage_costs`` passes)."""
    known: dict = {}
    for t in tasks.values():
        config = t.run_config(known)
        if config is not None:
            known[t.output] = config
    return known


def test_a_copied_run_is_costed_with_its_own_seeds(tmp_path):
    """A ``copy_from`` parent whose config can be read gives its seed count to the
    fine-tunings that start from it (time and memory)."""
    from soo_marl.config import RunConfig, TrainConfig, save_yaml
    from soo_marl.sweep import costs

    run = tmp_path / "parents"
    run.mkdir()
    cfg = TrainConfig(run=RunConfig(seeds=tuple(range(32))))
    save_yaml({"meta": {"kind": "train"}, **cfg.to_dict()}, run / "config.yaml")
    s = parse_study(
        study(
            {"name": "p", "kind": "train", "copy_from": str(run)},
            {"name": "ft", "kind": "finetune", "parent": "p",
             "options": {"episodes": 1000, "fresh-buffer": True}},
        )
    )  # fmt: skip
    got = costs.stage_costs(s, build_tasks(s, tmp_path / "out"))
    assert got["ft"]["seconds"] == pytest.approx(
        1000 * (tasks.TRAIN_A_S + 32 * tasks.TRAIN_B_S) * tasks.FINETUNE_FACTOR
    )
    assert got["ft"]["memory_gb"] == pytest.approx(1 + 2 * 32 * 1000 * 50 * 152 / 1e9, abs=0.01)
    assert got["p"]["seconds"] == 0.0


try:
    import ray
except ImportError:  # the Ray tests skip, with the reason in the log (pytest -rs)
    ray = None
#: Only the tests that start a Ray cluster need Ray; every other test here runs without it.
needs_ray = pytest.mark.skipif(
    ray is None, reason="Ray is not installed (pip install 'soo-marl[ray]'): Ray executor untested"
)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 << 20}
    )
    c.add_node(num_cpus=1, object_store_memory=100 << 20)
    ray.init(address=c.address)
    yield c
    ray.shutdown()
    c.shutdown()


@needs_ray
@pytest.mark.slow
def test_tiny_study_on_a_two_node_ray_cluster_matches_local(tmp_path, cluster):
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_study(load_study(STUDIES / "tiny.yaml"), local, log=lambda m: None)
    outcomes = run_study(load_study(STUDIES / "tiny.yaml"), remote, executor="ray", log=print)
    assert [o.status for o in outcomes] == ["done"] * 5
    _same_results(local, remote, ["deceptive", "honest", "soo", "nosoo"])
    log = (remote / ".sweep" / "logs" / "deceptive.log").read_text()  # Ray stages log too
    assert "final model" in log or "episodes" in log, log[-500:]


@needs_ray
@pytest.mark.slow
def test_killing_the_ray_worker_of_a_training_stage_changes_nothing(tmp_path, cluster):
    raw = study(
        {**train(episodes=300), "options": {**TRAIN, "episodes": 300, "checkpoint-every": 40,
                                            "log-every": 20}, "resources": {"cpus": 1}},
    )  # fmt: skip
    local, remote = tmp_path / "local", tmp_path / "ray"
    run_study(parse_study(raw), local, log=lambda m: None)
    killed = []

    def kill_when_checkpointed() -> None:
        pid_file = remote / ".sweep" / "pids" / "dec"
        deadline = time.time() + 120
        while time.time() < deadline:
            hist = remote / "dec" / "history.jsonl"
            rows = len(hist.read_text().splitlines()) if hist.exists() else 0
            if pid_file.exists() and rows >= 3:  # past the checkpoint at episode 40
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                killed.append(rows)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_checkpointed)
    killer.start()
    outcomes = run_study(parse_study(raw), remote, executor="ray", log=print)
    killer.join()
    assert killed, "the worker was never killed"
    assert outcomes[0].status == "done"
    _same_results(local, remote, ["dec"])
    hist = [json.loads(x) for x in (remote / "dec" / "history.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in hist] == list(range(20, 301, 20))  # no duplicate rows
    assert np.isfinite([r["SPS"] for r in hist]).all()


@pytest.mark.parametrize(
    "cpus, free, starting, expected",
    [(2, 2, 2, 1), (2, 2, 1, 2), (1, 2, 1, 1), (2, 1, 1, 1), (2, 0, 1, 1), (4, 16, 2, 4),
     (2, 16, 3, 2), (8, 16, 3, 5), (2, 3, 2, 1)],
)  # fmt: skip
def test_share_threads(cpus, free, starting, expected):
    """A stage starting with others gets an even share of the idle cores, at most what it
    declares and at least one thread."""
    from soo_marl.sweep.run import share_threads

    assert share_threads(cpus, free, starting) == expected


def test_local_executor_spreads_stages_one_per_core(tmp_path, monkeypatch):
    """By default (2 usable cores) the two independent trainings run side by side with one
    thread each, and the evaluation, alone after them, with both cores (docs/performance.md:
    one process per core); the start lines say the threads. An explicit --max-parallel 1
    runs one stage at a time, each with its declared 2 threads."""
    from soo_marl.sweep import run as sweep_run

    monkeypatch.setattr(sweep_run, "usable_cores", lambda: 2)
    ev = {"name": "ev", "kind": "evaluate", "runs": ["a", "b"], "options": {"episodes": 2}}
    raw = study(train("a"), train("b"), ev)
    threads: list[int] = []
    counts = _most_at_once(monkeypatch, threads)
    logs: list[str] = []
    run_study(parse_study(raw), tmp_path / "spread", memory_gb=100, log=logs.append)
    assert counts == [1, 2, 1] and threads == [1, 1, 2]
    started = [line for line in logs if ": started" in line]
    assert [line.rsplit("; ", 1)[1] for line in started] == ["1 thread)", "1 thread)", "2 threads)"]
    counts.clear()
    threads.clear()
    run_study(parse_study(raw), tmp_path / "serial", max_parallel=1, log=lambda m: None)
    assert counts == [1, 1, 1] and threads == [2, 2, 2]


FT = {
    "name": "ft",
    "kind": "finetune",
    "parent": "dec",
    "options": {"episodes": 10, "device": "cpu"},
}


def test_a_run_stage_that_ends_without_its_final_model_is_never_fed_on(tmp_path, monkeypatch):
    """A training stage whose process exits 0 but leaves no final model (unfinished) fails,
    saying so, and the fine-tuning of it is not started; its options may not allow
    unfinished runs either."""
    from soo_marl.sweep import run as sweep_run

    spawn = sweep_run._subprocess

    def train_stops_early(task, name, threads, out):
        """A training stage's process that exits 0 without its final model."""
        if task.kind != "train":
            return spawn(task, name, threads, out)
        log_path = out / ".sweep" / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            return subprocess.Popen([sys.executable, "-c", "print('stopped early')"],
                                    stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    monkeypatch.setattr(sweep_run, "_subprocess", train_stops_early)
    logs: list[str] = []
    with pytest.raises(StudyError, match="stage 'dec' failed"):
        run_study(parse_study(study(train(), FT)), tmp_path, log=logs.append)
    failed = [line for line in logs if "train dec: FAILED" in line]
    assert failed and failed[0].endswith("its run is unfinished (no final_model.pt)"), logs
    assert not any("finetune ft: started" in line for line in logs)
    table = "\n".join(logs).splitlines()
    assert any(line.split()[:3] == ["ft", "finetune", "not"] for line in table)  # not run
    assert not (tmp_path / "ft").exists()
    bad = study(train(), {**FT, "options": {**FT["options"], "allow-unfinished": True}})
    with pytest.raises(StudyError, match="allow_unfinished is refused: a study never uses"):
        parse_study(bad)


def test_a_stage_whose_input_run_is_unfinished_is_not_started(tmp_path):
    """Where a stage's inputs are resolved: a run stage it depends on counts as finished
    only with its final model, whatever its recorded outcome says."""
    from soo_marl.sweep import run as sweep_run

    s = parse_study(study(train(), FT))
    logs: list[str] = []
    sched = sweep_run._new_schedule(s, tmp_path, logs.append)
    sched.outcomes["dec"] = sweep_run.Outcome("dec", "train", "done")  # but no final model
    sched.pending.remove(s.stage("dec"))
    started = []
    runner = types.SimpleNamespace(has_room=lambda: True, fits=lambda gb: True,
                                   start=lambda *a: started.append(a))  # fmt: skip
    sweep_run._start_ready(sched, runner)
    assert started == [] and sched.failed == "ft"
    assert sched.outcomes["ft"].status == "failed" and not sched.pending
    assert logs == ["[2/2] finetune ft: FAILED before it started: its input dec is unfinished "
                    "(no final_model.pt)"]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_with_status_130_and_it_resumes(tmp_path):
    """Ctrl-C (SIGINT to the sweep's process group, as a terminal sends it) while a training
    stage runs: the training checkpoints and stops, its fine-tuning is not started, the
    sweep prints its summary and one line on how to continue and exits with status 130;
    run again, it resumes the training and finishes the study."""
    options = {"seeds": 1, "episodes": 1000, "checkpoint-every": 40, "torch-threads": 1}
    raw = study(train(**options), FT)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "soo_marl.cli", "sweep", str(path), "--out", str(out)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )  # its own process group, as in a shell
    deadline = time.time() + 300
    while not (out / "dec" / rundir.CHECKPOINT).exists() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint written in 300 s"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "Aborted" not in stdout + stderr
    lines = stdout.strip().splitlines()
    assert lines[-1] == (
        "interrupted: stopped dec; run the same command again to continue (finished stages "
        "are skipped, an interrupted training or fine-tuning resumes from its checkpoint)"
    )
    status = {ln.split()[0]: ln.split()[2] for ln in lines if ln.startswith("  ") and
              ln.split()[0] in ("dec", "ft")}  # fmt: skip
    assert status == {"dec": "interrupted", "ft": "not"}  # "not run"
    episode = rundir.load_checkpoint(out / "dec" / rundir.CHECKPOINT)["episode"]
    assert 40 <= episode < 1000 and not rundir.has_model(out / "dec")
    assert not (out / "ft").exists()
    log = (out / ".sweep" / "logs" / "dec.log").read_text()
    assert f"interrupted at {episode} episodes of 1000 per seed" in log
    outcomes = run_study(parse_study(raw), out, log=lambda m: None)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert rundir.has_model(out / "dec") and rundir.has_model(out / "ft")


@pytest.mark.slow
def test_ctrl_c_that_reaches_only_the_stage_still_stops_the_study(tmp_path):
    """SIGINT to the stage's process alone (the race where the stage exits with status 130
    before the sweep sees Ctrl-C, or never does): the stage is reported interrupted, not
    failed, and the sweep exits with status 130 without starting the fine-tuning."""
    options = {"seeds": 1, "episodes": 1000, "checkpoint-every": 40, "torch-threads": 1}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study(train(**options), FT)))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "soo_marl.cli", "sweep", str(path), "--out", str(out)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while not (out / "dec" / rundir.CHECKPOINT).exists() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint written in 300 s"
        time.sleep(0.01)
    task = str(out / ".sweep" / "tasks" / "dec.json")
    pids = [
        int(d.name)
        for d in Path("/proc").iterdir()
        if d.name.isdigit() and task.encode() in _cmdline(d)
    ]
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "dec: interrupted" in stdout and "FAILED" not in stdout
    assert stdout.strip().splitlines()[-1].startswith("interrupted: stopped dec; ")
    assert not (out / "ft").exists()


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_closed_gate_keeps_the_stages_after_it_from_running(tmp_path):
    """A gate stage's verdict (``gate.json``) decides whether the stages ``after`` it run:
    closed, they and the stages after them are "gated" and nothing is written for them;
    open, they run."""
    src = ROOT / "docs" / "results" / "models" / "quick8_r0.5"
    raw = study(
        {"name": "d", "kind": "train", "copy_from": str(src / "deceptive")},
        {"name": "h", "kind": "train", "copy_from": str(src / "honest")},
        {"name": "ev", "kind": "evaluate", "runs": ["d", "h"], "options": {"episodes": 1}},
        {"name": "gate", "kind": "gate", "runs": {"deceptive": "d", "honest": "h"},
         "options": {"rule": "variant"}},
        {**train("follow", episodes=10, seeds=1), "after": ["gate"]},
        {"name": "ev2", "kind": "evaluate", "runs": ["follow"], "options": {"episodes": 1}},
    )  # fmt: skip
    for passes, expected in ((False, "gated"), (True, "done")):
        out = tmp_path / str(passes)
        for name in ("ev", "gate"):  # finished earlier: the gate's verdict is on disk
            (out / ".sweep" / "done").mkdir(parents=True, exist_ok=True)
            (out / ".sweep" / "done" / name).write_text("{}")
        (out / "gate").mkdir(parents=True)
        (out / "gate" / "gate.json").write_text(json.dumps({"passes": passes}))
        logs: list[str] = []
        outcomes = {o.name: o.status for o in run_study(parse_study(raw), out, log=logs.append)}
        assert outcomes["follow"] == outcomes["ev2"] == expected, logs
        assert (out / "follow" / "final_model.pt").exists() == passes
        assert any("ev2: not run, gate gate closed" in line for line in logs) != passes
    with pytest.raises(StudyError, match="unknown gate rule 'nope'"):
        parse_study(
            {
                **raw,
                "stages": [*raw["stages"][:3], {**raw["stages"][3], "options": {"rule": "nope"}}],
            }
        )
