"""Typed tasks: one dataclass per kind of work (train, finetune, evaluate, classify, plot,
report; copy and stack trained runs; a study's gate and its analysis), holding the config
dataclasses it needs.

A task is checked once, when it is built; it knows its inputs and outputs, what it
probably costs (:meth:`Task.estimate`, from its typed fields) and how to run itself
(:meth:`Task.run`), and it round-trips through JSON. The command line builds a task from
its options and runs it; the study engine (:mod:`soo_marl.sweep`) builds one per stage
from the stage's options (:meth:`Task.from_stage`: the same keys, the config field names)
and runs it in its own process (``python -m soo_marl.tasks TASK.json``) or in a Ray
worker. Nothing here reads a command line.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from soo_marl import rundir
from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.analysis.classify import DEFAULT_N_EPISODES, result_name
from soo_marl.config import SECTIONS, RunConfig, TrainConfig, build_section, coerce, load_yaml
from soo_marl.envs import core
from soo_marl.finetune import FinetuneConfig
from soo_marl.rollout import DEFAULT_EVAL_EPISODES, DEFAULT_EVAL_SEEDS
from soo_marl.soo import SOO_ROWS

Log = Callable[[str], None]
#: Exit status of a task that Ctrl-C (SIGINT) stopped before it finished: 128 + 2, as a
#: shell reports a process that SIGINT ended, so ``train … && finetune …`` stops there.
INTERRUPTED = 130

# ----------------------------------------------------------------------- the cost model
#: Training wall seconds per episode for S stacked seeds: A + B·S (2 CPU cores; fit to
#: 8 seeds × 40,000 episodes in 747 s and the 1-seed update rate of bench learner).
TRAIN_A_S, TRAIN_B_S = 2.0e-3, 2.1e-3
#: Fine-tuning with the SOO/anchor terms costs this much more per episode.
FINETUNE_FACTOR = 1.3
#: Evaluation wall seconds per (trained seed × episode) for a run's own play, probes and
#: blind probe, and per (seed × episode) of one cross-play partner (fit to 4 runs × 8
#: seeds × 4,000 episodes with all-pairs cross-play in 83 s; evaluations with the later
#: probes take longer: 3 runs × 32 seeds × 4,000 episodes took 647 s, the model says 269 s).
EVAL_PER_SEED_EPISODE = 0.4e-3
CROSS_PER_SEED_EPISODE = 0.1e-3
#: Replay memory per transition: joint obs 16 + actions 4 + rewards 2 + next obs 16 floats
#: (the default environment's; :func:`bytes_per_transition` follows the config).
BYTES_PER_TRANSITION = 38 * 4
#: Memory besides the replay buffers (torch, networks, evaluation arrays).
BASE_MEMORY_GB = 1.0


@dataclass(frozen=True)
class Estimate:
    """What a task probably costs on this project's 2-core machine (docs/performance.md):
    wall seconds with ``cpus`` torch threads, and the peak resident memory to declare."""

    seconds: float
    memory_gb: float
    cpus: int = 1

    @property
    def cpu_seconds(self) -> float:
        """CPU-seconds: the wall seconds times the CPUs held."""
        return self.seconds * self.cpus


@dataclass(frozen=True)
class StudyContext:
    """What a stage's task may know of its study besides its own options: the study's
    output folder, ``analysis:`` block, families and stage names (read by
    :class:`AnalysisTask`)."""

    root: Path
    analysis: Mapping[str, Any]
    families: Mapping[str, Sequence[str]]
    stages: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """A key of a study stage that names other stages (docs: studies/README.md)."""

    #: "one": a stage name; "list": a name or a list of names; "map": label → stage name.
    shape: str
    #: The kinds of stage it may name.
    kinds: tuple[str, ...]
    #: Whether a stage of this kind must give it.
    required: bool = False


#: Kinds whose output is a run directory.
RUN_KINDS = ("train", "stack", "finetune")
#: Configs of runs that later tasks will make (run directory → config), for estimates.
Known = Mapping[Path, TrainConfig]


def options_dict(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options by field name: dashes read as underscores, unset (None) values dropped."""
    return {str(k).replace("-", "_"): v for k, v in options.items() if v is not None}


def refuse_unknown(options: Mapping[str, Any], allowed: Sequence[str], kind: str) -> None:
    """One clear error for options a task of ``kind`` does not take."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown {kind} option {', '.join(unknown)}; options: {', '.join(sorted(allowed))}"
        )


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """Integers from a comma- or space-separated list; a clear error naming ``option``."""
    try:
        return tuple(int(v) for v in str(text).replace(",", " ").split())
    except ValueError:
        raise ValueError(f"{option} takes integers, comma-separated: got {text!r}") from None


def parse_seed_ranges(text: str, option: str) -> list[int]:
    """Seeds from comma-separated numbers and ranges: ``"8-15"`` → 8, …, 15; ``"3,5"`` →
    3, 5; ``"0-3,8"`` → 0, 1, 2, 3, 8 (in the order written); a clear error naming
    ``option``."""
    out: list[int] = []
    try:
        for part in str(text).replace(" ", "").split(","):
            lo, _, hi = part.partition("-")
            out += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise ValueError(f"{option} takes seeds and ranges such as 0-7,12: got {text!r}") from None
    if not out:
        raise ValueError(f"{option} names no seed: got {text!r}")
    return out


def read_run_config(run_dir: Path, known: Known) -> TrainConfig | None:
    """The config of a run: from ``known`` when a task will make it, else from its
    config.yaml, else None."""
    if Path(run_dir) in known:
        return known[Path(run_dir)]
    try:
        return rundir.read_config(run_dir)[0]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------- the base class


class Task:
    """What every task has: its kind's facts for studies, JSON round-trips, estimates."""

    kind: ClassVar[str]
    #: Reference keys of a study stage of this kind (besides ``after``).
    references: ClassVar[dict[str, Reference]] = {}
    #: The output is a run directory (finished when its final model exists; resumable).
    makes_run: ClassVar[bool] = False
    #: Reads the ``eval/`` files of the runs it names (so waits for their evaluation).
    reads_evaluation: ClassVar[bool] = False
    #: Reads the replay buffer of the runs it names (so they are pruned after it).
    reads_buffer: ClassVar[bool] = False
    #: A study stage's output is ``OUT/<name><suffix>`` (else the folder ``OUT/<name>``).
    output_suffix: ClassVar[str] = ""
    #: Wall seconds of a small task (classify, plot, report) on the 2-core machine.
    small_seconds: ClassVar[float] = 2.0

    @property
    def output(self) -> Path:
        """The run directory, folder or file the task writes."""
        raise NotImplementedError

    def inputs(self) -> list[Path]:
        """The runs and files the task reads."""
        return []

    def estimate(self, known: Known | None = None) -> Estimate:
        """Wall seconds, memory and CPUs the task probably takes (``known``: the configs of
        runs that other tasks will make)."""
        return Estimate(self.small_seconds, BASE_MEMORY_GB)

    def run_config(self, known: Known) -> TrainConfig | None:
        """The config of the run the task makes (None: it makes none)."""
        return None

    def run(self, log: Log = print) -> Any:
        """Do the work; returns the result of the function that does it."""
        raise NotImplementedError

    @property
    def total_episodes(self) -> int:
        """Episodes per seed a training or fine-tuning runs to (0 for other tasks)."""
        return 0

    def finished(self, result: Any) -> bool:
        """Whether ``run`` got to the end (False: Ctrl-C stopped a training early)."""
        stopped = getattr(result, "interrupted", False)
        return not stopped or result.episodes_done >= self.total_episodes

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"kind": …, field: value, …}`` (paths as text, tuples as lists)."""
        data = {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"kind": self.kind, **data}

    def to_json(self) -> str:
        """The task as JSON (:func:`task_from_json` reads it back)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> Task:
        """The task of a study stage: its options, its references (the referenced stages'
        tasks), the output path the sweep chose and what it may know of its study."""
        raise NotImplementedError


class RunTask(Task):
    """A task whose output is the run directory ``run_dir`` (finished when its final model
    exists; ``resume`` continues it)."""

    makes_run: ClassVar[bool] = True
    run_dir: Path
    resume: bool

    @property
    def output(self) -> Path:
        return self.run_dir


def _encode(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, TrainConfig):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _encode(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _decode(next(a for a in args if a is not type(None)), value)
    if hint is Path:
        return Path(value)
    if hint is TrainConfig:
        return TrainConfig.from_dict(value)
    if hint is FinetuneConfig:
        return build_section(FinetuneConfig, value, "finetune")
    if origin is tuple:
        return tuple(_decode(args[0], v) for v in value)
    if origin is dict:
        return {k: _decode(args[1], v) for k, v in value.items()}
    return value


def task_from_dict(data: Mapping[str, Any]) -> Task:
    """A task from :meth:`Task.to_dict`'s plain data (checked as when built)."""
    data = dict(data)
    cls = TASKS.get(str(data.pop("kind", None)))
    if cls is None:
        raise ValueError(f"not a task: kind {data.get('kind')!r}; kinds: {', '.join(TASKS)}")
    hints = typing.get_type_hints(cls)
    refuse_unknown(data, list(hints), cls.kind)
    return cls(**{k: _decode(hints[k], v) for k, v in data.items()})


def task_from_json(text: str) -> Task:
    """A task from :meth:`Task.to_json`."""
    return task_from_dict(json.loads(text))


def _fields_from(cls: type, options: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    """``options`` (by field name) as the types of ``cls``'s fields; a tuple of integers
    also takes comma- or space-separated text."""
    refuse_unknown(options, allowed, cls.kind)  # type: ignore[attr-defined]
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    out = {}
    for key, value in options.items():
        hint, default = hints[key], defaults[key]
        if hint == tuple[int, ...] and isinstance(value, (str, int)):
            value = parse_int_list(str(value), key)
        elif typing.get_origin(hint) is tuple:
            value = _decode(hint, value if isinstance(value, (list, tuple)) else [value])
        elif default is not None and default is not dataclasses.MISSING:
            value = coerce(value, default, key)
        out[key] = value
    return out


def _check_field(cls: type, **values: Any) -> None:
    """Check values by building the config dataclass that defines them (their one check)."""
    cls(**values)


# ----------------------------------------------------------------------- training


def train_config(options: Mapping[str, Any]) -> TrainConfig:
    """A training config from options by field name: defaults ← ``config`` (a YAML file
    with env/maddpg/run sections) ← the fields given (later wins). ``seeds`` is a count
    (seeds ``first_seed``…) or a list, ``seed`` a list; not both."""
    o = options_dict(options)
    data: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    if "config" in o:
        _merge_config_file(data, Path(o.pop("config")))
    _seed_options(o, data["run"])
    home = {f.name: s for s, c in SECTIONS.items() for f in dataclasses.fields(c)}
    refuse_unknown(o, [*home, "config", "seed", "first_seed"], "train")
    for name, value in o.items():
        section = home[name]
        if isinstance(getattr(SECTIONS[section](), name), tuple) and isinstance(value, str):
            value = parse_int_list(value, name)
        data[section][name] = value
    return TrainConfig.from_dict(data)


def _merge_config_file(data: dict[str, dict[str, Any]], path: Path) -> None:
    loaded = load_yaml(path)
    unknown = set(loaded) - set(SECTIONS) - {"meta"}
    if unknown:
        raise ValueError(
            f"{path}: unknown section(s) {sorted(unknown)}; allowed: {', '.join(SECTIONS)}"
        )
    for section in data:
        part = loaded.get(section) or {}
        if not isinstance(part, dict):
            raise ValueError(f"{path}: section {section!r} must be a mapping")
        data[section].update(part)


def _seed_options(o: dict[str, Any], run: dict[str, Any]) -> None:
    """``seeds`` (a count or a list), ``seed`` (a list) and ``first_seed`` into ``run``."""
    count, listed = o.pop("seeds", None), tuple(o.pop("seed", None) or ())
    first = int(o.pop("first_seed", 0))
    if count is not None and listed:
        raise ValueError("give either seeds N (a count) or seed S (a list), not both")
    if first and not isinstance(count, int):
        raise ValueError("first_seed goes with seeds N (a count)")
    if isinstance(count, bool) or first < 0:
        raise ValueError(f"seeds must be a count or a list and first_seed >= 0, got {count!r}")
    if isinstance(count, int):
        run["seeds"] = tuple(range(first, first + count))
    elif count is not None:
        run["seeds"] = count if not isinstance(count, str) else parse_int_list(count, "seeds")
    elif listed:
        run["seeds"] = listed


def bytes_per_transition(config: TrainConfig) -> int:
    """Replay memory per stored transition of ``config`` (docs/spec.md §2.4, §6.7): single
    frames of ``core.obs_dims`` (16 values, 2 more per agent that sees velocities), 4
    actions, 2 rewards, and with ``history`` > 1 the episode step: 152 bytes by default,
    156 with history, whatever k (the frames are stacked only when sampling)."""
    obs = sum(core.obs_dims(config.env))
    return StackedReplayBuffer.row_bytes(obs, 4, 2, config.env.history)


def sampling_bytes(config: TrainConfig) -> int:
    """Per seed, the working memory of stacking one sampled batch (``history`` > 1; 0
    otherwise): ``history`` gathered rows per transition and the stacked observations."""
    k = config.env.history
    if k == 1:
        return 0
    obs, batch = sum(core.obs_dims(config.env)), config.maddpg.batch_size
    return StackedReplayBuffer.sample_bytes(batch, obs, 4, 2, k)


def _run_estimate(
    config: TrainConfig, episodes: int, seeds: int, fresh: bool, tune: bool
) -> Estimate:
    """Training or fine-tuning: time ∝ episodes × (A + B·seeds); memory the replay buffers
    (twice while a checkpoint is written; a fine-tuning from the parent's buffer also holds
    the parent's checkpoint) plus a base."""
    seconds = episodes * (TRAIN_A_S + TRAIN_B_S * seeds) * (FINETUNE_FACTOR if tune else 1.0)
    steps = config.env.max_cycles
    if tune and fresh:
        rows, copies = min(config.maddpg.buffer_size, episodes * steps), 2
    else:
        rows = min(config.maddpg.buffer_size, config.run.episodes * steps)
        copies = 3 if tune else 2
    replay = copies * rows * bytes_per_transition(config) + sampling_bytes(config)
    memory = BASE_MEMORY_GB + seeds * replay / 1e9
    return Estimate(seconds, memory, cpus=2)


@dataclass
class TrainTask(RunTask):
    """Train ``config.run.seeds`` from scratch into ``run_dir`` (``soo-marl train``)."""

    kind: ClassVar[str] = "train"

    config: TrainConfig
    run_dir: Path
    resume: bool = False
    progress: bool = True

    def run_config(self, known: Known) -> TrainConfig | None:
        return self.config

    def estimate(self, known: Known | None = None) -> Estimate:
        c = self.config
        return _run_estimate(c, c.run.episodes, len(c.run.seeds), fresh=True, tune=False)

    def run(self, log: Log = print) -> Any:
        from soo_marl.train import train

        mc, episodes = self.config.maddpg, self.config.run.episodes
        if episodes < mc.noise_decay_episodes and self.progress and not self.resume:
            log(
                f"note: exploration noise falls from {mc.noise_scale_start:g} over "
                f"{mc.noise_decay_episodes:,} episodes, so this {episodes:,}-episode run ends "
                f"at scale {float(mc.noise_scale(episodes)):.3g} (noise_decay_episodes sets "
                "the decay)"
            )
        return train(self.config, self.run_dir, resume=self.resume, progress=self.progress)

    @property
    def total_episodes(self) -> int:
        return self.config.run.episodes

    @classmethod
    def from_options(cls, options: Mapping[str, Any], run_dir: Path, **kw: Any) -> TrainTask:
        """Options by config field name (:func:`train_config`) into ``run_dir``."""
        return cls(train_config(options), Path(run_dir), **kw)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> TrainTask:
        return cls.from_options(options, output)


@dataclass
class CopyTask(RunTask):
    """Copy a trained run's weights and config (a study's ``copy_from``), not its
    checkpoint or evaluation."""

    kind: ClassVar[str] = "copy"

    source: Path
    run_dir: Path
    resume: bool = False

    def inputs(self) -> list[Path]:
        return [self.source]

    def run_config(self, known: Known) -> TrainConfig | None:
        return read_run_config(self.source, known)

    def estimate(self, known: Known | None = None) -> Estimate:
        return Estimate(0.0, BASE_MEMORY_GB)

    def run(self, log: Log = print) -> Path:
        if not (self.source / rundir.FINAL_MODEL).exists():
            raise ValueError(
                f"copy_from {self.source}: no trained run there ({rundir.FINAL_MODEL})"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in (rundir.CONFIG, rundir.FINAL_MODEL):
            if (self.source / name).exists():
                shutil.copy2(self.source / name, self.run_dir / name)
        return self.run_dir


@dataclass
class FinetuneTask(RunTask):
    """Fine-tune every seed of the deceptive run ``parent`` (``soo-marl finetune``).
    ``sight_radius`` must match the parent's (checked when it runs); ``kernels`` defaults
    to the parent's."""

    kind: ClassVar[str] = "finetune"
    reads_buffer: ClassVar[bool] = True
    references: ClassVar[dict[str, Reference]] = {
        "parent": Reference("one", ("train", "stack"), required=True)
    }

    parent: Path
    ft: FinetuneConfig
    run_dir: Path
    device: str = RunConfig.device
    kernels: str | None = None
    sight_radius: float | None = None
    allow_unfinished: bool = False
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        _check_field(RunConfig, device=self.device)
        if self.kernels is not None:
            _check_field(MADDPGConfig, kernels=self.kernels)

    def inputs(self) -> list[Path]:
        return [self.parent]

    def run_config(self, known: Known) -> TrainConfig | None:
        return read_run_config(self.parent, known)

    def estimate(self, known: Known | None = None) -> Estimate:
        parent = read_run_config(self.parent, known or {}) or TrainConfig()
        fresh = not self.ft.reuse_buffer
        return _run_estimate(parent, self.ft.episodes, len(parent.run.seeds), fresh, tune=True)

    def run(self, log: Log = print) -> Any:
        from soo_marl.finetune import finetune

        overrides = {} if self.sight_radius is None else {"env__sight_radius": self.sight_radius}
        return finetune(
            self.parent, self.ft, self.run_dir, resume=self.resume, progress=self.progress,
            overrides=overrides, device=self.device, kernels=self.kernels,
            allow_unfinished=self.allow_unfinished,
        )  # fmt: skip

    @property
    def total_episodes(self) -> int:
        return self.ft.episodes

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], parent: Path, run_dir: Path | None = None, **kw: Any
    ) -> FinetuneTask:
        """Options by field name: FinetuneConfig's fields, ``soo`` (false: SOO weight 0),
        ``fresh_buffer`` (true: ``reuse_buffer`` false), ``device``, ``kernels``,
        ``sight_radius``, ``allow_unfinished``; ``run_dir`` defaults to the parent's
        sibling named after the condition."""
        o = options_dict(options)
        own = {
            k: o.pop(k) for k in ("device", "kernels", "sight_radius", "allow_unfinished") if k in o
        }
        if not o.pop("soo", True):
            o["soo_weight"] = 0.0
        if "fresh_buffer" in o:
            o["reuse_buffer"] = not o.pop("fresh_buffer")
        names = [f.name for f in dataclasses.fields(FinetuneConfig)]
        refuse_unknown(o, [*names, "soo", "fresh_buffer", *_OWN_FINETUNE], "finetune")
        ft = build_section(FinetuneConfig, o, "finetune")
        run_dir = Path(run_dir) if run_dir else rundir.finetune_dir(parent, ft.condition)
        return cls(Path(parent), ft, run_dir, **own, **kw)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> FinetuneTask:
        _never_unfinished(options)
        return cls.from_options(options, refs["parent"].output, output)


_OWN_FINETUNE = ("device", "kernels", "sight_radius", "allow_unfinished")


def _never_unfinished(options: Mapping[str, Any]) -> None:
    if "allow_unfinished" in options_dict(options):
        raise ValueError("allow_unfinished is refused: a study never uses unfinished runs")


# ----------------------------------------------------------------------- evaluation


@dataclass
class EvaluateTask(Task):
    """Deterministic evaluation, probes and cross-play of ``runs`` (``soo-marl evaluate``):
    writes eval/metrics.json, eval/trajectories.npz and eval/grids.npz into each run."""

    kind: ClassVar[str] = "evaluate"
    reads_buffer: ClassVar[bool] = True  # the actor saturation on replayed observations
    references: ClassVar[dict[str, Reference]] = {
        "runs": Reference("list", RUN_KINDS, required=True),
        "cross_with": Reference("list", RUN_KINDS),
    }

    runs: tuple[Path, ...]
    episodes: int = DEFAULT_EVAL_EPISODES
    eval_seeds: tuple[int, ...] = DEFAULT_EVAL_SEEDS
    device: str = RunConfig.device
    cross_with: tuple[Path, ...] = ()
    allow_unfinished: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("evaluate needs at least one run")
        if self.episodes <= 0 or not self.eval_seeds:
            raise ValueError("episodes must be positive and eval_seeds must name a seed")
        _check_field(RunConfig, device=self.device)
        extra = {str(p) for p in self.cross_with} - {str(p) for p in self.runs}
        if extra:
            raise ValueError(f"cross_with names runs that are not evaluated: {sorted(extra)}")

    @property
    def output(self) -> Path:
        return rundir.eval_dir(self.runs[0])

    def inputs(self) -> list[Path]:
        return list(self.runs)

    def estimate(self, known: Known | None = None) -> Estimate:
        configs = [read_run_config(r, known or {}) for r in self.runs]
        seeds = max(len((c or TrainConfig()).run.seeds) for c in configs)
        n = self.episodes * len(self.eval_seeds) * seeds
        partners = len(self.cross_with or self.runs)
        per = EVAL_PER_SEED_EPISODE + partners * CROSS_PER_SEED_EPISODE
        return Estimate(len(self.runs) * n * per, BASE_MEMORY_GB + 1.0, cpus=2)

    def run(self, log: Log = print) -> dict[str, dict]:
        from soo_marl.config import resolve_device
        from soo_marl.evaluate import evaluate_runs

        device = str(resolve_device(self.device))
        return evaluate_runs(
            self.runs, self.episodes, list(self.eval_seeds), device=device,
            progress=self.progress, cross_with=self.cross_with or None,
            allow_unfinished=self.allow_unfinished,
        )  # fmt: skip

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], runs: Sequence[Path], **kw: Any
    ) -> EvaluateTask:
        """``episodes``, ``eval_seeds`` (a list or text), ``device``, ``cross_with``,
        ``allow_unfinished``, ``progress``."""
        allowed = ("episodes", "eval_seeds", "device", "cross_with", "allow_unfinished", "progress")
        o = _fields_from(cls, options_dict({**options, **kw}), allowed)
        o["cross_with"] = tuple(Path(p) for p in o.get("cross_with", ()))
        return cls(tuple(Path(r) for r in runs), **o)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> EvaluateTask:
        refuse_unknown(options_dict(options), ("episodes", "eval_seeds", "device"), "evaluate")
        cross = tuple(t.output for t in refs.get("cross_with") or ())
        runs = [t.output for t in refs["runs"]]
        return cls.from_options(options, runs, cross_with=cross, progress=False)


@dataclass
class ClassifyTask(Task):
    """SOO classifier accuracy against the number of evaluation episodes, honest against
    deceptive (``soo-marl classify``); lists of runs pair up in order."""

    kind: ClassVar[str] = "classify"
    small_seconds: ClassVar[float] = 5.0
    reads_evaluation: ClassVar[bool] = True
    references: ClassVar[dict[str, Reference]] = {
        "deceptive": Reference("list", RUN_KINDS, required=True),
        "honest": Reference("list", RUN_KINDS, required=True),
    }

    deceptive: tuple[Path, ...]
    honest: tuple[Path, ...]
    out: Path | None = None
    episodes: tuple[int, ...] = ()
    pool_eval_seeds: bool = False
    rows: str = "all"
    keep_trap_flag: bool = False
    all_variants: bool = False
    allow_unfinished: bool = False

    def __post_init__(self) -> None:
        if not self.deceptive or len(self.deceptive) != len(self.honest):
            raise ValueError("deceptive and honest must list as many runs (at least one)")
        if self.rows not in SOO_ROWS:
            raise ValueError(f"unknown rows {self.rows!r}; allowed: {', '.join(SOO_ROWS)}")
        self.episodes = tuple(self.episodes) or tuple(DEFAULT_N_EPISODES)

    @property
    def output(self) -> Path:
        return self.out or rundir.eval_dir(self.deceptive[0])

    @property
    def result_json(self) -> Path:
        """The JSON the classifier writes (named as ``classify.write_result`` names it)."""
        if self.all_variants:
            name = "classifier_variants" + ("_pooled" if self.pool_eval_seeds else "")
        else:
            name = result_name(vars(self) | {"pooled_eval_seeds": self.pool_eval_seeds})
        return self.output / f"{name}.json"

    def inputs(self) -> list[Path]:
        return [*self.deceptive, *self.honest]

    def run(self, log: Log = print) -> tuple[Any, list[Path]]:
        """The classifier's result (a list of them with ``all_variants``) and the files
        written."""
        from soo_marl.analysis import classify as c

        d, h, n, pool = self.deceptive, self.honest, list(self.episodes), self.pool_eval_seeds
        if self.all_variants:
            result: Any = c.classify_variants(d, h, n, pool, self.allow_unfinished)
        else:
            result = c.classify(
                d, h, n, pool, self.rows, self.keep_trap_flag, self.allow_unfinished
            )
        return result, c.write_result(result, self.output)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> ClassifyTask:
        _never_unfinished(options)
        allowed = ("episodes", "pool_eval_seeds", "rows", "keep_trap_flag", "all_variants")
        o = _fields_from(cls, options_dict(options), allowed)
        deceptive, honest = (tuple(t.output for t in refs[k]) for k in ("deceptive", "honest"))
        return cls(deceptive, honest, out=output, **o)


@dataclass
class PlotTask(Task):
    """Figures 2-4, probes, classifier curve and learning curves of evaluated runs
    (``soo-marl plot``)."""

    kind: ClassVar[str] = "plot"
    small_seconds: ClassVar[float] = 10.0
    reads_evaluation: ClassVar[bool] = True
    references: ClassVar[dict[str, Reference]] = {
        "runs": Reference("list", RUN_KINDS, required=True),
        "classifier": Reference("one", ("classify",)),
    }

    runs: tuple[Path, ...]
    out: Path
    classifier: Path | None = None
    formats: tuple[str, ...] = ()

    @property
    def output(self) -> Path:
        return self.out

    def inputs(self) -> list[Path]:
        return [*self.runs, *([self.classifier] if self.classifier else [])]

    def run(self, log: Log = print) -> list[Path]:
        from soo_marl.analysis.plots import FORMATS, make_all

        formats = self.formats or FORMATS  # png and pdf
        return make_all(self.runs, self.out, self.classifier, log=log, formats=formats)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> PlotTask:
        o = _fields_from(cls, options_dict(options), ("formats",))
        classifier = refs["classifier"].result_json if refs.get("classifier") else None
        return cls(tuple(t.output for t in refs["runs"]), output, classifier, **o)


@dataclass
class ReportTask(Task):
    """report.md of four evaluated conditions (``soo-marl report``)."""

    kind: ClassVar[str] = "report"
    reads_evaluation: ClassVar[bool] = True
    output_suffix: ClassVar[str] = ".md"
    references: ClassVar[dict[str, Reference]] = {
        "runs": Reference("map", RUN_KINDS, required=True),
        "classifier": Reference("one", ("classify",), required=True),
        "figures": Reference("one", ("plot",), required=True),
    }
    #: The conditions a report compares.
    CONDITIONS: ClassVar[tuple[str, ...]] = ("deceptive", "honest", "soo", "no-soo")

    runs: dict[str, Path]
    classifier: Path
    figures: Path
    out: Path
    title: str = "soo-marl reproduction"
    scale: str = ""
    command: str = ""

    def __post_init__(self) -> None:
        if set(self.runs) != set(self.CONDITIONS):
            raise ValueError(
                f"a report's runs are {', '.join(self.CONDITIONS)}, got {sorted(self.runs)}"
            )

    @property
    def output(self) -> Path:
        return self.out

    def inputs(self) -> list[Path]:
        return [*self.runs.values(), self.classifier, self.figures]

    def run(self, log: Log = print) -> Path:
        from soo_marl.analysis.report import write_report_files

        return write_report_files(
            self.out, self.runs, self.classifier, self.figures, title=self.title,
            scale=self.scale, command=self.command,
        )  # fmt: skip

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> ReportTask:
        o = _fields_from(cls, options_dict(options), ("title", "scale", "command"))
        runs = {k: t.output for k, t in refs["runs"].items()}
        return cls(runs, refs["classifier"].result_json, refs["figures"].output, output, **o)


@dataclass
class StackTask(RunTask):
    """Join the final weights of ``sources`` (one config trained on different seeds) into
    one weights-only run holding ``seeds`` in that order (``soo-marl stack-models``); a
    seed held by several sources comes from the first."""

    kind: ClassVar[str] = "stack"

    sources: tuple[Path, ...]
    seeds: tuple[int, ...]
    run_dir: Path
    resume: bool = False

    def __post_init__(self) -> None:
        if not self.sources or not self.seeds:
            raise ValueError("stack needs sources (trained runs) and seeds")

    def inputs(self) -> list[Path]:
        return list(self.sources)

    def run_config(self, known: Known) -> TrainConfig | None:
        config = read_run_config(self.sources[0], known)
        return (
            None if config is None else replace(config, run=replace(config.run, seeds=self.seeds))
        )

    def run(self, log: Log = print) -> Path:
        return rundir.stack_models(self.sources, self.seeds, self.run_dir)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> StackTask:
        o = options_dict(options)
        refuse_unknown(o, ("sources", "seeds"), "stack")
        seeds = o.get("seeds", "")
        if not isinstance(seeds, (list, tuple)):
            seeds = parse_seed_ranges(str(seeds), "seeds")
        return cls(tuple(Path(p) for p in o.get("sources") or ()), tuple(seeds), output)


@dataclass
class GateTask(Task):
    """A gate of a study: a named rule of :data:`soo_marl.analysis.study.GATES` applied to
    evaluated runs; it writes ``OUT/<name>/gate.json``, and the stages that come
    ``after`` it run only when it passes."""

    kind: ClassVar[str] = "gate"
    reads_evaluation: ClassVar[bool] = True
    references: ClassVar[dict[str, Reference]] = {
        "runs": Reference("map", RUN_KINDS, required=True)
    }

    rule: str
    runs: dict[str, Path]
    out: Path

    def __post_init__(self) -> None:
        from soo_marl.analysis.study import GATES

        if self.rule not in GATES:
            raise ValueError(f"unknown gate rule {self.rule!r}; rules: {', '.join(GATES)}")
        try:
            inspect.signature(GATES[self.rule]).bind(**self.runs)
        except TypeError as exc:
            raise ValueError(f"gate rule {self.rule!r} takes other runs: {exc}") from None

    @property
    def output(self) -> Path:
        return self.out

    @property
    def result_json(self) -> Path:
        """The gate's verdict and its inputs."""
        return self.out / "gate.json"

    def inputs(self) -> list[Path]:
        return list(self.runs.values())

    def run(self, log: Log = print) -> dict[str, Any]:
        from soo_marl.analysis.study import GATES

        result = GATES[self.rule](**self.runs)
        self.out.mkdir(parents=True, exist_ok=True)
        self.result_json.write_text(json.dumps(result, indent=1, default=str))
        log(f"gate {self.rule}: {'passes' if result['passes'] else 'closed'}")
        return result

    def passed(self) -> bool:
        """Whether the gate ran and passed."""
        try:
            return bool(json.loads(self.result_json.read_text())["passes"])
        except (OSError, ValueError, KeyError):
            return False

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> GateTask:
        o = options_dict(options)
        refuse_unknown(o, ("rule",), "gate")
        return cls(str(o.get("rule")), {k: t.output for k, t in refs["runs"].items()}, output)


@dataclass
class AnalysisTask(Task):
    """A study's report from its ``analysis:`` block (:mod:`soo_marl.analysis.study`):
    arms.json, arms.md and the forest plot, from the runs under ``root`` or, with
    ``arms_json``, again from a committed arms.json (``rule``: judged by another rule;
    ``name``: the files' name)."""

    kind: ClassVar[str] = "analysis"

    analysis: dict[str, Any]
    families: dict[str, list[str]]
    stages: tuple[str, ...]
    root: Path
    out: Path
    source: str = "study"
    arms_json: Path | None = None
    rule: str | None = None
    name: str = "arms"

    def __post_init__(self) -> None:
        self.spec()  # checked once, here

    def spec(self) -> Any:
        """The checked :class:`~soo_marl.analysis.study.AnalysisSpec`."""
        from soo_marl.analysis.study import parse_analysis

        raw = dict(self.analysis)
        if self.rule is not None:  # judged by another rule; the others stay on record
            records = [r for r in [raw.get("rule"), *(raw.get("record_rules") or [])]]
            raw |= {"rule": self.rule, "record_rules": [r for r in records if r != self.rule]}
        return parse_analysis(raw, self.stages, self.families, self.source)

    @property
    def output(self) -> Path:
        return self.out

    def inputs(self) -> list[Path]:
        return [self.arms_json] if self.arms_json else [self.root]

    def run(self, log: Log = print) -> Path:
        from soo_marl.analysis.study import rejudge, report

        if self.arms_json is not None:
            return rejudge(self.arms_json, self.spec(), self.out, self.name)
        return report(self.spec(), self.root, self.out)

    @classmethod
    def from_stage(
        cls,
        options: Mapping[str, Any],
        refs: Mapping[str, Any],
        output: Path,
        study: StudyContext | None = None,
    ) -> AnalysisTask:
        refuse_unknown(options_dict(options), (), "analysis")
        if study is None or not study.analysis:
            raise ValueError("an analysis stage needs the study's analysis: block")
        return cls(dict(study.analysis), {k: list(v) for k, v in study.families.items()},
                   study.stages, study.root, output)  # fmt: skip


#: Every task kind, by name (a study stage's ``kind``; ``copy`` is a train stage with
#: ``copy_from``).
TASKS: dict[str, type[Task]] = {
    t.kind: t
    for t in (
        TrainTask, CopyTask, StackTask, FinetuneTask, EvaluateTask, ClassifyTask, PlotTask,
        ReportTask, GateTask, AnalysisTask,
    )
}  # fmt: skip


def interruption(result: Any, total: int, again: str) -> str:
    """The line that says where Ctrl-C stopped a training or fine-tuning of ``total``
    episodes per seed, where its checkpoint is, and ``again``: how to continue it."""
    return (
        f"interrupted at {result.episodes_done} episodes of {total} per seed in "
        f"{result.wall_time_s:.0f} s; checkpoint saved in {result.run_dir / rundir.CHECKPOINT}; "
        f"{again}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the task of a JSON file in this process (how the study engine runs a stage in
    its own process): exit 0 when done, :data:`INTERRUPTED` when Ctrl-C stopped it early,
    1 with the error as the last line when it failed. Its own peak resident memory (MB)
    goes to ``TASK.rss`` beside the JSON (a child's ``ru_maxrss`` also counts its
    parent's peak before ``exec``)."""
    from soo_marl.allocator import peak_rss_mb

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m soo_marl.tasks TASK.json", file=sys.stderr)
        return 2
    try:
        task = task_from_json(Path(args[0]).read_text())
        result = task.run()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        Path(args[0]).with_suffix(".rss").write_text(str(peak_rss_mb() or ""))
    if not task.finished(result):
        again = "it resumes from there when run again"
        print(interruption(result, task.total_episodes, again))
        return INTERRUPTED
    print(f"done: {task.kind} {task.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
