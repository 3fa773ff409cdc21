"""Run configuration: environment, MADDPG and run settings in one YAML-able object.

Every field of the config dataclasses carries its help text in ``metadata["help"]``; the
command line (:mod:`soo_marl.commands`) and the docs read it from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.envs.core import EnvConfig

DEFAULT_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)
DEVICES = ("auto", "cpu", "cuda")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RunConfig:
    """How a training run is executed (not what is learned)."""

    seeds: tuple[int, ...] = field(
        default=DEFAULT_SEEDS, metadata=_help("independently trained seeds, all in one process")
    )
    episodes: int = field(
        default=40_000, metadata=_help("episodes per seed (a multiple of envs_per_seed)")
    )
    envs_per_seed: int = field(
        default=10,
        metadata=_help(
            "parallel environments per seed: episodes run this many at a time, keeping one "
            "update round per 100 env steps of a seed"
        ),
    )
    device: str = field(
        default="auto", metadata=_help("auto (CUDA when available), cpu, cuda or cuda:N")
    )
    checkpoint_every: int = field(
        default=5_000,
        metadata=_help("episodes between checkpoints (a final one is always written)"),
    )
    log_every: int = field(default=200, metadata=_help("episodes between logged scalars"))
    torch_threads: int = field(
        default=0, metadata=_help("torch CPU threads (0: leave torch's default)")
    )

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds:
            raise ValueError("at least one seed is required")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        for name in ("episodes", "envs_per_seed", "checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads must be 0 or positive, got {self.torch_threads}")
        if self.episodes % self.envs_per_seed:
            raise ValueError(
                f"episodes ({self.episodes}) must be a multiple of envs_per_seed "
                f"({self.envs_per_seed})"
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; allowed: auto, cpu, cuda, cuda:N")


@dataclass
class TrainConfig:
    """Everything that determines a training run (with its seed list)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    maddpg: MADDPGConfig = field(default_factory=MADDPGConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists instead of tuples) for YAML."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from plain data; unknown sections or keys and wrong types are errors."""
        unknown = set(data) - set(SECTIONS)
        if unknown:
            raise ValueError(
                f"unknown config section(s) {sorted(unknown)}; allowed: {', '.join(SECTIONS)}"
            )
        return cls(**{s: build_section(c, data.get(s) or {}, s) for s, c in SECTIONS.items()})

    def learning_dict(self) -> dict[str, Any]:
        """The fields that determine what is learned (run/logging settings excluded)."""
        d = self.to_dict()
        return {"env": d["env"], "maddpg": d["maddpg"], "envs_per_seed": d["run"]["envs_per_seed"]}


#: The sections of a config file and their dataclasses.
SECTIONS: dict[str, type] = {"env": EnvConfig, "maddpg": MADDPGConfig, "run": RunConfig}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of the field's ``default`` (int, float, bool, str or a tuple of
    them); a clear ValueError naming ``where`` when it cannot be."""

    def fail() -> ValueError:
        kind = type(default).__name__ if not isinstance(default, tuple) else "list"
        return ValueError(f"{where} must be a {kind}, got {value!r}")

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise fail()
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        item = default[0] if default else value[0] if value else 0
        return tuple(coerce(v, item, where) for v in value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        if int(value) != value:
            raise fail()
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise fail()
        return value
    return value


def build_section(cls: type, data: dict[str, Any], section: str) -> Any:
    """One config dataclass from plain data, with unknown keys and wrong types refused."""
    if not isinstance(data, dict):
        raise ValueError(f"config section {section!r} must be a mapping, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(
            f"unknown {section} config field(s) {sorted(unknown)}; allowed: {sorted(names)}"
        )
    defaults = cls()
    kwargs = {k: coerce(v, getattr(defaults, k), f"{section}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def save_yaml(data: dict[str, Any], path: Path) -> None:
    """Write plain data as YAML atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (safe loader only); a ValueError of one line if it is not one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a YAML mapping")
    return data


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (identifies parent checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_device(name: str) -> torch.device:
    """Map "auto" to CUDA when available, else CPU; refuse CUDA where there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)
