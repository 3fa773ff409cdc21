"""The soo-marl commands below the command line: their click definitions, and the click
options generated from the config dataclasses. Each command that does a stage's work
(train, finetune, evaluate, classify, plot, report) builds the typed task of
:mod:`soo_marl.tasks` from its options and runs it; the ``soo-marl`` entry point only
assembles these commands into its group.

Each generated option's help is the field's own ``metadata["help"]`` (with its allowed
values, ``metadata["choices"]``, which the dataclass checks); ``metadata["flag"]`` names a
boolean's on/off switches (default ``--name/--no-name``). A help's ``(default: …)`` remark
is shown as click's ``[default: …]``, like every other default. ``train`` and ``finetune``
list their options in sections (:mod:`soo_marl.help_sections`): a field's section is its config
section's, the closed-loop environment fields (:data:`CLOSED_LOOP_FIELDS`) have their own.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click
import yaml

from soo_marl.agents.maddpg import KERNELS
from soo_marl.bench import bench_env
from soo_marl.bench_learner import bench_learner, memory_harness
from soo_marl.config import DEFAULT_SEEDS, SECTIONS, RunConfig
from soo_marl.envs.core import PAPER_SIGHT_RADIUS
from soo_marl.finetune import FinetuneConfig
from soo_marl.help_sections import HelpOption, SectionedCommand, split_default
from soo_marl.rendering import render_run
from soo_marl.rollout import DEFAULT_EVAL_SEEDS
from soo_marl.tasks import (
    INTERRUPTED,
    ClassifyTask,
    EvaluateTask,
    FinetuneTask,
    PlotTask,
    ReportTask,
    StackTask,
    Task,
    TrainTask,
    interruption,
    parse_seed_ranges,
)

#: Fields of the training config with dedicated options (not generated).
SPECIAL = {"baseline", "seeds"}

#: The help sections of ``train``, most used first.
RUN, ENV, CLOSED_LOOP, LEARNER = (
    "Run",
    "Environment",
    "Closed-loop environment options",
    "Learner (MADDPG)",
)
#: The section of each training-config section's options.
CONFIG_SECTIONS = {"run": RUN, "env": ENV, "maddpg": LEARNER}
#: The environment fields of the closed-loop variants (docs/spec.md §1.6, §1.12, §1.13),
#: in the order of ``train --help``: they go to their own section.
CLOSED_LOOP_FIELDS = (
    "guide_reward",
    "trap_deadline",
    "red_leash",
    "red_policy",
    "red_contrarian_prob",
    "blue_sight_radius",
    "red_sight_radius",
    "start_distance_min",
    "red_sees_velocity",
    "blue_sees_velocity",
    "history",
    "record_applied_action",
    "red_speed_min",
    "red_speed_max",
    "red_delay_max",
)
#: The options listed first in their section of ``train --help`` (the most used).
TRAIN_FIRST = (
    "baseline",
    "episodes",
    "seeds_text",
    "run_dir",
    "config_file",
    "print_config",
    "resume",
    "device",
    "torch_threads",
    "quiet",
    "sight_radius",
    "max_cycles",
    *CLOSED_LOOP_FIELDS,
)


def default_of(func: Callable, name: str) -> Any:
    """The default of ``func``'s parameter ``name``: an option offering the same setting
    refers to it, so the function's signature stays its one home."""
    return inspect.signature(func).parameters[name].default


def _show(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(str(x) for x in default)
    return str(default)


def _field_option(f: dataclasses.Field, default: Any, section: str | None) -> Callable:
    """The click option of one config field (None when not given), its default shown as
    ``[default: …]``: the field's own, or the help's ``(default: …)`` remark."""
    name, dest = f.name.replace("_", "-"), f.name
    text = f.metadata.get("help", "")
    if "choices" in f.metadata:
        text += f" ({' or '.join(f.metadata['choices'])})"
    text, shown = split_default(text)
    kw: dict[str, Any] = {"cls": HelpOption, "section": section, "default": None}
    kind = f.metadata.get("type") or type(default)
    if kind is bool:
        flag = f.metadata.get("flag", f"--{name}/--no-{name}")
        shown = shown or ("on" if default else "off")
        return click.option(flag, dest, help=text, default_text=shown, **kw)
    if shown is None and default is not None:
        shown = _show(default)
    if isinstance(default, tuple):
        text, kind = text + "; comma-separated", str
    return click.option(f"--{name}", dest, type=kind, help=text, default_text=shown, **kw)


def dataclass_options(
    cls: type, skip: Iterable[str] = (), section: str | Callable[[str], str] | None = None
) -> Callable[[Callable], Callable]:
    """A decorator adding one ``--field-name`` option per field of ``cls``, passed to the
    command under the field's name (None when not given, so defaults and config files stay
    in charge); the dataclass checks the values. ``section``: the options' help section,
    or a function of the field name giving it."""
    skip = set(skip)

    def decorate(func: Callable) -> Callable:
        defaults = cls()
        for f in reversed(dataclasses.fields(cls)):
            if f.name not in skip:
                where = section(f.name) if callable(section) else section
                func = _field_option(f, getattr(defaults, f.name), where)(func)
        return func

    return decorate


def _config_section(name: str) -> Callable[[str], str]:
    """The help section of a field of the training-config section ``name``."""
    home = CONFIG_SECTIONS[name]
    return lambda field_name: CLOSED_LOOP if field_name in CLOSED_LOOP_FIELDS else home


def config_options(func: Callable) -> Callable:
    """Decorate a command with one ``--field-name`` option per training-config field."""
    for section, cls in reversed(list(SECTIONS.items())):
        func = dataclass_options(cls, SPECIAL, _config_section(section))(func)
    return func


def allow_unfinished_option(func: Callable) -> Callable:
    """The ``--allow-unfinished`` flag of the commands that read trained runs; it is passed
    on as their Python function's ``allow_unfinished`` (:func:`rundir.require_finished`)."""
    return click.option(
        "--allow-unfinished",
        cls=HelpOption,
        section=RUN,
        is_flag=True,
        help="accept a run that has not finished (no final_model.pt, e.g. stopped by Ctrl-C); "
        "its checkpoint stands in for the final weights",
    )(func)


# --------------------------------------------------------------------------- commands


@click.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--policy",
    type=click.Choice(["random"]),
    default=None,
    help="without RUN_DIR: uniformly random actions (the default then)",
)
@click.option(
    "--episodes",
    type=click.IntRange(min=1),
    default=default_of(render_run, "episodes"),
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("episode.gif"),
    show_default=True,
    help="an animated .gif (.mp4 needs ffmpeg, which is not installed: refused)",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="with RUN_DIR: the trained seed shown (default: the run's first); "
    "with --policy random: the first reset seed (default 0)",
)
@click.option(
    "--eval-seed",
    type=int,
    default=None,
    help="with RUN_DIR: the evaluation seed whose start states are played, as in "
    f"`soo-marl evaluate` (default {DEFAULT_EVAL_SEEDS[0]})",
)
@click.option(
    "--first-episode",
    type=click.IntRange(min=0),
    default=default_of(render_run, "first_episode"),
    show_default=True,
    help="with RUN_DIR: start at this start state of the evaluation seed",
)
@click.option(
    "--against",
    default=None,
    help="with RUN_DIR: blue from another run (cross-play, same seed index; same number of "
    "seeds and environment apart from the reward) or scripted: to_goal, to_fake, still",
)
@click.option("--blind", is_flag=True, help="with RUN_DIR: blue plays blinded to red")
@click.option(
    "--baseline",
    type=click.Choice(["deceptive", "honest"]),
    default=None,
    help="with --policy random: the reward variant (default deceptive)",
)
@click.option(
    "--sight-radius",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"with --policy random: the sight radius (default {PAPER_SIGHT_RADIUS:g})",
)
@allow_unfinished_option
def render(
    run_dir: Path | None,
    policy: str | None,
    episodes: int,
    out: Path,
    seed: int | None,
    eval_seed: int | None,
    first_episode: int,
    against: str | None,
    blind: bool,
    baseline: str | None,
    sight_radius: float | None,
    allow_unfinished: bool,
) -> None:
    """Write an animated GIF of episodes of a trained RUN_DIR (red and blue from the run,
    or blue as --against / --blind say), or of random actions (--policy random).

    Each frame shows the arena, the goal and the fake landmark, both agents with their
    sight circles, the trap, the step, the episode and a legend."""
    from soo_marl.rendering import render_random_episodes

    try:
        if run_dir is None:
            if against is not None or blind or eval_seed is not None or first_episode:
                raise ValueError(
                    "--against, --blind, --eval-seed and --first-episode need a RUN_DIR"
                )
            if allow_unfinished:
                raise ValueError("--allow-unfinished needs a RUN_DIR")
            path = render_random_episodes(
                out,
                episodes=episodes,
                seed=0 if seed is None else seed,
                baseline=baseline or "deceptive",
                sight_radius=PAPER_SIGHT_RADIUS if sight_radius is None else sight_radius,
            )
        else:
            if policy is not None or baseline is not None or sight_radius is not None:
                raise ValueError(
                    "--policy, --baseline and --sight-radius are for random actions; "
                    "a RUN_DIR brings its own policies and environment"
                )
            kwargs = {} if eval_seed is None else {"eval_seed": eval_seed}
            path = render_run(
                run_dir,
                out,
                seed=seed,
                episodes=episodes,
                against=against,
                blind=blind,
                first_episode=first_episode,
                allow_unfinished=allow_unfinished,
                **kwargs,
            )
    except ValueError as exc:
        fail(exc)
    click.echo(f"wrote {path}")


def fail(exc: Exception) -> None:
    """One clear line on stderr and a non-zero exit."""
    raise click.ClickException(str(exc))


def run_task(task: Task) -> Any:
    """Run a command's task (its notes on stderr); a ValueError or OSError is one clear
    line and a non-zero exit."""
    try:
        return task.run(log=lambda line: click.echo(line, err=True))
    except (ValueError, OSError) as exc:
        fail(exc)


def report_run(result: Any, total: int, resume: bool, finished: str) -> None:
    """Echo ``finished``, or after a Ctrl-C that stopped the run early, where it stopped,
    where its checkpoint is and how to continue it, and exit with status
    :data:`INTERRUPTED` (the run is unfinished: no final model)."""
    if not result.interrupted or result.episodes_done >= total:  # Ctrl-C in the last batch
        click.echo(finished)
        return
    again = "the same command" + ("" if resume else " plus --resume")
    click.echo(interruption(result, total, f"continue with {again}"))
    raise click.exceptions.Exit(INTERRUPTED)


def interrupted(exc: BaseException) -> None:
    """After a Ctrl-C that stopped a command early: its one line, and exit status
    :data:`INTERRUPTED`."""
    click.echo(str(exc))
    raise click.exceptions.Exit(INTERRUPTED)


def _run_option(*args: Any, **kwargs: Any) -> Callable:
    """A hand-written option of the Run section of ``train --help``."""
    return click.option(*args, cls=HelpOption, section=RUN, **kwargs)


def seeds_value(text: str | None) -> int | tuple[int, ...] | None:
    """``--seeds``: a bare number N is a count (seeds 0..N-1), anything else seeds and
    ranges such as ``0-7,12`` (:func:`parse_seed_ranges`)."""
    if text is None or text.strip().isdigit():
        return None if text is None else int(text)
    return tuple(parse_seed_ranges(text, "--seeds"))


@click.command(cls=SectionedCommand, sections=(RUN, ENV, CLOSED_LOOP, LEARNER), first=TRAIN_FIRST)
@_run_option("--baseline", type=click.Choice(["deceptive", "honest"]), required=True)
@_run_option(
    "--seeds",
    "seeds_text",
    default=None,
    metavar="N|LIST",
    default_text=str(len(DEFAULT_SEEDS)),
    help="the seeds to train: a count N (seeds 0..N-1), or seeds and ranges such as 8-15 "
    "or 0-3,12 (one seed S: S-S)",
)
@_run_option("--seed", "seed_list", type=int, multiple=True, hidden=True)  # = --seeds S,T
@_run_option("--first-seed", type=click.IntRange(min=0), default=0, hidden=True)  # K-(K+N-1)
@_run_option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    default_text="runs/<baseline>",
    help="output folder",
)
@_run_option("--resume", is_flag=True, help="continue the run in --run-dir exactly")
@_run_option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML with env/maddpg/run sections (options override it)",
)
@_run_option(
    "--print-config",
    is_flag=True,
    help="print the resolved config (--config file and options) as YAML that --config "
    "reads, and exit without training",
)
@_run_option("--quiet", is_flag=True, help="no progress bar")
@config_options
def train(
    baseline, seeds_text, seed_list, first_seed, run_dir, resume, config_file, print_config,
    quiet, **options,
):  # fmt: skip
    """Train S seeds of MADDPG (deceptive or honest baseline) in one process."""
    try:
        given = {"baseline": baseline, "seeds": seeds_value(seeds_text), "seed": seed_list}
        given |= {"first_seed": first_seed, "config": config_file}
        task = TrainTask.from_options(
            {**options, **given}, run_dir or Path("runs") / baseline, resume=resume,
            progress=not quiet,
        )  # fmt: skip
    except ValueError as exc:
        fail(exc)
    if print_config:
        text = yaml.safe_dump(task.config.to_dict(), sort_keys=False, default_flow_style=None)
        click.echo(text, nl=False)
        return
    result = run_task(task)
    took = f"{result.wall_time_s:.0f} s"
    finished = f"finished {result.episodes_done} episodes per seed in {took}: {result.run_dir}"
    report_run(result, task.config.run.episodes, resume, finished)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--episodes",
    type=int,
    default=default_of(EvaluateTask, "episodes"),
    show_default=True,
    help="episodes per evaluation seed",
)
@click.option(
    "--eval-seeds",
    type=str,
    default=" ".join(str(s) for s in default_of(EvaluateTask, "eval_seeds")),
    show_default=True,
    help="evaluation seeds (space- or comma-separated)",
)
@click.option(
    "--device",
    default=RunConfig.device,
    show_default=True,
    help="auto (CUDA when available), cpu, cuda",
)
@click.option(
    "--cross-with",
    "cross_with",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    cls=HelpOption,
    default_text="every other run",
    help="cross-play only with the reds of these runs (repeatable; each must also be one of RUNS)",
)
@click.option("--quiet", is_flag=True, help="no progress bar and no summary table")
@allow_unfinished_option
def evaluate(runs, episodes, eval_seeds, device, cross_with, quiet, allow_unfinished):
    """Deterministic evaluation, blue-centric probes and cross-play of trained RUNS.

    Writes eval/metrics.json, eval/trajectories.npz and eval/grids.npz into each run."""
    from soo_marl import rundir
    from soo_marl.evaluate import format_summary

    options = {"episodes": episodes, "eval_seeds": eval_seeds, "device": device}
    options |= {"cross_with": cross_with, "allow_unfinished": allow_unfinished}
    try:
        task = EvaluateTask.from_options(options, runs, progress=not quiet)
    except ValueError as exc:
        fail(exc)
    results = run_task(task)
    if not quiet:
        click.echo(format_summary(results))
    for r in results.values():
        click.echo(f"wrote {rundir.eval_dir(r['run'])}/ ({r['label']})")


#: The help sections of ``finetune``.
TUNE = "Fine-tuning"


def _tune_option(*args: Any, **kwargs: Any) -> Callable:
    """A hand-written option of the Run section of ``finetune --help``."""
    return click.option(*args, cls=HelpOption, section=RUN, **kwargs)


@click.command(
    cls=SectionedCommand,
    sections=(RUN, TUNE),
    first=("parent", "soo", "episodes", "run_dir", "resume", "device", "kernels", "sight_radius"),
)
@_tune_option(
    "--from",
    "parent",
    type=click.Path(path_type=Path),
    required=True,
    help="run dir of a trained deceptive baseline",
)
@_tune_option(
    "--soo/--no-soo",
    default=True,
    show_default=True,
    help="--no-soo is the anchor-only control (SOO weight 0)",
)
@_tune_option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    default_text="next to the parent, named after the condition: <parent>_soo, "
    "<parent>_nosoo, <parent>_authors-soo, …",
    help="output folder",
)
@_tune_option("--resume", is_flag=True, help="continue the fine-tuning in --run-dir exactly")
@_tune_option("--device", default=RunConfig.device, show_default=True, help="auto, cpu, cuda")
@_tune_option(
    "--sight-radius",
    type=float,
    default=None,
    default_text="the parent's",
    help="must match the parent's (checked)",
)
@_tune_option(
    "--kernels",
    default=None,
    default_text="the parent's",
    help=f"the learner's numerics ({' or '.join(KERNELS)}; see train --kernels)",
)
@_tune_option("--quiet", is_flag=True, help="no progress bar")
@allow_unfinished_option
@dataclass_options(FinetuneConfig, section=lambda name: RUN if name == "episodes" else TUNE)
def finetune(
    parent, soo, run_dir, resume, device, sight_radius, kernels, quiet, allow_unfinished, **options
):
    """SOO fine-tuning of every seed of a deceptive baseline (or its --no-soo control)."""
    given = {"soo": soo, "device": device, "kernels": kernels}
    given |= {"sight_radius": sight_radius, "allow_unfinished": allow_unfinished}
    try:
        task = FinetuneTask.from_options(
            {**options, **given}, parent, run_dir, resume=resume, progress=not quiet
        )
    except ValueError as exc:
        fail(exc)
    result = run_task(task)
    finished = f"fine-tuned {result.episodes_done} episodes per seed: {result.run_dir}"
    report_run(result, task.ft.episodes, resume, finished)


@click.command()
@click.option("--deceptive", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--honest", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--soo", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--no-soo", "no_soo", type=click.Path(exists=True, path_type=Path), required=True)
@click.option(
    "--classifier",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="classifier JSON of `soo-marl classify`",
)
@click.option(
    "--figures",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="folder of `soo-marl plot`",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="report file"
)
@click.option("--title", default=default_of(ReportTask, "title"), show_default=True)
@click.option("--scale", default="", help="a sentence on the scale of the runs")
@click.option("--command", "command_line", default="", help="the command that made the runs")
def report(deceptive, honest, soo, no_soo, classifier, figures, out, title, scale, command_line):
    """report.md of four evaluated conditions: the paper's claims as measured, tables,
    figures, and how the numbers were made (versions, machine, wall times)."""
    runs = {"deceptive": deceptive, "honest": honest, "soo": soo, "no-soo": no_soo}
    try:
        task = ReportTask(runs, classifier, figures, out, title, scale, command_line)
    except ValueError as exc:
        fail(exc)
    path = run_task(task)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="also prune runs that have not finished")
def prune(runs, force):
    """Free disk: drop the replay buffers from finished RUNS' checkpoints (hundreds of MB
    each). The runs still evaluate, plot and serve as parents with --fresh-buffer; they can
    no longer be resumed exactly or fine-tuned from their buffer."""
    from soo_marl import rundir

    total = 0
    try:
        for run in runs:
            saved = rundir.prune_buffer(run, force=force)
            total += saved
            click.echo(f"{run}: {saved / 1e6:,.0f} MB freed")
    except ValueError as exc:
        fail(exc)
    click.echo(f"total: {total / 1e6:,.0f} MB freed")


@click.group()
def bench() -> None:
    """Speed and memory benchmarks (print figures; --json for machine-readable output)."""


@bench.command("env")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=default_of(bench_env, "repeats"),
    show_default=True,
)
@click.option(
    "--steps",
    type=click.IntRange(min=50),
    default=default_of(bench_env, "steps"),
    show_default=True,
    help="env steps per repeat and setting (at least one 50-step episode)",
)
def bench_env_cmd(as_json: bool, repeats: int, steps: int) -> None:
    """Env-steps/s of the PettingZoo env, the batched core and mpe2."""
    from soo_marl.bench import format_env_report

    result = bench_env(repeats=repeats, steps=steps)
    click.echo(json.dumps(result, indent=2) if as_json else format_env_report(result))


@bench.command("learner")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=default_of(bench_learner, "repeats"),
    show_default=True,
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=default_of(bench_learner, "rounds"),
    show_default=True,
)
@click.option("--device", default=default_of(bench_learner, "device"), show_default=True)
@click.option(
    "--seeds",
    "seed_counts",
    multiple=True,
    type=click.IntRange(min=1),
    help="stacked seed counts to measure (repeatable); default 1, 8, 32 (CUDA: 1, 8, 64, 256)",
)
@click.option(
    "--reference/--no-reference",
    default=True,
    show_default=True,
    help="also measure the reference kernels at every seed count",
)
def bench_learner_cmd(
    as_json: bool,
    repeats: int,
    rounds: int,
    device: str,
    seed_counts: tuple[int, ...],
    reference: bool,
) -> None:
    """Seed-updates/s of stacked MADDPG, its share of the matrix-product peak at its own
    shapes and of the machine's float32 limit, vs a per-seed loop of 8."""
    from soo_marl.bench_learner import format_learner_report

    result = bench_learner(
        seed_counts=seed_counts or None,
        rounds=rounds,
        repeats=repeats,
        device=device,
        reference=reference,
    )
    click.echo(json.dumps(result, indent=2) if as_json else format_learner_report(result))


@bench.command("memory")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=default_of(memory_harness, "seeds"),
    show_default=True,
    help="stacked seeds of the learner",
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=default_of(memory_harness, "capacity"),
    show_default=True,
    help="transitions per seed in the full replay buffer (default: the learner's buffer_size)",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=default_of(memory_harness, "rounds"),
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="folder for the checkpoint the harness writes",
)
def bench_memory_cmd(as_json: bool, seeds: int, capacity: int, rounds: int, out: Path) -> None:
    """Peak resident memory of a --seeds learner with a full replay buffer: after filling
    it, after --rounds update rounds, after writing the checkpoint."""
    from soo_marl.bench_learner import format_memory_report

    result = memory_harness(out, seeds=seeds, capacity=capacity, rounds=rounds)
    click.echo(json.dumps(result, indent=2) if as_json else format_memory_report(result))


@click.command("stack-models")
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--seeds",
    "seed_text",
    required=True,
    help="the seeds to keep, in this order: numbers and ranges, e.g. 0-31 or 8-15,3",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def stack_models(runs: tuple[Path, ...], seed_text: str, out: Path) -> None:
    """Join the final weights of RUNS (one config trained on different seeds) into one
    weights-only run OUT holding --seeds; a seed held by several runs comes from the first
    (docs/spec.md §2.7: seeds train independently of their stack)."""
    try:
        task = StackTask(runs, tuple(parse_seed_ranges(seed_text, "--seeds")), out)
    except ValueError as exc:
        fail(exc)
    path = run_task(task)
    click.echo(f"wrote {path}: seeds {list(task.seeds)}")


@click.command("compare-runs")
@click.argument("a_out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("b_out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="also write every comparison and the verdict to this JSON file",
)
def compare_runs(a_out: Path, b_out: Path, json_path: Path | None) -> None:
    """Are two reproductions statistically the same? A_OUT and B_OUT are `soo-marl
    reproduce --out` folders of the same preset and seeds (other code, kernels or CPU):
    Welch 95% intervals of A − B per run and measure, Holm over all comparisons."""
    from soo_marl.analysis.compare import compare_reproductions, format_reproduction_comparison

    try:
        result = compare_reproductions(a_out, b_out)
    except (ValueError, FileNotFoundError) as exc:
        fail(exc)
    click.echo(format_reproduction_comparison(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1) + "\n")


def _parse_episodes(values: tuple[str, ...]) -> list[int]:
    """Numbers of episodes from repeated and/or comma/space-separated --episodes values."""
    try:
        return [int(x) for v in values for x in v.replace(",", " ").split()]
    except ValueError as exc:
        raise click.BadParameter(f"not a list of integers: {' '.join(values)}") from exc


@click.command()
@click.option(
    "--deceptive",
    type=click.Path(path_type=Path),
    required=True,
    multiple=True,
    help="evaluated deceptive run (repeatable: runs pair up in order with --honest)",
)
@click.option(
    "--honest",
    type=click.Path(path_type=Path),
    required=True,
    multiple=True,
    help="evaluated honest run (repeatable)",
)
@click.option(
    "--episodes",
    "episodes",
    multiple=True,
    help="numbers of episodes N (repeatable or comma-separated; default 1,100,200,…,1500, "
    "clipped to the episodes per evaluation seed)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="output folder (default: the (first) deceptive run's eval/)",
)
@click.option(
    "--pool-eval-seeds",
    is_flag=True,
    help="a unit is a trained seed with episodes from all evaluation seeds (default: a unit "
    "is a trained seed × evaluation seed pair)",
)
@click.option(
    "--rows",
    default=default_of(ClassifyTask, "rows"),
    show_default=True,
    help="SOO values of every out-of-sight step, or of those before the trap only",
)
@click.option(
    "--keep-trap-flag",
    is_flag=True,
    help="the SOO value whose other observation keeps the trap flag (default: zeroed, as "
    "the paper)",
)
@click.option(
    "--all-variants",
    is_flag=True,
    help="the variants (all rows / pre-trap rows / flag kept) side by side in one JSON and "
    "one figure",
)
@allow_unfinished_option
def classify(
    deceptive: tuple[Path, ...],
    honest: tuple[Path, ...],
    episodes: tuple[str, ...],
    out: Path | None,
    pool_eval_seeds: bool,
    rows: str,
    keep_trap_flag: bool,
    all_variants: bool,
    allow_unfinished: bool,
) -> None:
    """SOO classifier accuracy vs number of evaluation episodes (honest vs deceptive)."""
    from soo_marl.analysis.classify import format_table

    try:
        n_episodes = tuple(_parse_episodes(episodes))
        task = ClassifyTask(
            deceptive, honest, out, n_episodes, pool_eval_seeds, rows, keep_trap_flag,
            all_variants, allow_unfinished,
        )  # fmt: skip
    except ValueError as exc:
        fail(exc)
    result, paths = run_task(task)
    for r in result if isinstance(result, list) else [result]:
        click.echo(format_table(r) + "\n")
    click.echo("wrote " + ", ".join(str(p) for p in paths))


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("figures"),
    show_default=True,
    help="output folder for the PNG and PDF files",
)
@click.option(
    "--classifier",
    "classifier_json",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="classifier.json of `soo-marl classify` (accuracy curve)",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["png", "pdf", "svg"]),
    multiple=True,
    help="file formats (repeatable; default png and pdf)",
)
def plot(
    runs: tuple[Path, ...], out: Path, classifier_json: Path | None, formats: tuple[str, ...]
) -> None:
    """Figures 2-4, probes, classifier curve and learning curves of evaluated RUNS."""
    paths = run_task(PlotTask(runs, out, classifier_json, formats))
    click.echo(f"wrote {len(paths)} files to {out}")
