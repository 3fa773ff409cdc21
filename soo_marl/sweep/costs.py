"""What a stage probably costs: wall time on a 2-core CPU machine and the resources to ask
a scheduler for. The constants were measured on this project's 2-core machine
(docs/performance.md); estimates scale them by episodes, seeds and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soo_marl import rundir
from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.config import RunConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.finetune import FinetuneConfig
from soo_marl.rollout import DEFAULT_EVAL_EPISODES
from soo_marl.rollout import DEFAULT_EVAL_SEEDS as _EVAL_SEEDS
from soo_marl.stage_kinds import KINDS
from soo_marl.sweep.spec import Stage, Study

#: Training wall seconds per episode for S stacked seeds: A + B·S (2 CPU cores; fit to
#: 8 seeds × 40,000 episodes in 747 s and the 1-seed update rate of bench learner).
TRAIN_A_S, TRAIN_B_S = 2.0e-3, 2.1e-3
#: Fine-tuning with the SOO/anchor terms costs this much more per episode.
FINETUNE_FACTOR = 1.3
#: Evaluation wall seconds per (trained seed × episode) for a run's own play, probes and
#: blind probe, and per (seed × episode) of one cross-play partner (fit to 4 runs × 8
#: seeds × 4,000 episodes with all-pairs cross-play in 83 s; evaluations with the later
#: probes take longer: 3 runs × 32 seeds × 4,000 episodes took 647 s, the model says 269 s).
EVAL_PER_SEED_EPISODE = 0.4e-3
CROSS_PER_SEED_EPISODE = 0.1e-3
#: Small stages.
SMALL = {"classify": 5.0, "plot": 10.0, "report": 2.0}
#: Replay memory per transition: joint obs 16 + actions 4 + rewards 2 + next obs 16 floats.
BYTES_PER_TRANSITION = 38 * 4
#: Memory besides the replay buffers (torch, networks, evaluation arrays).
BASE_MEMORY_GB = 1.0
#: What a stage that does not say runs: the defaults of the config dataclasses and of the
#: commands (never repeated here).
DEFAULT_SEEDS = len(RunConfig().seeds)
DEFAULT_EVAL_SEEDS = len(_EVAL_SEEDS)
DEFAULT_EPISODES = {
    "train": RunConfig().episodes,
    "finetune": FinetuneConfig().episodes,
    "evaluate": DEFAULT_EVAL_EPISODES,
}
DEFAULT_BUFFER_SIZE = MADDPGConfig().buffer_size
#: Steps per episode (transitions stored per seed and episode).
EPISODE_STEPS = EnvConfig().max_cycles


def _copied(stage: Stage) -> RunConfig | None:
    """The run section of a ``copy_from`` stage's trained run, when it can be read (so a
    study over committed parents is costed with their seeds); None otherwise."""
    if stage.copy_from is None:
        return None
    try:
        return rundir.read_config(Path(stage.copy_from))[0].run
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fresh_buffer(stage: Stage) -> bool:
    """A fine-tuning that starts with an empty replay buffer: FinetuneConfig's own rule
    (docs/spec.md §3.9) applied to the stage's options."""
    o = stage.options
    reuse = o.get("reuse-buffer", not o["fresh-buffer"] if "fresh-buffer" in o else None)
    given = {k: o[k] for k in ("reward", "style") if k in o}
    try:
        return not FinetuneConfig(reuse_buffer=reuse, **given).reuse_buffer
    except (TypeError, ValueError):  # options the command would refuse: cost as reused
        return False


def _seeds(stage: Stage, study: Study) -> int:
    if stage.kind == "finetune":
        return _seeds(study.stage(stage.refs["parent"]), study)
    copied = _copied(stage)
    if copied is not None:
        return len(copied.seeds)
    o = stage.options
    if "seeds" in o:
        return int(o["seeds"])
    if "seed" in o:
        return len(o["seed"]) if isinstance(o["seed"], list) else 1
    return DEFAULT_SEEDS


def _episodes(stage: Stage) -> int:
    return int(stage.options.get("episodes", DEFAULT_EPISODES[stage.kind]))


def estimate_seconds(stage: Stage, study: Study) -> float:
    """Expected wall seconds of ``stage`` with its default resources."""
    if stage.copy_from is not None:
        return 0.0
    if stage.kind in SMALL:
        return SMALL[stage.kind]
    if stage.kind in ("train", "finetune"):
        s = _seeds(stage, study)
        per_episode = TRAIN_A_S + TRAIN_B_S * s
        factor = FINETUNE_FACTOR if stage.kind == "finetune" else 1.0
        return _episodes(stage) * per_episode * factor
    runs = stage.refs["runs"]
    seeds = max(_seeds(study.stage(r), study) for r in runs)
    eval_seeds = stage.options.get("eval-seeds")
    k = len(str(eval_seeds).replace(",", " ").split()) if eval_seeds else DEFAULT_EVAL_SEEDS
    n = _episodes(stage) * k * seeds
    partners = len(stage.refs.get("cross_with") or runs)
    return len(runs) * n * (EVAL_PER_SEED_EPISODE + partners * CROSS_PER_SEED_EPISODE)


def memory_gb(stage: Stage, study: Study) -> float:
    """Peak resident memory to declare: the replay buffers (twice while a checkpoint is
    written; a fine-tuning also holds its parent's checkpoint) plus a base."""
    if stage.kind not in ("train", "finetune") or stage.copy_from is not None:
        return BASE_MEMORY_GB + (1.0 if stage.kind == "evaluate" else 0.0)
    root = stage if stage.kind == "train" else study.stage(stage.refs["parent"])
    capacity = int(root.options.get("buffer-size", DEFAULT_BUFFER_SIZE))
    if stage.kind == "finetune" and _fresh_buffer(stage):
        # its own transitions only (a checkpoint copy while written), no parent buffer
        per_seed = min(capacity, _episodes(stage) * EPISODE_STEPS) * BYTES_PER_TRANSITION
        return BASE_MEMORY_GB + 2 * _seeds(stage, study) * per_seed / 1e9
    per_seed = min(capacity, _episodes(root) * EPISODE_STEPS) * BYTES_PER_TRANSITION
    copies = 2 if stage.kind == "train" else 3
    return BASE_MEMORY_GB + copies * _seeds(stage, study) * per_seed / 1e9


def resources(stage: Stage, study: Study) -> dict[str, Any]:
    """cpus, gpus and memory_gb of a stage (the study file's ``resources`` override)."""
    cpus = KINDS[stage.kind].cpus
    out = {"cpus": cpus, "gpus": 0.0, "memory_gb": round(memory_gb(stage, study), 2)}
    out.update(stage.resources)
    out["cpus"] = int(out["cpus"])
    return out
