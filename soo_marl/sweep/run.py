"""Run a study: its stages in dependency order, locally or as Ray tasks, resumably.

Every stage is a typed task (:mod:`soo_marl.tasks`) built from the study's options and
the paths the sweep chooses (``OUT/<stage name>``), run from its JSON in a process of its
own (``python -m soo_marl.tasks``) or in a Ray worker. Finished stages are skipped; an interrupted
training or fine-tuning stage resumes from its checkpoint (exactly); a failed Ray task is
retried. ``OUT/study.yaml`` records the study; running a different one into the same
``OUT`` is refused. Per stage, ``OUT/timings.json`` and ``OUT/memory.json`` record the
wall seconds and peak resident memory, ``OUT/.sweep/logs/<stage>.log`` its output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from soo_marl import rundir
from soo_marl.progress import fmt_duration
from soo_marl.sweep.costs import stage_costs
from soo_marl.sweep.spec import KINDS, Stage, Study, StudyError, build_tasks, stage_output
from soo_marl.tasks import INTERRUPTED, GateTask, Task, task_from_json

Log = Callable[[str], None]
EXECUTORS = ("local", "ray")
#: Retries of a failed Ray task (a killed worker or an error).
RAY_RETRIES = 3


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a study: the running stages stopped as on their own Ctrl-C (a
    training or fine-tuning checkpoints first); its message says how to continue."""


@dataclass
class Outcome:
    """What happened to one stage in this invocation."""

    name: str
    kind: str
    #: "done", "skipped" (finished earlier), "failed", "interrupted" (by Ctrl-C) or
    #: "gated" (not run: a gate before it did not pass, or a stage it reads was gated)
    status: str
    seconds: float = 0.0
    peak_rss_mb: float | None = None


# --------------------------------------------------------------------------- paths and args


def stage_task(tasks: dict[str, Task], stage: Stage) -> Task:
    """The task that runs ``stage``: a run stage whose directory an earlier attempt
    started is resumed."""
    task = tasks[stage.name]
    if task.makes_run and _started(task.output):
        task = replace(task, resume=True)  # type: ignore[type-var]
    return task


def done_marker(stage: Stage, out: Path) -> Path:
    """The file that says a stage finished (run stages: their final model)."""
    if KINDS[stage.kind].makes_run:
        return stage_output(stage, out) / rundir.FINAL_MODEL
    return out / ".sweep" / "done" / stage.name


def is_done(stage: Stage, out: Path) -> bool:
    """The stage finished in an earlier invocation."""
    return done_marker(stage, out).exists()


# --------------------------------------------------------------------------- executing one stage


def execute_in_process(task: Task, threads: int) -> None:
    """Run one stage's task in this process with ``threads`` torch threads (how a Ray
    task runs it); raises on failure, also when Ctrl-C stopped it before the end."""
    import torch

    torch.set_num_threads(threads)
    if not task.finished(task.run()):
        raise RuntimeError(f"{task.kind} {task.output} was interrupted before it finished")


def _ray_stage(
    task_json: str, threads: int, pid_file: str, log_file: str
) -> tuple[float, float | None]:
    """Body of the Ray task of one stage, its output appended to ``log_file``; returns its
    wall time once running (not the time it waited for resources) and its peak resident
    memory (MB)."""
    from soo_marl.allocator import peak_rss_mb, reset_peak_rss

    t0 = time.perf_counter()
    Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
    Path(pid_file).write_text(str(os.getpid()))
    reset_peak_rss()
    task = task_from_json(task_json)
    if task.makes_run and _started(task.output):  # a retry after a killed worker
        task = replace(task, resume=True)  # type: ignore[type-var]
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as log, redirect_stdout(log), redirect_stderr(log):
        execute_in_process(task, threads)
    return time.perf_counter() - t0, peak_rss_mb()


def _started(run_dir: Path) -> bool:
    """Whether an earlier attempt created ``run_dir`` (its config.yaml, with or without a
    checkpoint): it is then continued with ``--resume``, which restarts a run killed before
    its first checkpoint from scratch and refuses one with other settings."""
    return (run_dir / rundir.CONFIG).exists() or (run_dir / rundir.CHECKPOINT).exists()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def share_threads(cpus: int, free: int, starting: int) -> int:
    """Torch threads for one of ``starting`` stages that start together on ``free`` idle
    cores, each declaring ``cpus``: an even share of the free cores, at most ``cpus``, at
    least 1."""
    return max(1, min(cpus, free // max(starting, 1)))


def _subprocess(task: Task, name: str, threads: int, out: Path) -> subprocess.Popen:
    """Start ``task`` in a process of its own from its JSON (``OUT/.sweep/tasks``), its
    output appended to the stage's log."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    task_file = out / ".sweep" / "tasks" / f"{name}.json"
    log_path = out / ".sweep" / "logs" / f"{name}.log"
    for path in (task_file, log_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    task_file.write_text(task.to_json())
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "soo_marl.tasks", str(task_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


# --------------------------------------------------------------------------- the study


def check_settings(study: Study, out: Path) -> None:
    """Refuse an ``out`` that holds another study (or the same one with other settings)."""
    path = out / "study.yaml"
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    if old.get("digest") == study.digest():
        return
    diffs = []
    for k, v in study.parameters.items():
        if (old.get("parameters") or {}).get(k) != v:
            diffs.append(f"{k} {(old.get('parameters') or {}).get(k)!r} there, {v!r} now")
    what = "; ".join(diffs) or "its stages differ"
    raise StudyError(
        f"{out} holds a study {old.get('name')!r} with other settings ({what}); "
        "use another --out or the same study and settings"
    )


def write_study(study: Study, out: Path) -> None:
    """Record the study (name, parameters, digest, stages) in ``out/study.yaml``."""
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "name": study.name,
        "digest": study.digest(),
        "parameters": study.parameters,
        "stages": [s.spec() for s in study.stages],
    }
    (out / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def plan_text(study: Study, out: Path) -> str:
    """The stage graph, what is done, and the estimated time and CPU-hours."""
    lines = [f"study {study.name!r}: {len(study.stages)} stages -> {out}"]
    total_wall = total_cpu = 0.0
    costs = stage_costs(study, build_tasks(study, out))
    for i, s in enumerate(study.order(), 1):
        res = costs[s.name]
        est = res["seconds"]
        total_wall += est
        total_cpu += est * res["cpus"]
        names = s.deps()
        deps = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
        deps = deps or "-"
        state = "done" if is_done(s, out) else f"~{fmt_duration(est)}"
        lines.append(
            f"  [{i}/{len(study.stages)}] {s.kind:<8} {s.name:<28} needs: {deps:<30} "
            f"{res['cpus']} cpu {res['memory_gb']:.1f} GB  {state}"
        )
    lines.append(
        f"estimate: {total_cpu / 3600:.1f} CPU-hours ({fmt_duration(total_wall)} one stage at "
        "a time on a 2-core machine; from measured per-stage costs, docs/performance.md)"
    )
    return "\n".join(lines)


def _json_update(path: Path, key: str, value: Any) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1))


def run_study(
    study: Study,
    out: str | Path,
    executor: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    dry_run: bool = False,
    log: Log = print,
    on_start: Callable[[Study, Path], None] | None = None,
    stage_progress: bool = True,
    prune_buffers: bool = False,
    memory_gb: float | None = None,
) -> list[Outcome]:
    """Run every unfinished stage of ``study`` into ``out``; returns what happened to each.

    ``executor`` "local" runs at most ``max_parallel`` stages at a time (default: one per
    usable core) as subprocesses, each with an even share of the idle cores as its torch
    threads, at most its declared ``cpus`` (``share_threads``);
    "ray" submits each stage as a Ray task with its resources declared (joining the
    cluster at ``address`` or ``RAY_ADDRESS``, else starting a local Ray instance).
    ``on_start`` is called once before the first stage runs (e.g. to record provenance);
    with ``stage_progress`` the latest progress line of each running stage's log is
    printed every minute (local executor). ``prune_buffers`` drops a run's replay buffer
    from its checkpoint as soon as the run and every fine-tuning that starts from it are
    done (``soo-marl prune``), which frees hundreds of MB per run.

    The local executor also keeps the declared memory (``costs.stage_costs``) of the stages
    running at once within ``memory_gb`` (default: the memory available when the call
    starts, ``allocator.memory_available``; no limit where that is unknown): a ready stage
    that would exceed it waits until running stages finish, and starts anyway when nothing
    else runs (its own command refuses it if it cannot fit).
    """
    max_parallel = usable_cores() if max_parallel is None else max_parallel
    _check_executor(executor, max_parallel, memory_gb)
    out = Path(out)
    check_settings(study, out)
    if dry_run:
        log(plan_text(study, out))
        return []
    write_study(study, out)
    sched = _new_schedule(study, out, log)
    if sched.pending and on_start is not None:
        on_start(study, out)
    progress = log if stage_progress else None
    runner = _make_runner(executor, max_parallel, address, out, progress, memory_gb)
    _start_clock(sched)
    try:
        _drive(sched, runner, prune_buffers)
    except KeyboardInterrupt:
        _stop(sched, runner)
    finally:
        runner.close()
    return _report(sched)


@dataclass
class _Schedule:
    """The bookkeeping of one ``run_study`` invocation: order, outcomes, pending stages."""

    study: Study
    out: Path
    log: Log
    order: list[Stage]
    outcomes: dict[str, Outcome]
    pending: list[Stage]
    index: dict[str, int]
    #: Each stage's task and its costs (``stage_costs``).
    tasks: dict[str, Task] = field(default_factory=dict)
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)
    t_start: float = 0.0
    failed: str | None = None
    held: set[str] = field(default_factory=set)

    def tag(self, stage: Stage) -> str:
        """The log prefix of ``stage``: its position in the order, kind and name."""
        return f"[{self.index[stage.name]}/{len(self.order)}] {stage.kind} {stage.name}"


def _check_executor(executor: str, max_parallel: int, memory_gb: float | None = None) -> None:
    """Refuse an unknown executor, a ``max_parallel`` below 1 or a memory budget not above 0."""
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if max_parallel < 1:
        raise StudyError("--max-parallel must be at least 1")
    if memory_gb is not None and not memory_gb > 0:
        raise StudyError("--memory-gb must be positive")


def _new_schedule(study: Study, out: Path, log: Log) -> _Schedule:
    """The stages in dependency order, those finished earlier marked skipped, the rest pending."""
    order = study.order()
    outcomes = {s.name: Outcome(s.name, s.kind, "skipped") for s in order if is_done(s, out)}
    pending = [s for s in order if s.name not in outcomes]
    index = {s.name: i for i, s in enumerate(order, 1)}
    tasks = build_tasks(study, out)
    costs = stage_costs(study, tasks)
    return _Schedule(study, out, log, order, outcomes, pending, index, tasks, costs)


def _make_runner(
    executor: str,
    max_parallel: int,
    address: str | None,
    out: Path,
    progress: Log | None,
    memory_gb: float | None = None,
) -> _LocalRunner | _RayRunner:
    """The executor's runner: local subprocesses (echoing progress to ``progress``, within
    ``memory_gb``, by default the memory available now) or Ray."""
    if executor == "local":
        if memory_gb is None:
            from soo_marl.allocator import memory_available

            found = memory_available()
            memory_gb = found[0] / 1e9 if found is not None else None
        return _LocalRunner(max_parallel, progress, memory_gb=memory_gb)
    return _RayRunner(out, address)


def _start_clock(sched: _Schedule) -> None:
    """Estimate every stage, start the elapsed-time clock and log the skipped stages."""
    sched.estimates = {name: c["seconds"] for name, c in sched.costs.items()}
    sched.t_start = time.perf_counter()
    for s in sched.order:
        if s.name in sched.outcomes:
            sched.log(f"{sched.tag(s)}: done earlier, skipped")


def _drive(sched: _Schedule, runner: _LocalRunner | _RayRunner, prune: bool) -> None:
    """Start stages as their dependencies finish and record each outcome, until none can run."""
    while sched.pending or runner.running():
        _start_ready(sched, runner)
        finished = runner.wait_any()
        if finished is None:
            if sched.pending and not runner.running():
                break  # dependencies failed
            continue
        if finished[0].name in getattr(runner, "interrupted", ()):
            # Ctrl-C reached the stage (exit status 130) before, or without, this process
            # seeing it: stop the study as Ctrl-C here does
            _mark_interrupted(sched, finished)
            raise KeyboardInterrupt
        _record_outcome(sched, finished, prune)


def _start_ready(sched: _Schedule, runner: _LocalRunner | _RayRunner) -> None:
    """Start (or copy) each pending stage whose dependencies succeeded, in order, while
    there is room; a stage whose memory does not fit beside the running ones holds back
    itself and every later one until running stages finish."""
    for s in list(sched.pending):
        if sched.failed or not runner.has_room():
            break
        if not _deps_ok(sched, s):
            continue
        closed = _closed_gate(sched, s)
        if closed:
            sched.outcomes[s.name] = Outcome(s.name, s.kind, "gated")
            sched.log(f"{sched.tag(s)}: not run, gate {closed} closed")
            sched.pending.remove(s)
            continue
        unfinished = _unfinished_inputs(sched, s)
        if unfinished:
            sched.failed = s.name
            sched.outcomes[s.name] = Outcome(s.name, s.kind, "failed")
            sched.log(
                f"{sched.tag(s)}: FAILED before it started: its input "
                f"{', '.join(unfinished)} is unfinished (no {rundir.FINAL_MODEL})"
            )
            sched.pending.remove(s)
            break
        if s.copy_from is not None:
            _copy_stage(sched, s)
        else:
            need = sched.costs[s.name]["memory_gb"]
            if not runner.fits(need):
                _hold_back(sched, runner, s, need)
                break
            later = sched.pending[sched.pending.index(s) :]
            starting = sum(r.copy_from is None and _deps_ok(sched, r) for r in later)
            _start_stage(sched, runner, s, starting)
        sched.pending.remove(s)


def _deps_ok(sched: _Schedule, s: Stage) -> bool:
    """Every stage ``s`` depends on has finished without failing."""
    return all(d in sched.outcomes and sched.outcomes[d].status != "failed" for d in s.deps())


def _closed_gate(sched: _Schedule, s: Stage) -> str | None:
    """The gate stage that keeps ``s`` from running: a gate ``s`` depends on that did not
    pass, or the gate that kept a stage whose output ``s`` reads (a reference, not a mere
    ``after``) from running; None if none."""
    for d in s.deps():
        task = sched.tasks[d]
        if isinstance(task, GateTask) and not task.passed():
            return d
        if sched.outcomes[d].status == "gated" and d in s.ref_names():
            return _closed_gate(sched, sched.study.stage(d)) or d
    return None


def _unfinished_inputs(sched: _Schedule, s: Stage) -> list[str]:
    """The run stages ``s`` depends on whose run is unfinished (no final model): a study
    never feeds one to the next stage, whatever its outcome says (a gated one that ``s``
    only comes after is not an input)."""
    deps = [sched.study.stage(d) for d in s.deps() if sched.outcomes[d].status != "gated"]
    return [d.name for d in deps if KINDS[d.kind].makes_run and not is_done(d, sched.out)]


def _hold_back(sched: _Schedule, runner: _LocalRunner | _RayRunner, s: Stage, need: float) -> None:
    """Log, the first time only, that ``s`` waits for memory held by running stages."""
    if s.name in sched.held:
        return
    sched.held.add(s.name)
    sched.log(
        f"holding back {sched.tag(s)}: needs {need:.1f} GB, {runner.memory_in_use():.1f} GB "
        f"in use by running stages, {runner.memory_gb:.1f} GB available"
    )


def _copy_stage(sched: _Schedule, s: Stage) -> None:
    """Finish a ``copy_from`` train stage by copying the trained run into its directory."""
    assert s.copy_from is not None  # called for copy_from stages only
    try:
        sched.tasks[s.name].run()
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    sched.outcomes[s.name] = Outcome(s.name, s.kind, "done")
    sched.log(f"[{sched.index[s.name]}/{len(sched.order)}] train {s.name}: copied {s.copy_from}")


def _start_stage(
    sched: _Schedule, runner: _LocalRunner | _RayRunner, s: Stage, starting: int = 1
) -> None:
    """Log the start of ``s`` with its threads and the elapsed and estimated remaining
    time, and start it (``starting``: the ready stages that start with it, itself included)."""
    remaining = remaining_seconds(sched.pending, sched.estimates, sched.measured)
    left = f", about {fmt_duration(remaining)} left" if remaining else ""
    res = {k: v for k, v in sched.costs[s.name].items() if k != "seconds"}
    threads = runner.threads_for(res["cpus"], starting)
    sched.log(
        f"{sched.tag(s)}: {runner.verb} "
        f"(elapsed {fmt_duration(time.perf_counter() - sched.t_start)}{left}; "
        f"{threads} thread{'s' if threads > 1 else ''})"
    )
    runner.start(s, stage_task(sched.tasks, s), {**res, "cpus": threads}, sched.out)


def _record_outcome(
    sched: _Schedule, finished: tuple[Stage, bool, float, float | None], prune: bool
) -> None:
    """Record a stage the runner reports finished: done (with its costs) or failed."""
    stage, ok, seconds, rss = finished
    tag = sched.tag(stage)
    unfinished = ok and KINDS[stage.kind].makes_run and not is_done(stage, sched.out)
    ok = ok and not unfinished  # a run stage is done only with its final model
    sched.outcomes[stage.name] = Outcome(
        stage.name, stage.kind, "done" if ok else "failed", seconds, rss
    )
    if ok:
        sched.measured[stage.name] = seconds / max(sched.estimates[stage.name], 1e-9)
        sched.log(f"{tag}: done in {fmt_duration(seconds)}")
        _record_done(sched.study, stage, sched.out, sched.outcomes, prune, sched.log)
    else:
        sched.failed = stage.name
        log_file = sched.out / ".sweep" / "logs" / f"{stage.name}.log"
        why = _last_line(log_file)
        if unfinished:
            why = f"its run is unfinished (no {rundir.FINAL_MODEL})"
        sched.log(f"{tag}: FAILED (see {log_file})" + (f": {why}" if why else ""))


def _last_line(path: Path) -> str:
    """The last non-empty line of a stage's log (its error, for a command that fails
    with one line), or "" without one."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((ln for ln in reversed(lines) if ln), "")


def _mark_interrupted(sched: _Schedule, finished: tuple[Stage, bool, float, float | None]) -> None:
    """Record a stage that Ctrl-C stopped before it finished."""
    stage, _, seconds, rss = finished
    sched.outcomes[stage.name] = Outcome(stage.name, stage.kind, "interrupted", seconds, rss)
    sched.log(f"{sched.tag(stage)}: interrupted")


def _stop(sched: _Schedule, runner: _LocalRunner | _RayRunner) -> None:
    """After Ctrl-C: stop the running stages as their own Ctrl-C does (a training or
    fine-tuning finishes its batch and checkpoints; :meth:`_LocalRunner.interrupt`), record
    each (done if it finished anyway, else interrupted), log the summary table and raise
    :class:`StudyInterrupted`. A second Ctrl-C stops at once."""
    for stage, ok, seconds, rss in runner.interrupt():
        if ok and (not KINDS[stage.kind].makes_run or is_done(stage, sched.out)):
            _record_outcome(sched, (stage, ok, seconds, rss), prune=False)
        else:
            _mark_interrupted(sched, (stage, ok, seconds, rss))
    stopped = [s.name for s in sched.order if sched.outcomes.get(s.name, None) is not None
               and sched.outcomes[s.name].status == "interrupted"]  # fmt: skip
    result = [sched.outcomes.get(s.name, Outcome(s.name, s.kind, "not run")) for s in sched.order]
    sched.log(summary_table(result))
    what = f"stopped {', '.join(stopped)}; " if stopped else ""
    raise StudyInterrupted(
        f"interrupted: {what}run the same command again to continue (finished stages are "
        "skipped, an interrupted training or fine-tuning resumes from its checkpoint)"
    )


def _report(sched: _Schedule) -> list[Outcome]:
    """Log the summary table and return every stage's outcome; raise if a stage failed."""
    result = [sched.outcomes.get(s.name, Outcome(s.name, s.kind, "not run")) for s in sched.order]
    sched.log(summary_table(result))
    if sched.failed:
        raise StudyError(f"stage {sched.failed!r} failed; the finished stages are kept (run again)")
    return result


def _record_done(
    study: Study, stage: Stage, out: Path, outcomes: dict[str, Outcome], prune: bool, log: Log
) -> None:
    """After ``stage`` succeeded: its done marker (stages without a run directory), buffer
    pruning of runs nothing needs any more, and its wall time and peak memory in
    ``timings.json`` / ``memory.json``."""
    outcome = outcomes[stage.name]
    if not KINDS[stage.kind].makes_run:
        marker = done_marker(stage, out)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"seconds": outcome.seconds}))
    if prune:
        _prune_finished(study, out, outcomes, log)
    _json_update(out / "timings.json", stage.name, outcome.seconds)
    _json_update(out / "memory.json", stage.name, outcome.peak_rss_mb)


def _prune_finished(study: Study, out: Path, outcomes: dict[str, Outcome], log: Log) -> None:
    """Prune the buffers that no unfinished stage needs any more: a run's buffer goes once
    the run and every stage that reads it (its fine-tunings and its evaluation, which
    measures actor saturation on the replayed observations) are finished."""
    finished = {n for n, o in outcomes.items() if o.status in ("done", "skipped")}
    for s in study.stages:
        if not KINDS[s.kind].makes_run or s.name not in finished or s.copy_from is not None:
            continue
        readers = [c for c in study.stages if KINDS[c.kind].reads_buffer and s.name in c.deps()]
        if all(c.name in finished for c in readers):
            saved = rundir.prune_buffer(stage_output(s, out))
            if saved:
                log(f"    pruned the replay buffer of {s.name}: {saved / 1e6:,.0f} MB freed")


def remaining_seconds(pending: list[Stage], estimates: dict[str, float], measured: dict) -> float:
    """Estimated seconds left for the ``pending`` stages: their estimates, scaled by the
    mean ratio of measured to estimated time of the stages done so far (``measured``)."""
    scale = sum(measured.values()) / len(measured) if measured else 1.0
    return sum(estimates[s.name] for s in pending) * scale


def summary_table(outcomes: list[Outcome]) -> str:
    """One line per stage: status, wall time, peak memory."""
    lines = [
        "stage summary:",
        f"  {'stage':<30} {'kind':<9} {'status':<11} {'time':>9} {'peak RSS':>9}",
    ]
    for o in outcomes:
        rss = f"{o.peak_rss_mb:.0f} MB" if o.peak_rss_mb else "-"
        took = fmt_duration(o.seconds) if o.status == "done" else "-"
        lines.append(f"  {o.name:<30} {o.kind:<9} {o.status:<11} {took:>9} {rss:>9}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- executors


class _LocalRunner:
    """Stages as subprocesses, at most ``limit`` at a time and, with ``memory_gb``, their
    declared memory within it (a stage alone may exceed it); with ``log``, the newest line
    of each running stage's log file is passed on every ``every_s`` seconds."""

    verb = "started"

    def __init__(
        self,
        limit: int,
        log: Log | None = None,
        every_s: float = 60.0,
        memory_gb: float | None = None,
    ) -> None:
        self.limit, self.log, self.every_s, self.memory_gb = limit, log, every_s, memory_gb
        self.cores = usable_cores()
        #: Stages that exited with Ctrl-C's status (:data:`soo_marl.tasks.INTERRUPTED`).
        self.interrupted: set[str] = set()
        self.procs: dict[int, tuple[Stage, subprocess.Popen, float, Path]] = {}
        self.memory: dict[int, float] = {}  # pid -> declared memory_gb of its stage
        self.threads: dict[int, int] = {}  # pid -> torch threads it was given
        self.rss_files: dict[int, Path] = {}  # pid -> where its task writes its peak RSS
        self._last_echo = time.perf_counter()
        self._echoed: dict[str, str] = {}

    def has_room(self) -> bool:
        return len(self.procs) < self.limit

    def threads_for(self, cpus: int, starting: int) -> int:
        """Threads for a stage that declares ``cpus`` and starts with ``starting`` - 1
        others: at most ``cpus`` and an even share of the cores the running stages leave
        free, at least 1 (docs/performance.md: one process per core, 1 thread each)."""
        free = self.cores - sum(self.threads.values())
        return share_threads(cpus, free, min(starting, self.limit - len(self.procs)))

    def memory_in_use(self) -> float:
        """The declared memory (GB) of the running stages."""
        return sum(self.memory.values())

    def fits(self, need_gb: float) -> bool:
        """Whether a stage declaring ``need_gb`` may start now: nothing else runs, or no
        budget is known, or the running stages' memory plus its own stays within it."""
        if self.memory_gb is None or not self.procs:
            return True
        return self.memory_in_use() + need_gb <= self.memory_gb

    def running(self) -> bool:
        return bool(self.procs)

    def start(self, stage: Stage, task: Task, res: dict, out: Path) -> None:
        log_path = out / ".sweep" / "logs" / f"{stage.name}.log"
        proc = _subprocess(task, stage.name, res["cpus"], out)
        self.rss_files[proc.pid] = out / ".sweep" / "tasks" / f"{stage.name}.rss"
        self.procs[proc.pid] = (stage, proc, time.perf_counter(), log_path)
        self.memory[proc.pid] = float(res["memory_gb"])
        self.threads[proc.pid] = int(res["cpus"])

    def wait_any(self) -> tuple[Stage, bool, float, float | None] | None:
        while self.procs:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.2)
                self._echo()
                continue
            if pid not in self.procs:
                continue
            stage, proc, t0, _ = self.procs.pop(pid)
            self.memory.pop(pid, None)
            self.threads.pop(pid, None)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode == INTERRUPTED:
                self.interrupted.add(stage.name)
            return stage, proc.returncode == 0, time.perf_counter() - t0, _peak(usage, pid, self)
        return None

    def _echo(self) -> None:
        if self.log is None or time.perf_counter() - self._last_echo < self.every_s:
            return
        self._last_echo = time.perf_counter()
        for stage, _, _, path in self.procs.values():
            try:
                lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
            except OSError:
                continue
            if lines and self._echoed.get(stage.name) != lines[-1]:
                self._echoed[stage.name] = lines[-1]
                self.log(f"    {stage.name}: {lines[-1].strip()}")

    def interrupt(self) -> list[tuple[Stage, bool, float, float | None]]:
        """Ctrl-C: SIGINT to every running stage (a training or fine-tuning finishes its
        batch, checkpoints and exits with status 130; a stage that Ctrl-C in the terminal
        already reached only sees it again), then wait for them all; returns each as
        :meth:`wait_any` does."""
        for pid in self.procs:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:  # already gone
                pass
        ended = []
        while self.procs:
            try:
                finished = self.wait_any()
            except ChildProcessError:  # one was reaped just as Ctrl-C came: none left
                break
            if finished is not None:
                ended.append(finished)
        return ended

    def close(self) -> None:
        for _, proc, _, _ in self.procs.values():
            proc.terminate()


def _peak(usage: Any, pid: int, runner: _LocalRunner) -> float:
    """A finished stage's peak resident memory (MB): what its task wrote (its own), else
    its ``ru_maxrss``, which also counts the sweep's peak from before its ``exec``."""
    try:
        return float(runner.rss_files.pop(pid).read_text())
    except (KeyError, OSError, ValueError):
        return usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024.0)


class _RayRunner:
    """Stages as Ray tasks with their resources declared; failed tasks are retried."""

    #: Ray starts a submitted task when its declared resources are free.
    verb = "submitted"

    def __init__(self, out: Path, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise StudyError("the ray executor needs Ray: pip install 'soo-marl[ray]'") from None
        self.ray = ray
        # "local" starts a fresh instance: without it Ray would try to join whatever
        # cluster /tmp/ray/ray_current_cluster names, and wait forever if that one is gone
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.remote = ray.remote(_ray_stage)
        self.tasks: dict[Any, Stage] = {}
        check_shared_storage(out, ray)

    #: Ray packs tasks by their declared resources, memory included.
    memory_gb = None

    def has_room(self) -> bool:
        return True  # Ray packs tasks by their declared resources

    def threads_for(self, cpus: int, starting: int) -> int:
        """Ray reserves the declared ``cpus`` for the task, which uses them all."""
        return cpus

    def fits(self, need_gb: float) -> bool:
        return True

    def memory_in_use(self) -> float:
        return 0.0

    def running(self) -> bool:
        return bool(self.tasks)

    def start(self, stage: Stage, task: Task, res: dict, out: Path) -> None:
        ref = self.remote.options(
            num_cpus=res["cpus"],
            num_gpus=res["gpus"],
            memory=int(res["memory_gb"] * 1e9),
            max_retries=RAY_RETRIES,
            retry_exceptions=True,
            name=f"soo-marl {stage.kind} {stage.name}",
        ).remote(
            task.to_json(),
            res["cpus"],
            str(out / ".sweep" / "pids" / stage.name),
            str(out / ".sweep" / "logs" / f"{stage.name}.log"),
        )
        self.tasks[ref] = stage

    def wait_any(self) -> tuple[Stage, bool, float, float | None] | None:
        if not self.tasks:
            return None
        ready, _ = self.ray.wait(list(self.tasks), num_returns=1)
        ref = ready[0]
        stage = self.tasks.pop(ref)
        try:
            seconds, rss = self.ray.get(ref)
            ok = True
        except Exception:  # noqa: BLE001 - the stage failed after its retries
            seconds, rss, ok = 0.0, None, False
        return stage, ok, seconds, rss

    def interrupt(self) -> list[tuple[Stage, bool, float, float | None]]:
        """Ctrl-C: the running tasks are left to Ray (they end with this driver, and a
        training resumes from its last periodic checkpoint); returns them as interrupted."""
        ended: list[tuple[Stage, bool, float, float | None]] = [
            (stage, False, 0.0, None) for stage in self.tasks.values()
        ]
        self.tasks.clear()
        return ended

    def close(self) -> None:
        pass


def _storage_probe(path: str) -> tuple[str, bool]:
    import socket

    return socket.gethostname(), Path(path).exists()


def check_shared_storage(out: Path, ray: Any) -> None:
    """Every Ray node must see ``out``: a file written here is looked for on each node."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out.mkdir(parents=True, exist_ok=True)
    probe = out.resolve() / ".sweep" / f"storage-{uuid.uuid4().hex}"
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text("soo-marl sweep")
    fn = ray.remote(num_cpus=0)(_storage_probe)
    refs = [
        fn.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(str(probe))
        for node in ray.nodes()
        if node.get("Alive")
    ]
    try:
        missing = [host for host, seen in ray.get(refs) if not seen]
    finally:
        probe.unlink(missing_ok=True)
    if missing:
        raise StudyError(
            f"--out {out} is not visible from Ray node(s) {', '.join(sorted(set(missing)))}: "
            "put it on storage every node mounts (e.g. NFS) at the same path"
        )
