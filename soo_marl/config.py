"""Run configuration: environment, MADDPG and run settings in one YAML-able object."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.envs.core import EnvConfig

DEFAULT_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)


@dataclass
class RunConfig:
    """How a training run is executed (not what is learned)."""

    #: Independently trained seeds, all run in one process.
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    #: Episodes per seed (SPEC §2: 40,000 for baselines).
    episodes: int = 40_000
    #: Parallel environments per seed (episodes run E at a time; the update ratio of one
    #: round per 100 env steps of a seed is kept).
    envs_per_seed: int = 10
    #: "auto" (CUDA when available), "cpu" or "cuda".
    device: str = "auto"
    #: Episodes between checkpoints (a final one is always written).
    checkpoint_every: int = 5_000
    #: Episodes between logged scalars.
    log_every: int = 200
    #: Torch CPU threads (0: leave torch's default).
    torch_threads: int = 0

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        if not self.seeds:
            raise ValueError("at least one seed is required")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}")
        for name in ("episodes", "envs_per_seed", "checkpoint_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.episodes % self.envs_per_seed:
            raise ValueError(
                f"episodes ({self.episodes}) must be a multiple of envs_per_seed "
                f"({self.envs_per_seed})"
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"unknown device {self.device!r}; allowed: auto, cpu, cuda")


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
        """Build from plain data; unknown keys are an error."""
        return cls(
            env=_build(EnvConfig, data.get("env", {}), "env"),
            maddpg=_build(MADDPGConfig, data.get("maddpg", {}), "maddpg"),
            run=_build(RunConfig, data.get("run", {}), "run"),
        )

    def learning_dict(self) -> dict[str, Any]:
        """The fields that determine what is learned (run/logging settings excluded)."""
        d = self.to_dict()
        return {"env": d["env"], "maddpg": d["maddpg"], "envs_per_seed": d["run"]["envs_per_seed"]}


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _build(cls: type, data: dict[str, Any], section: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {section} config field(s): {sorted(unknown)}")
    kwargs = {}
    for k, v in data.items():
        default = getattr(cls(), k) if k in names else None
        kwargs[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    return cls(**kwargs)


def save_yaml(data: dict[str, Any], path: Path) -> None:
    """Write plain data as YAML atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (safe loader only)."""
    data = yaml.safe_load(Path(path).read_text())
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
