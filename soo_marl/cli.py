"""Command-line interface: parses options and delegates to the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from soo_marl import __version__
from soo_marl.cli_options import (
    build_config,
    config_options,
    dataclass_options,
    given,
    parse_int_list,
    parse_seeds,
)
from soo_marl.finetune import FinetuneConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="soo-marl")
def main() -> None:
    """soo-marl: train deceptive and honest agents, fine-tune with Self-Other Overlap,
    and measure deception (Carauleanu et al., arXiv 2412.16325)."""


@main.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--policy",
    type=click.Choice(["random"]),
    default=None,
    help="without RUN_DIR: uniformly random actions (the default then)",
)
@click.option("--episodes", type=click.IntRange(min=1), default=2, show_default=True)
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
    "`soo-marl evaluate` (default 155)",
)
@click.option(
    "--first-episode",
    type=click.IntRange(min=0),
    default=0,
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
    help="with --policy random: the sight radius (default 0.125)",
)
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
) -> None:
    """Write an animated GIF of episodes of a trained RUN_DIR (red and blue from the run,
    or blue as --against / --blind say), or of random actions (--policy random).

    Each frame shows the arena, the goal and the fake landmark, both agents with their
    sight circles, the trap, the step, the episode and a legend."""
    from soo_marl.rendering import render_random_episodes, render_run

    try:
        if run_dir is None:
            if against is not None or blind or eval_seed is not None or first_episode:
                raise ValueError(
                    "--against, --blind, --eval-seed and --first-episode need a RUN_DIR"
                )
            path = render_random_episodes(
                out,
                episodes=episodes,
                seed=0 if seed is None else seed,
                baseline=baseline or "deceptive",
                sight_radius=0.125 if sight_radius is None else sight_radius,
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
                **kwargs,
            )
    except ValueError as exc:
        _fail(exc)
    click.echo(f"wrote {path}")


def _fail(exc: Exception) -> None:
    """One clear line on stderr and a non-zero exit."""
    raise click.ClickException(str(exc))


@main.command()
@click.option("--baseline", type=click.Choice(["deceptive", "honest"]), required=True)
@click.option(
    "--seeds", "seed_count", type=int, default=None, help="train seeds 0..N-1 (default 8)"
)
@click.option("--seed", "seed_list", type=int, multiple=True, help="a seed to train (repeatable)")
@click.option(
    "--first-seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="with --seeds N: train seeds K..K+N-1 (e.g. one group of a large study)",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="output folder (default runs/<baseline>)",
)
@click.option("--resume", is_flag=True, help="continue the run in --run-dir exactly")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML with env/maddpg/run sections (options override it)",
)
@click.option(
    "--max-cycles",
    "env__max_cycles",
    type=int,
    default=None,
    help="[env] episode length in steps (default: 50)",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
@config_options
def train(
    baseline, seed_count, seed_list, first_seed, run_dir, resume, config_file, quiet, **options
):
    """Train S seeds of MADDPG (deceptive or honest baseline) in one process."""
    from soo_marl.train import train as run_training

    try:
        seeds = parse_seeds(seed_count, seed_list, first_seed)
        config = build_config(options, config_file, baseline=baseline, seeds=seeds)
        run_dir = run_dir or Path("runs") / baseline
        mc = config.maddpg
        if config.run.episodes < mc.noise_decay_episodes and not quiet:
            end = float(mc.noise_scale(config.run.episodes))
            click.echo(
                f"note: exploration noise falls from {mc.noise_scale_start:g} over "
                f"{mc.noise_decay_episodes:,} episodes, so this {config.run.episodes:,}-episode "
                f"run ends at scale {end:.3g} (--noise-decay-episodes sets the decay)",
                err=True,
            )
        result = run_training(config, run_dir, resume=resume, progress=not quiet)
    except ValueError as exc:
        _fail(exc)
    state = "interrupted at" if result.interrupted else "finished"
    took = f"{result.wall_time_s:.0f} s"
    click.echo(f"{state} {result.episodes_done} episodes per seed in {took}: {result.run_dir}")


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--episodes",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="episodes per evaluation seed",
)
@click.option(
    "--eval-seeds",
    type=str,
    default="155 714 1908 1549 1195 1812 542 2844",
    show_default=True,
    help="evaluation seeds (space- or comma-separated)",
)
@click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when available), cpu, cuda"
)
@click.option(
    "--cross-with",
    "cross_with",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="cross-play only with the reds of these runs (repeatable; each must also be one "
    "of RUNS; default: every other run)",
)
@click.option("--quiet", is_flag=True, help="no progress bar and no summary table")
def evaluate(runs, episodes, eval_seeds, device, cross_with, quiet):
    """Deterministic evaluation, blue-centric probes and cross-play of trained RUNS.

    Writes eval/metrics.json, eval/trajectories.npz and eval/grids.npz into each run."""
    from soo_marl import rundir
    from soo_marl.config import resolve_device
    from soo_marl.evaluate import evaluate_runs, format_summary

    try:
        seeds = list(parse_int_list(eval_seeds, "--eval-seeds"))
        dev = str(resolve_device(device))
        results = evaluate_runs(
            runs, episodes, seeds, device=dev, progress=not quiet, cross_with=cross_with or None
        )
    except ValueError as exc:
        _fail(exc)
    if not quiet:
        click.echo(format_summary(results))
    for r in results.values():
        click.echo(f"wrote {rundir.eval_dir(r['run'])}/ ({r['label']})")


@main.command()
@click.option(
    "--from",
    "parent",
    type=click.Path(path_type=Path),
    required=True,
    help="run dir of a trained deceptive baseline",
)
@click.option(
    "--soo/--no-soo",
    default=True,
    show_default=True,
    help="--no-soo is the anchor-only control (SOO weight 0)",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="default: next to the parent, named after the condition (<parent>_soo, "
    "<parent>_nosoo, <parent>_authors-soo, …)",
)
@click.option("--resume", is_flag=True, help="continue the fine-tuning in --run-dir exactly")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda")
@click.option(
    "--sight-radius",
    "env__sight_radius",
    type=float,
    default=None,
    help="must match the parent's (checked)",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
@dataclass_options(FinetuneConfig, "ft")
def finetune(parent, soo, run_dir, resume, device, quiet, **options):
    """SOO fine-tuning of every seed of a deceptive baseline (or its --no-soo control)."""
    from soo_marl import rundir
    from soo_marl.finetune import finetune as run_finetune

    try:
        settings = given(options, "ft")
        if not soo:
            settings["soo_weight"] = 0.0
        ft = FinetuneConfig(**settings)
        run_dir = run_dir or rundir.finetune_dir(parent, ft.condition)
        overrides = {k: v for k, v in options.items() if v is not None and k.startswith("env__")}
        result = run_finetune(
            parent, ft, run_dir, resume=resume, progress=not quiet, overrides=overrides,
            device=device,
        )  # fmt: skip
    except ValueError as exc:
        _fail(exc)
    click.echo(f"fine-tuned {result.episodes_done} episodes per seed: {result.run_dir}")


@main.command()
@click.option(
    "--preset", type=click.Choice(["quick", "paper", "test"]), default="quick", show_default=True
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="number of seeds (default: the preset's)",
)
@click.option(
    "--sight-radius",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="red's sight radius (default: the preset's; quick 0.5, paper 0.125)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/reproduce"),
    show_default=True,
)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--keep-buffers",
    is_flag=True,
    help="keep every run's replay buffer in its checkpoint (default: drop each once no stage "
    "needs it; the quick preset then needs 22 MB of disk instead of 1.8 GB)",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="independent stages (the two baselines, the two fine-tunings) run at the same "
    "time, one CPU thread each; 1 halves the peak memory, results are the same",
)
@click.option("--quiet", is_flag=True, help="only a line per stage (no progress lines)")
def reproduce(preset, seeds, sight_radius, out, device, keep_buffers, max_parallel, quiet):
    """The whole pipeline: baselines, SOO and --no-soo fine-tuning, evaluation,
    classifier, figures and report.md. Finished stages are skipped when run again."""
    from soo_marl.reproduce import reproduce as run_reproduce

    try:
        run_reproduce(
            out, preset, seeds, sight_radius, device, log=click.echo, progress=not quiet,
            prune_buffers=not keep_buffers, max_parallel=max_parallel,
        )  # fmt: skip
    except ValueError as exc:
        _fail(exc)


@main.command()
@click.argument("study_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="folder of the study's runs (on a cluster: storage every node mounts)",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
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
    default=1,
    show_default=True,
    help="local executor: stages run at the same time",
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
@click.option("--dry-run", is_flag=True, help="print the stage graph and an estimate, run nothing")
def sweep(study_file, out, executor, address, max_parallel, assignments, prune_buffers, dry_run):
    """Run the stages of STUDY_FILE (train, finetune, evaluate, classify, plot, report) in
    dependency order; finished stages are skipped when run again (studies/README.md)."""
    from soo_marl.sweep import StudyError, load_study, run_study

    try:
        study = load_study(study_file, _assignments(assignments))
        run_study(
            study, out, executor, address, max_parallel, dry_run, log=click.echo,
            prune_buffers=prune_buffers,
        )  # fmt: skip
    except (StudyError, ValueError) as exc:
        _fail(exc)


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


@main.command()
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
@click.option("--title", default="soo-marl reproduction", show_default=True)
@click.option("--scale", default="", help="a sentence on the scale of the runs")
@click.option("--command", "command_line", default="", help="the command that made the runs")
def report(deceptive, honest, soo, no_soo, classifier, figures, out, title, scale, command_line):
    """report.md of four evaluated conditions: the paper's claims as measured, tables,
    figures, and how the numbers were made (versions, machine, wall times)."""
    from soo_marl.analysis.report import write_report_files

    try:
        path = write_report_files(
            out,
            {"deceptive": deceptive, "honest": honest, "soo": soo, "no-soo": no_soo},
            classifier,
            figures,
            title=title,
            scale=scale,
            command=command_line,
        )
    except (ValueError, OSError) as exc:
        _fail(exc)
    click.echo(f"wrote {path}")


@main.command()
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
        _fail(exc)
    click.echo(f"total: {total / 1e6:,.0f} MB freed")


@main.group()
def bench() -> None:
    """Speed benchmarks (print figures; --json for machine-readable output)."""


@bench.command("env")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--steps",
    type=click.IntRange(min=50),
    default=20000,
    show_default=True,
    help="env steps per repeat and setting (at least one 50-step episode)",
)
def bench_env_cmd(as_json: bool, repeats: int, steps: int) -> None:
    """Env-steps/s of the PettingZoo env, the batched core and mpe2."""
    from soo_marl.bench import bench_env, format_env_report

    result = bench_env(repeats=repeats, steps=steps)
    click.echo(json.dumps(result, indent=2) if as_json else format_env_report(result))


@bench.command("learner")
@click.option("--json", "as_json", is_flag=True, help="print JSON only")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def bench_learner_cmd(as_json: bool, repeats: int, rounds: int, device: str) -> None:
    """Seed-updates/s of stacked MADDPG (S = 1, 8) vs a per-seed loop of 8."""
    from soo_marl.bench_learner import bench_learner, format_learner_report

    result = bench_learner(rounds=rounds, repeats=repeats, device=device)
    click.echo(json.dumps(result, indent=2) if as_json else format_learner_report(result))


def _parse_episodes(values: tuple[str, ...]) -> list[int]:
    """Numbers of episodes from repeated and/or comma/space-separated --episodes values."""
    try:
        return [int(x) for v in values for x in v.replace(",", " ").split()]
    except ValueError as exc:
        raise click.BadParameter(f"not a list of integers: {' '.join(values)}") from exc


@main.command()
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
    type=click.Choice(["all", "pre-trap"]),
    default="all",
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
def classify(
    deceptive: tuple[Path, ...],
    honest: tuple[Path, ...],
    episodes: tuple[str, ...],
    out: Path | None,
    pool_eval_seeds: bool,
    rows: str,
    keep_trap_flag: bool,
    all_variants: bool,
) -> None:
    """SOO classifier accuracy vs number of evaluation episodes (honest vs deceptive)."""
    from soo_marl.analysis.classify import (
        DEFAULT_N_EPISODES,
        classify_variants,
        format_table,
        write_result,
    )
    from soo_marl.analysis.classify import classify as run_classify

    try:
        n_episodes = _parse_episodes(episodes) if episodes else list(DEFAULT_N_EPISODES)
        if all_variants:
            result = classify_variants(deceptive, honest, n_episodes, pool_eval_seeds)
        else:
            result = run_classify(
                deceptive, honest, n_episodes, pool_eval_seeds, rows, keep_trap_flag
            )
        paths = write_result(result, out or deceptive[0] / "eval")
    except (ValueError, OSError) as exc:
        _fail(exc)
    for r in result if isinstance(result, list) else [result]:
        click.echo(format_table(r) + "\n")
    click.echo("wrote " + ", ".join(str(p) for p in paths))


@main.command()
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
    from soo_marl.analysis.plots import FORMATS, make_all

    try:
        paths = make_all(runs, out, classifier_json, log=click.echo, formats=formats or FORMATS)
    except (ValueError, OSError) as exc:
        _fail(exc)
    click.echo(f"wrote {len(paths)} files to {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
