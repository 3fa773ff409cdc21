"""Command-line interface: parses options and delegates to the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from soo_marl import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="soo-marl")
def main() -> None:
    """soo-marl: train deceptive and honest agents, fine-tune with Self-Other Overlap,
    and measure deception (Carauleanu et al., arXiv 2412.16325)."""


@main.command()
@click.option("--policy", type=click.Choice(["random"]), default="random", show_default=True)
@click.option("--episodes", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("episode.gif"),
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--baseline", type=click.Choice(["deceptive", "honest"]), default="deceptive", show_default=True
)
@click.option(
    "--sight-radius", type=click.FloatRange(min=0, min_open=True), default=0.125, show_default=True
)
def render(
    policy: str, episodes: int, out: Path, seed: int, baseline: str, sight_radius: float
) -> None:
    """Write an animated GIF of episodes played by POLICY."""
    from soo_marl.rendering import render_random_episodes

    path = render_random_episodes(
        out, episodes=episodes, seed=seed, baseline=baseline, sight_radius=sight_radius
    )
    click.echo(f"wrote {path}")


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


if __name__ == "__main__":  # pragma: no cover
    main()
