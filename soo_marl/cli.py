"""Command-line interface: the ``soo-marl`` group. It assembles the commands of
:mod:`soo_marl.commands` and adds the two that run studies (``reproduce`` and ``sweep``),
and ``analyze``, which parse their options and delegate to :mod:`soo_marl.reproduce` and
:mod:`soo_marl.sweep`. Nothing imports this module; it is the entry point."""

from __future__ import annotations

from pathlib import Path

import click

from soo_marl import __version__, commands
from soo_marl.agents.maddpg import KERNELS
from soo_marl.commands import default_of, fail, interrupted
from soo_marl.config import RunConfig
from soo_marl.reproduce import PRESETS
from soo_marl.reproduce import reproduce as run_reproduce
from soo_marl.sweep.run import EXECUTORS, run_study
from soo_marl.tasks import AnalysisTask


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="soo-marl")
def main() -> None:
    """soo-marl: train deceptive and honest agents, fine-tune with Self-Other Overlap,
    and measure deception (Carauleanu et al., arXiv 2412.16325)."""


@click.command()
@click.option("--preset", type=click.Choice(PRESETS), default=PRESETS[0], show_default=True)
@click.option("--seeds", type=int, default=None, help="number of seeds (default: the preset's)")
@click.option(
    "--sight-radius",
    type=float,
    default=None,
    help="red's sight radius (default: the preset's; quick 0.5, paper 0.125)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/reproduce"),
    show_default=True,
)
@click.option("--device", default=RunConfig.device, show_default=True)
@click.option(
    "--kernels",
    default=None,
    help=f"the learner's numerics in the trainings and fine-tunings ({' or '.join(KERNELS)}; "
    "train --kernels; default: the learner's)",
)
@click.option(
    "--keep-buffers",
    is_flag=True,
    help="keep every run's replay buffer in its checkpoint (default: drop each once no stage "
    "needs it; the quick preset then needs 164 MB of disk instead of about 4.8 GB)",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=default_of(run_reproduce, "max_parallel"),
    show_default=True,
    help="independent stages (the two baselines, the two fine-tunings) run at the same "
    "time, one CPU thread each, as far as their estimated memory fits in --memory-gb (a "
    "stage that does not fit waits for the running ones); 1 halves the peak memory, "
    "results are the same",
)
@click.option(
    "--memory-gb",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="memory the stages running at once may declare together (default: the memory "
    "available when the call starts)",
)
@click.option("--quiet", is_flag=True, help="only a line per stage (no progress lines)")
def reproduce(
    preset, seeds, sight_radius, out, device, kernels, keep_buffers, max_parallel, memory_gb, quiet
):
    """The whole pipeline: baselines, SOO and --no-soo fine-tuning, evaluation,
    classifier, figures and report.md. Finished stages are skipped when run again."""
    from soo_marl.sweep import StudyInterrupted

    try:
        run_reproduce(
            out, preset, seeds, sight_radius, device, log=click.echo, progress=not quiet,
            prune_buffers=not keep_buffers, max_parallel=max_parallel, memory_gb=memory_gb,
            kernels=kernels,
        )  # fmt: skip
    except ValueError as exc:
        fail(exc)
    except StudyInterrupted as exc:
        interrupted(exc)


@click.command()
@click.argument("study_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="folder of the study's runs (on a cluster: storage every node mounts)",
)
@click.option(
    "--executor",
    type=click.Choice(list(EXECUTORS)),
    default=default_of(run_study, "executor"),
    show_default=True,
    help="local: subprocesses on this machine; ray: one Ray task per stage",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster to join ('auto' for the one `ray start` made; default: RAY_ADDRESS, "
    "else a new local Ray instance)",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="local executor: stages run at the same time (default: one per usable core), as "
    "far as their estimated memory fits in --memory-gb (a stage that does not fit waits "
    "for the running ones); each gets an even share of the idle cores as torch threads, at "
    "most its declared cpus",
)
@click.option(
    "--memory-gb",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="local executor: memory the stages running at once may declare together "
    "(default: the memory available when the sweep starts)",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    help="override a study parameter: --set seeds=4 (repeatable; values read as YAML)",
)
@click.option(
    "--prune-buffers",
    is_flag=True,
    help="drop each run's replay buffer once no stage needs it (frees hundreds of MB per run; "
    "the run can then not be resumed exactly)",
)
@click.option(
    "--preset",
    default=None,
    help="for a study file with presets: the preset to run (default: its first)",
)
@click.option("--dry-run", is_flag=True, help="print the stage graph and an estimate, run nothing")
def sweep(
    study_file,
    out,
    executor,
    address,
    max_parallel,
    memory_gb,
    assignments,
    prune_buffers,
    preset,
    dry_run,
):
    """Run the stages of STUDY_FILE (train, finetune, evaluate, classify, plot, report) in
    dependency order; finished stages are skipped when run again (studies/README.md)."""
    from soo_marl.sweep import StudyError, StudyInterrupted, load_study

    try:
        study = load_study(study_file, _assignments(assignments), preset)
        run_study(
            study, out, executor, address, max_parallel, dry_run, log=click.echo,
            prune_buffers=prune_buffers, memory_gb=memory_gb,
        )  # fmt: skip
    except (StudyError, ValueError) as exc:
        fail(exc)
    except StudyInterrupted as exc:
        interrupted(exc)


@click.command()
@click.argument("study_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="the study's runs (its sweep --out); or give --arms-json",
)
@click.option(
    "--arms-json",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="judge again from a committed arms.json instead of the runs",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--rule", default=None, help="judge by this rule of the study module's RULES")
@click.option(
    "--name", default=default_of(AnalysisTask, "name"), show_default=True, help="files' name"
)
@click.option("--set", "assignments", multiple=True, help="override a study parameter (as sweep)")
def analyze(study_file, root, arms_json, out, rule, name, assignments):
    """The report of STUDY_FILE's analysis: block — arms.json, arms.md and the forest plot
    (verdicts by its rule, Holm within its families) from its runs or from an arms.json."""
    from soo_marl.sweep import StudyError, load_study

    try:
        if (root is None) == (arms_json is None):
            raise ValueError("give either --root (the study's runs) or --arms-json")
        study = load_study(study_file, _assignments(assignments))
        names = tuple(s.name for s in study.stages)
        task = AnalysisTask(
            study.analysis, study.families, names, root or Path("."), out, str(study_file),
            arms_json, rule, name,
        )  # fmt: skip
    except (StudyError, ValueError) as exc:
        fail(exc)
    click.echo(f"wrote {commands.run_task(task)}")


_RUN = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("probe-validate")
@click.argument("parents", type=_RUN)
@click.argument("control", type=_RUN)
@click.argument("pos", type=_RUN)
@click.argument("blind", type=_RUN)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="NEW COMMITTED: the regenerated arms' arms.json against the committed one",
)
def probe_validate(parents, control, pos, blind, out, compare):
    """Validate red-decodability probe v2 (docs/results/probe_v2.md): alpha, test-retest,
    margin and budget on PARENTS, then the blinded (BLIND), positive-control (POS against
    CONTROL) and doubled-red-slot checks; writes OUT/probe_v2.json."""
    from soo_marl.probe_validation import validate

    try:
        validate(parents, control, pos, blind, out, log=click.echo, compare=compare)
    except ValueError as exc:
        fail(exc)
    click.echo(f"wrote {out / 'probe_v2.json'}")


def _assignments(items: tuple[str, ...]) -> dict:
    """``key=value`` pairs, each value read as YAML (numbers, booleans, strings)."""
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


#: The commands of ``soo-marl``, in the order of its help.
COMMANDS = (
    commands.render,
    commands.train,
    commands.evaluate,
    commands.finetune,
    reproduce,
    sweep,
    analyze,
    probe_validate,
    commands.report,
    commands.prune,
    commands.stack_models,
    commands.compare_runs,
    commands.bench,
    commands.classify,
    commands.plot,
)
for _command in COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
