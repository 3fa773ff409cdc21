"""Stage kinds: what each soo-marl command means as a stage of a study (docs/spec.md §6.1,
§6.3).

:data:`KINDS` holds one :class:`StageKind` per kind — ``train``, ``finetune``,
``evaluate``, ``classify``, ``plot``, ``report`` — with everything the study engine
(:mod:`soo_marl.sweep`) knows about it: the click command it runs (from
:mod:`soo_marl.commands`), the references it takes to other stages, the options the sweep
sets itself, the arguments it passes for those, where the output goes, what it reads
(evaluation files, replay buffers) and how many CPUs it declares. A ``train`` stage with
``copy_from`` is done by copying a trained run instead of running the command
(:func:`soo_marl.sweep.run.copy_run`). The time and memory estimates built on these facts
are :mod:`soo_marl.sweep.costs`.

This module is below the study engine and the command line: it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click

from soo_marl import commands


class StageLike(Protocol):
    """What this module reads of a study's stage (:class:`soo_marl.sweep.spec.Stage`)."""

    name: str
    kind: str
    options: dict[str, Any]
    refs: dict[str, Any]


#: The stage of a study by name (``Study.stage``).
Lookup = Callable[[str], StageLike]


@dataclass(frozen=True)
class Reference:
    """A key of a stage that names other stages."""

    #: "one": a stage name; "list": a name or a list of names; "map": label → stage name.
    shape: str
    #: The kinds of stage it may name.
    kinds: tuple[str, ...]
    #: Whether a stage of this kind must give it.
    required: bool = False


@dataclass(frozen=True)
class StageKind:
    """One kind of stage: a soo-marl command run with paths the sweep chooses."""

    name: str
    #: The command the stage runs (``soo-marl <name> …``).
    command: click.Command
    #: Reference keys of the stage (besides ``after``, which every stage has).
    references: Mapping[str, Reference]
    #: Long options (without dashes) the sweep sets itself: refused in a study.
    reserved: frozenset[str]
    #: The arguments the sweep passes for the stage's output and references.
    path_args: Callable[[StageLike, Path, Lookup], list[str]]
    #: The output is a run directory (finished when its final model exists; resumable).
    makes_run: bool = False
    #: Reads the ``eval/`` files of the runs it names (so waits for their evaluation).
    reads_evaluation: bool = False
    #: Reads the replay buffer of the runs it names (so they are pruned after it).
    reads_buffer: bool = False
    #: CPUs (torch threads) a stage declares unless its ``resources`` say otherwise.
    cpus: int = 1
    #: The output is the file ``OUT/<name><suffix>`` (else the folder ``OUT/<name>``).
    output_suffix: str = ""


def as_list(value: Any) -> list:
    """A list as it is, a tuple as a list, anything else as a one-element list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def output(stage: StageLike, out: Path) -> Path:
    """Where a stage writes: its run directory, its folder (classify, plot) or its
    Markdown file (report)."""
    return out / f"{stage.name}{KINDS[stage.kind].output_suffix}"


def classifier_json(stage: StageLike, out: Path) -> Path:
    """The JSON a classify stage writes (named as :func:`write_result` names it)."""
    from soo_marl.analysis.classify import result_name

    o = stage.options
    if o.get("all-variants"):
        name = "classifier_variants" + ("_pooled" if o.get("pool-eval-seeds") else "")
    else:
        name = result_name(
            {
                "pooled_eval_seeds": bool(o.get("pool-eval-seeds")),
                "rows": o.get("rows", "all"),
                "keep_trap_flag": bool(o.get("keep-trap-flag")),
            }
        )
    return output(stage, out) / f"{name}.json"


def command_options(kind: str) -> dict[str, click.Parameter]:
    """The long options of a kind's command (without dashes, negative forms included)
    → their click parameter."""
    out = {}
    for p in KINDS[kind].command.params:
        for opt in (*p.opts, *getattr(p, "secondary_opts", [])):
            if opt.startswith("--"):
                out[opt[2:]] = p
    return out


def option_args(kind: str, options: Mapping[str, Any]) -> list[str]:
    """A stage's options as command-line arguments of its command: a flag or boolean
    option gives its on or off form, a repeatable one repeats, any other ``--key value``."""
    params = command_options(kind)
    args: list[str] = []
    for key, value in options.items():
        p = params[key]
        if getattr(p, "is_flag", False) or p.type.name == "boolean":
            secondary = [o[2:] for o in getattr(p, "secondary_opts", [])]
            primary = p.opts[0][2:]
            off: str | None
            if key in secondary:  # e.g. "fresh-buffer: true"
                on, off = key, primary
            else:
                on, off = key, (secondary[0] if secondary else None)
            if value:
                args.append(f"--{on}")
            elif off:
                args.append(f"--{off}")
        elif getattr(p, "multiple", False):
            for v in as_list(value):
                args += [f"--{key}", str(v)]
        else:
            args += [f"--{key}", str(value)]
    return args


def stage_argv(stage: StageLike, out: Path, lookup: Lookup, resume: bool = False) -> list[str]:
    """The full command line (after ``soo-marl``) of a stage: the kind, the paths the sweep
    sets, ``--resume`` when asked (run stages), then the stage's options."""
    kind = KINDS[stage.kind]
    args = [stage.kind, *kind.path_args(stage, out, lookup)]
    if resume:
        if not kind.makes_run:
            raise ValueError(f"a {stage.kind} stage cannot be resumed")
        args.append("--resume")
    return args + option_args(stage.kind, stage.options)


def run_command(argv: list[str]) -> None:
    """Run a stage's command line (:func:`stage_argv`) in this process; raises on failure,
    also when the command ends with a non-zero exit status of its own (a training stopped by
    Ctrl-C exits with ``commands.INTERRUPTED``)."""
    kind = KINDS[argv[0]]
    status = kind.command.main(
        args=argv[1:], prog_name=f"soo-marl {kind.name}", standalone_mode=False
    )
    if status:  # without standalone mode, click returns the status an Exit carried
        raise RuntimeError(f"soo-marl {kind.name} exited with status {status}")


# --------------------------------------------------------------------------- per kind


def _train_args(stage: StageLike, out: Path, lookup: Lookup) -> list[str]:
    return ["--run-dir", str(output(stage, out))]


def _finetune_args(stage: StageLike, out: Path, lookup: Lookup) -> list[str]:
    return ["--from", str(out / stage.refs["parent"]), "--run-dir", str(output(stage, out))]


def _evaluate_args(stage: StageLike, out: Path, lookup: Lookup) -> list[str]:
    args = [str(out / x) for x in stage.refs["runs"]]
    for x in stage.refs.get("cross_with") or []:
        args += ["--cross-with", str(out / x)]
    return args + ["--quiet"]


def _classify_args(stage: StageLike, out: Path, lookup: Lookup) -> list[str]:
    args = []
    for x in stage.refs["deceptive"]:
        args += ["--deceptive", str(out / x)]
    for x in stage.refs["honest"]:
        args += ["--honest", str(out / x)]
    return args + ["--out", str(output(stage, out))]


def _plot_args(stage: StageLike, out: Path, lookup: Lookup) -> list[str]:
    args = [str(out / x) for x in stage.refs["runs"]] + ["--out", str(output(stage, out))]
    if stage.refs.get("classifier"):
        args += ["--classifier", str(classifier_json(lookup(stage.refs["classifier"]), out))]
    return args


def _report_args(stage: StageLike, out: Path, lookup: Lookup) -> list[str]:
    args = []
    for cond, x in stage.refs["runs"].items():
        args += [f"--{cond}", str(out / x)]
    args += ["--classifier", str(classifier_json(lookup(stage.refs["classifier"]), out))]
    figures = output(lookup(stage.refs["figures"]), out)
    return args + ["--figures", str(figures), "--out", str(output(stage, out))]


#: Kinds whose output is a run directory.
RUN_KINDS = ("train", "finetune")
#: Options no stage may set: a study never feeds an unfinished run to a stage.
NEVER_SET = frozenset({"allow-unfinished"})

#: Every stage kind, by name.
KINDS: dict[str, StageKind] = {
    k.name: k
    for k in (
        StageKind(
            "train",
            commands.train,
            references={},
            reserved=frozenset({"run-dir", "resume"}),
            path_args=_train_args,
            makes_run=True,
            cpus=2,
        ),
        StageKind(
            "finetune",
            commands.finetune,
            references={"parent": Reference("one", ("train",), required=True)},
            reserved=frozenset({"from", "run-dir", "resume"}) | NEVER_SET,
            path_args=_finetune_args,
            makes_run=True,
            reads_buffer=True,
            cpus=2,
        ),
        StageKind(
            "evaluate",
            commands.evaluate,
            references={
                "runs": Reference("list", RUN_KINDS, required=True),
                "cross_with": Reference("list", RUN_KINDS),
            },
            reserved=frozenset({"runs", "cross-with", "quiet"}) | NEVER_SET,
            path_args=_evaluate_args,
            reads_buffer=True,  # the actor saturation on replayed observations
            cpus=2,
        ),
        StageKind(
            "classify",
            commands.classify,
            references={
                "deceptive": Reference("list", RUN_KINDS, required=True),
                "honest": Reference("list", RUN_KINDS, required=True),
            },
            reserved=frozenset({"deceptive", "honest", "out"}) | NEVER_SET,
            path_args=_classify_args,
            reads_evaluation=True,
        ),
        StageKind(
            "plot",
            commands.plot,
            references={
                "runs": Reference("list", RUN_KINDS, required=True),
                "classifier": Reference("one", ("classify",)),
            },
            reserved=frozenset({"runs", "out", "classifier"}),
            path_args=_plot_args,
            reads_evaluation=True,
        ),
        StageKind(
            "report",
            commands.report,
            references={
                "runs": Reference("map", RUN_KINDS, required=True),
                "classifier": Reference("one", ("classify",), required=True),
                "figures": Reference("one", ("plot",), required=True),
            },
            reserved=frozenset(
                {"deceptive", "honest", "soo", "no-soo", "classifier", "figures", "out"}
            ),
            path_args=_report_args,
            reads_evaluation=True,
            output_suffix=".md",
        ),
    )
}
