"""``soo-marl reproduce``: the whole pipeline (train, fine-tune, evaluate, classify, plot,
report) in one resumable command. Its presets ``quick``, ``paper`` and ``test`` are the
presets of one study file, ``studies/reproduce.yaml`` (shipped with the package), run by
the study engine of :mod:`soo_marl.sweep`, so finished stages are skipped on a second
invocation."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from soo_marl.config import RunConfig
from soo_marl.provenance import PROVENANCE, provenance
from soo_marl.sweep import Study, load_study, run_study

#: Presets of ``reproduce``: the ``presets`` of its study file (the first is the default).
PRESETS = ("quick", "paper", "test")


def study_file() -> Path:
    """The study file of ``reproduce`` (installed with the package from ``studies/``)."""
    return Path(str(resources.files("soo_marl.studies") / "reproduce.yaml"))


def preset_study(
    preset: str,
    seeds: int | None = None,
    sight_radius: float | None = None,
    device: str = RunConfig.device,
    kernels: str | None = None,
) -> Study:
    """A preset's study with its parameters overridden where given (each value is checked
    where it is defined, when the study's tasks are built: ``RunConfig``, ``EnvConfig``,
    ``MADDPGConfig``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    given = {"device": device, "seeds": seeds, "sight_radius": sight_radius, "kernels": kernels}
    return load_study(study_file(), {k: v for k, v in given.items() if v is not None}, preset)


def record_start(command: str, device: str) -> Callable[[Study, Path], None]:
    """What a study records when its first stage runs: versions, machine, revision
    (``provenance.json``) and the command (``command.txt``)."""

    def start(study: Study, out: Path) -> None:
        if not (out / PROVENANCE).exists():
            (out / PROVENANCE).write_text(json.dumps(provenance(device), indent=1))
        if not (out / "command.txt").exists():
            (out / "command.txt").write_text(command + "\n")

    return start


def reproduce(
    out: str | Path = "runs/reproduce",
    preset: str = "quick",
    seeds: int | None = None,
    sight_radius: float | None = None,
    device: str = RunConfig.device,
    log: Callable[[str], None] = print,
    progress: bool = True,
    prune_buffers: bool = True,
    max_parallel: int = 2,
    memory_gb: float | None = None,
    kernels: str | None = None,
) -> Path:
    """Run every stage of a preset into ``out`` (skipping finished ones); returns
    ``out/report.md``.

    ``seeds`` and ``sight_radius`` default to the preset's; ``kernels`` (the learner's
    numerics, ``MADDPGConfig.kernels``) to the learner's default. Raises ValueError for an
    unknown preset, a non-positive seed count or radius, and when ``out`` holds a study
    with other settings. ``progress`` prints a line from running stages every minute;
    ``prune_buffers`` drops each run's replay buffer once no stage needs it;
    ``max_parallel`` independent stages run at the same time (the presets give their
    trainings and fine-tunings one CPU thread each, so 2 fills a 2-core machine; results
    do not depend on it), as far as their estimated memory fits in ``memory_gb`` (default:
    the memory available when the call starts; ``run_study``).
    """
    study = preset_study(preset, seeds, sight_radius, device, kernels)
    p = study.parameters
    command = (
        f"soo-marl reproduce --preset {preset} --seeds {p['seeds']} --sight-radius "
        f"{p['sight_radius']:g} --out {shlex.quote(str(out))} --device {device}"
    ) + (f" --kernels {kernels}" if kernels else "")
    run_study(
        study,
        out,
        log=log,
        on_start=record_start(command, device),
        stage_progress=progress,
        prune_buffers=prune_buffers,
        max_parallel=max_parallel,
        memory_gb=memory_gb,
    )
    report = Path(out) / "report.md"
    log(f"report: {report}")
    return report
