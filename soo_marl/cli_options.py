"""Click options generated from the config dataclasses, so every field is settable."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig, load_yaml
from soo_marl.envs.core import EnvConfig

SECTIONS = {"env": EnvConfig, "maddpg": MADDPGConfig, "run": RunConfig}
#: Fields with dedicated options (not generated).
SPECIAL = {"baseline", "seeds", "max_cycles"}


def _doc(cls: type, name: str) -> str:
    """The ``#:`` comment above a dataclass field, used as option help."""
    import inspect

    lines = inspect.getsource(cls).splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{name}:") and i > 0 and lines[i - 1].strip().startswith("#:"):
            return lines[i - 1].strip()[2:].strip()
    return ""


def config_options(func: Callable) -> Callable:
    """Decorate a command with one ``--field-name`` option per config field."""
    for section, cls in reversed(list(SECTIONS.items())):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in SPECIAL:
                continue
            default = getattr(cls(), f.name)
            opt = "--" + f.name.replace("_", "-")
            help_ = f"[{section}] {_doc(cls, f.name)} (default: {default})"
            if isinstance(default, bool):
                func = click.option(
                    f"{opt}/--no-{f.name.replace('_', '-')}",
                    f"{section}__{f.name}",
                    default=None,
                    help=help_,
                )(func)
            elif isinstance(default, tuple):
                func = click.option(
                    opt,
                    f"{section}__{f.name}",
                    type=str,
                    default=None,
                    help=help_ + " comma-separated",
                )(func)
            else:
                func = click.option(
                    opt, f"{section}__{f.name}", type=type(default), default=None, help=help_
                )(func)
    return func


def build_config(
    options: dict[str, Any],
    config_file: Path | None = None,
    baseline: str | None = None,
    seeds: tuple[int, ...] | None = None,
) -> TrainConfig:
    """Defaults ← config file ← command-line options (later wins)."""
    data: dict[str, dict[str, Any]] = {"env": {}, "maddpg": {}, "run": {}}
    if config_file is not None:
        loaded = load_yaml(config_file)
        for section in data:
            data[section].update(loaded.get(section, {}) or {})
    for key, value in options.items():
        if value is None or "__" not in key:
            continue
        section, name = key.split("__", 1)
        if isinstance(getattr(SECTIONS[section](), name), tuple):
            value = tuple(int(v) for v in str(value).split(",") if v.strip())
        data[section][name] = value
    if baseline is not None:
        data["env"]["baseline"] = baseline
    if seeds:
        data["run"]["seeds"] = tuple(seeds)
    return TrainConfig.from_dict(data)


def parse_seeds(count: int | None, explicit: tuple[int, ...]) -> tuple[int, ...] | None:
    """``--seeds N`` means seeds 0..N-1; ``--seed`` may be repeated; not both."""
    if count is not None and explicit:
        raise click.UsageError("give either --seeds N or --seed S (repeatable), not both")
    if count is not None:
        if count <= 0:
            raise click.BadParameter("--seeds must be positive")
        return tuple(range(count))
    return tuple(explicit) or None
