"""Click options generated from the config dataclasses, so every field is settable.

Each option's help is the field's own ``metadata["help"]``; ``metadata["choices"]``
restricts a string field to some values, and ``metadata["flag"]`` names a boolean's
on/off switches (default ``--name/--no-name``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from soo_marl.config import SECTIONS, TrainConfig, load_yaml

#: Fields of the training config with dedicated options (not generated).
SPECIAL = {"baseline", "seeds", "max_cycles"}


def _show(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(str(x) for x in default)
    return str(default)


def dataclass_options(
    cls: type, dest_prefix: str, skip: Iterable[str] = (), tag: str = ""
) -> Callable[[Callable], Callable]:
    """A decorator adding one ``--field-name`` option per field of ``cls``, passed to the
    command as ``<dest_prefix>__<field>`` (None when not given, so defaults and config
    files stay in charge)."""
    skip = set(skip)

    def decorate(func: Callable) -> Callable:
        defaults = cls()
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            default = getattr(defaults, f.name)
            name = f.name.replace("_", "-")
            dest = f"{dest_prefix}__{f.name}"
            text = f.metadata.get("help", "")
            explained = default is None or "default:" in text
            help_ = f"{tag}{text}" + ("" if explained else f" (default: {_show(default)})")
            kind = f.metadata.get("type") or type(default)
            if kind is bool:
                flag = f.metadata.get("flag", f"--{name}/--no-{name}")
                opt = click.option(flag, dest, default=None, help=help_)
            elif isinstance(default, tuple):
                opt = click.option(
                    f"--{name}", dest, type=str, default=None, help=help_ + "; comma-separated"
                )
            elif "choices" in f.metadata:
                kind = click.Choice(list(f.metadata["choices"]))
                opt = click.option(f"--{name}", dest, type=kind, default=None, help=help_)
            else:
                opt = click.option(f"--{name}", dest, type=kind, default=None, help=help_)
            func = opt(func)
        return func

    return decorate


def config_options(func: Callable) -> Callable:
    """Decorate a command with one ``--field-name`` option per training-config field."""
    for section, cls in reversed(list(SECTIONS.items())):
        func = dataclass_options(cls, section, SPECIAL, tag=f"[{section}] ")(func)
    return func


def given(options: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The options of one prefix that were given on the command line, by field name."""
    out = {}
    for key, value in options.items():
        if value is not None and key.startswith(prefix + "__"):
            out[key.split("__", 1)[1]] = value
    return out


def build_config(
    options: dict[str, Any],
    config_file: Path | None = None,
    baseline: str | None = None,
    seeds: tuple[int, ...] | None = None,
) -> TrainConfig:
    """Defaults ← config file ← command-line options (later wins)."""
    data: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    if config_file is not None:
        loaded = load_yaml(config_file)
        unknown = set(loaded) - set(SECTIONS) - {"meta"}
        if unknown:
            raise ValueError(
                f"{config_file}: unknown section(s) {sorted(unknown)}; "
                f"allowed: {', '.join(SECTIONS)}"
            )
        for section in data:
            part = loaded.get(section) or {}
            if not isinstance(part, dict):
                raise ValueError(f"{config_file}: section {section!r} must be a mapping")
            data[section].update(part)
    for section, cls in SECTIONS.items():
        defaults = cls()
        for name, value in given(options, section).items():
            if isinstance(getattr(defaults, name), tuple):
                value = parse_int_list(value, f"--{name.replace('_', '-')}")
            data[section][name] = value
    if baseline is not None:
        data["env"]["baseline"] = baseline
    if seeds:
        data["run"]["seeds"] = tuple(seeds)
    return TrainConfig.from_dict(data)


def parse_int_list(text: str, option: str) -> tuple[int, ...]:
    """Integers from a comma- or space-separated list; a clear error naming ``option``."""
    try:
        return tuple(int(v) for v in str(text).replace(",", " ").split())
    except ValueError:
        raise ValueError(f"{option} takes integers, comma-separated: got {text!r}") from None


def parse_seeds(
    count: int | None, explicit: tuple[int, ...], first: int = 0
) -> tuple[int, ...] | None:
    """``--seeds N`` means seeds first..first+N-1; ``--seed`` may be repeated; not both."""
    if count is not None and explicit:
        raise click.UsageError("give either --seeds N or --seed S (repeatable), not both")
    if first and count is None:
        raise click.UsageError("--first-seed goes with --seeds N")
    if count is not None:
        if count <= 0:
            raise click.BadParameter("--seeds must be positive")
        return tuple(range(first, first + count))
    return tuple(explicit) or None
