"""What a study's stages probably cost: each stage's task estimates itself from its typed
fields (:meth:`soo_marl.tasks.Task.estimate`, constants measured on this project's 2-core
machine, docs/performance.md); here the study supplies the configs of runs that do not
exist yet, and its ``resources`` override the estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soo_marl.config import TrainConfig
from soo_marl.sweep.spec import Study
from soo_marl.tasks import Task


def stage_costs(study: Study, tasks: dict[str, Task]) -> dict[str, dict[str, Any]]:
    """Per stage: ``seconds`` (its estimated wall time) and the resources to declare —
    ``cpus``, ``gpus``, ``memory_gb`` — with the study file's ``resources`` on top."""
    known: dict[Path, TrainConfig] = {}
    out: dict[str, dict[str, Any]] = {}
    for s in study.order():
        task = tasks[s.name]
        config = task.run_config(known)
        if task.makes_run and config is not None:
            known[task.output] = config
        e = task.estimate(known)
        res: dict[str, Any] = {"cpus": e.cpus, "gpus": 0.0, "memory_gb": round(e.memory_gb, 2)}
        res.update(s.resources)
        res["cpus"] = int(res["cpus"])
        out[s.name] = {"seconds": e.seconds, **res}
    return out
