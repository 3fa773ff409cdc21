"""The run directory: the one module that knows its layout, its metadata and how to read it.

A run directory (``runs/<name>/``) holds:

- ``config.yaml``: the run's :class:`~soo_marl.config.TrainConfig` and a ``meta`` block;
- ``checkpoint.pt``: everything needed to resume (networks, optimisers, buffers, RNG);
- ``final_model.pt``: weights only (actors and critics), written when the run finishes (a
  run without it is *unfinished*, and what reads trained runs refuses it unless asked:
  :func:`require_finished`);
- ``history.jsonl``: one row of per-seed scalars per log interval; ``tb/seed_<s>/``:
  TensorBoard logs;
- ``provenance.jsonl``: machine and package versions of each start or resume;
  ``summary.json``: the run's steady speed and efficiency when it last stopped;
- ``eval/metrics.json``, ``eval/trajectories.npz``, ``eval/grids.npz``: what
  ``soo-marl evaluate`` measured.

``meta`` says what the run is: ``kind`` ("train" or "finetune"), ``baseline`` (the blue
reward it was trained with), and for fine-tuning its ``condition``, the parent and the
fine-tuning settings. Checkpoints are read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch

from soo_marl.agents.maddpg import MADDPG
from soo_marl.config import TrainConfig, load_yaml, save_yaml

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "final_model.pt"
#: One line per start or resume of a run: machine, code revision, package versions.
PROVENANCE_LOG = "provenance.jsonl"
#: A run's speed when it last stopped: steady-state seed-updates/s, threads, efficiency.
SUMMARY = "summary.json"
HISTORY = "history.jsonl"
TENSORBOARD = "tb"
EVAL = "eval"
METRICS = "metrics.json"
TRAJECTORIES = "trajectories.npz"
GRIDS = "grids.npz"
#: Version of the checkpoint and model-file layout.
FORMAT = 1

#: Kinds of run.
TRAIN, FINETUNE = "train", "finetune"
#: Conditions of the standard pipeline, in display order; fine-tuning variants add more.
BASELINES = ("deceptive", "honest")
SOO, NO_SOO = "soo", "no-soo"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (another run's, missing, corrupt)."""


# --------------------------------------------------------------------------- metadata


def train_meta(baseline: str) -> dict[str, Any]:
    """``meta`` of a baseline trained from scratch."""
    return {"kind": TRAIN, "baseline": baseline}


def condition(meta: dict[str, Any]) -> str:
    """The condition a run stands for: a fine-tuning's ``condition``, else its baseline."""
    return str(meta.get("condition") or meta.get("baseline") or "run")


def label(meta: dict[str, Any], sight_radius: float | None) -> str:
    """Short display name, e.g. "deceptive r0.125" or "no-soo r0.5"."""
    name = condition(meta)
    return name if sight_radius is None else f"{name} r{sight_radius:g}"


def finetune_dir(parent: str | Path, condition_name: str) -> Path:
    """Default run directory of a fine-tuning: next to its parent, named after the
    condition (``<parent>_soo``, ``<parent>_nosoo``, ``<parent>_authors-soo``, …)."""
    parent = Path(parent)
    suffix = condition_name.replace(NO_SOO, "nosoo").replace("+", "_")
    return parent.with_name(f"{parent.name}_{suffix}")


def unique_labels(labels: Sequence[str], run_dirs: Sequence[str | Path]) -> list[str]:
    """``labels``, with the run directory's name appended where two are the same."""
    if len(set(labels)) == len(labels):
        return list(labels)
    return [f"{lb} ({Path(d).name})" for lb, d in zip(labels, run_dirs, strict=True)]


# --------------------------------------------------------------------------- config.yaml


def config_path(run_dir: str | Path) -> Path:
    """Where a run's config.yaml is."""
    return Path(run_dir) / CONFIG


def write_config(run_dir: str | Path, config: TrainConfig, meta: dict[str, Any]) -> None:
    """Write config.yaml: ``meta`` first, then the config sections."""
    save_yaml({"meta": meta, **config.to_dict()}, config_path(run_dir))


def read_config(run_dir: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """A run's config and meta from its config.yaml."""
    saved = load_yaml(config_path(run_dir))
    meta = dict(saved.pop("meta", None) or {})
    return TrainConfig.from_dict(saved), meta


def prepare(
    run_dir: str | Path, config: TrainConfig, meta: dict[str, Any], resume: bool
) -> dict[str, Any]:
    """Create a new run directory, or check the one to resume; returns the saved meta.

    A new run refuses a directory that holds another run. A resumed run must have the
    same kind, baseline, learning settings and seeds (only episodes, device and
    checkpoint/log intervals may change) and, for fine-tuning, the same fine-tuning
    settings apart from the episode count; its config.yaml is then rewritten.
    """
    run_dir = Path(run_dir)
    cfg_path, ckpt = config_path(run_dir), run_dir / CHECKPOINT
    if resume:
        if not cfg_path.exists():
            raise RunDirError(f"--resume: {run_dir} holds no run (no {CONFIG})")
        old_config, old_meta = read_config(run_dir)
        _check_resumable(run_dir, old_config, old_meta, config, meta)
        write_config(run_dir, config, meta)
        return old_meta
    if cfg_path.exists() or ckpt.exists():
        other = read_config(run_dir)[1].get("baseline") if cfg_path.exists() else None
        if other and other != meta.get("baseline"):
            raise RunDirError(
                f"{run_dir} holds a {other!r} run; choose another --run-dir for "
                f"{meta.get('baseline')!r}"
            )
        raise RunDirError(
            f"{run_dir} already holds a run; use --resume to continue it or choose another "
            "--run-dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config, meta)
    return meta


def _check_resumable(
    run_dir: Path, old: TrainConfig, old_meta: dict, new: TrainConfig, meta: dict
) -> None:
    if old_meta.get("kind", TRAIN) != meta.get("kind", TRAIN):
        raise RunDirError(f"--resume: {run_dir} holds a {old_meta.get('kind')!r} run")
    if old_meta.get("baseline") != meta.get("baseline"):
        raise RunDirError(
            f"{run_dir} holds a {old_meta.get('baseline')!r} run, not {meta.get('baseline')!r}"
        )
    if "finetune" in meta:
        a, b = dict(old_meta.get("finetune") or {}), dict(meta["finetune"])
        a.pop("episodes", None), b.pop("episodes", None)
        if a != b:
            raise RunDirError(f"--resume: fine-tuning settings differ from {run_dir}")
    if old.learning_dict() != new.learning_dict() or old.run.seeds != new.run.seeds:
        raise RunDirError(
            f"--resume: the config differs from the one in {run_dir / CONFIG} "
            "(only episodes, device, checkpoint/log intervals may change)"
        )


# --------------------------------------------------------------------------- checkpoints


def record_provenance(run_dir: str | Path, device: str, episode: int) -> None:
    """Append this session's machine and package versions to the run's provenance.jsonl
    (one line each time the run starts or resumes)."""
    from soo_marl.provenance import run_provenance

    with open(Path(run_dir) / PROVENANCE_LOG, "a") as f:
        f.write(json.dumps(run_provenance(device, episode)) + "\n")


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    """Write the run's summary.json (its speed; rewritten at each stop of the run)."""
    (Path(run_dir) / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """Load a checkpoint or model file safely (``weights_only=True``); clear error if not."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise RunDirError(f"no checkpoint at {path}") from None
    except Exception as exc:  # corrupt, truncated or not a checkpoint
        raise RunDirError(f"cannot read checkpoint {path}: {exc.__class__.__name__}") from exc


def find_run_file(run_dir: str | Path, names: tuple[str, ...]) -> Path:
    """The first of ``names`` that exists in ``run_dir`` (e.g. final model or checkpoint)."""
    for name in names:
        if (Path(run_dir) / name).exists():
            return Path(run_dir) / name
    raise RunDirError(f"{run_dir} holds no {' or '.join(names)}")


def header(
    model: MADDPG, agents: Sequence[str], config: TrainConfig, meta: dict[str, Any]
) -> dict[str, Any]:
    """What every checkpoint and model file starts with: layout, seeds, config and meta."""
    return {
        "format": FORMAT,
        "seeds": list(model.seeds),
        "agents": list(agents),
        "obs_dims": list(model.obs_dims),
        "act_dims": list(model.act_dims),
        "config": json.dumps({"meta": meta, **config.to_dict()}),
    }


def save_checkpoint(run_dir: str | Path, head: dict[str, Any], body: dict[str, Any]) -> Path:
    """Atomically write ``checkpoint.pt`` (header plus the trainer's resumable state)."""
    path = Path(run_dir) / CHECKPOINT
    atomic_torch_save({**head, **body}, path)
    return path


def export_model(
    run_dir: str | Path, model: MADDPG, head: dict[str, Any], kind: str, episode: int
) -> Path:
    """Write ``final_model.pt``: actors and critics, no targets, optimisers or buffers."""
    path = Path(run_dir) / FINAL_MODEL
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("target")}
    atomic_torch_save({**head, "kind": kind, "episode": episode, "model": weights}, path)
    return path


def prune_buffer(run_dir: str | Path, force: bool = False) -> int:
    """Drop the replay buffer from a finished run's checkpoint; returns the bytes saved.

    The networks, optimiser states, RNG streams and counters stay, so the run still loads
    everywhere; what is lost is an exact ``--resume`` and a fine-tuning that reuses this
    run's buffer (both then refuse with a clear message). A run without its final model
    is refused unless ``force``; a checkpoint already pruned saves 0.
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return 0
    if not has_model(run_dir) and not force:
        raise RunDirError(f"{run_dir} has not finished (no {FINAL_MODEL}); pruning would "
                          "make it impossible to resume")  # fmt: skip
    state = load_checkpoint(path)
    if "buffer" not in state:
        return 0
    before = path.stat().st_size
    del state["buffer"]
    state["buffer_pruned"] = True
    atomic_torch_save(state, path)
    return before - path.stat().st_size


def _learning(raw: dict[str, Any]) -> dict[str, Any]:
    """What a run learns, as the package reads its config today (fields added since it was
    written take their defaults, so an older run and a newer one with the same settings
    compare equal): env, maddpg and meta, without the run section."""
    cfg = TrainConfig.from_dict({k: v for k, v in raw.items() if k != "meta"}).to_dict()
    return {"env": cfg["env"], "maddpg": cfg["maddpg"], "meta": raw.get("meta", {})}


def stack_models(runs: Sequence[str | Path], seeds: Sequence[int], out: str | Path) -> Path:
    """Join the weights of runs trained with the same config on different seeds, keeping
    ``seeds`` in the order given; returns the ``OUT/final_model.pt`` written (weights
    only, beside its ``config.yaml``).

    Seeds train independently of the seeds stacked beside them (docs/spec.md §2.7), so a
    model file of seeds 0–11 and one of seeds 12–23 hold the same members as one 24-seed
    run. A seed held by several runs is taken from the first run named. Runs must learn
    the same thing (env, maddpg and meta as the package reads their configs today);
    ``meta.joined_from`` records the runs when there are several.
    """
    if not runs:
        raise RunDirError("stack_models needs at least one run")
    if not seeds:
        raise RunDirError("stack_models needs at least one seed")
    parts = [load_checkpoint(find_run_file(r, (FINAL_MODEL,))) for r in runs]
    first = parts[0]
    learning = [_learning(json.loads(p["config"])) for p in parts]
    if any(x != learning[0] for x in learning):
        raise RunDirError("the runs differ in what they learn (env/maddpg/meta)")
    members: dict[int, tuple[dict, int]] = {}
    for p in parts:
        for i, s in enumerate(p["seeds"]):
            members.setdefault(int(s), (p, i))  # the first run that holds a seed gives it
    missing = [s for s in seeds if s not in members]
    if missing:
        raise RunDirError(f"seeds {missing} are in none of the runs")
    n_agents = len(first["agents"])
    rows = {s: slice(n_agents * members[s][1], n_agents * (members[s][1] + 1)) for s in seeds}
    model = {
        key: torch.cat([members[s][0]["model"][key][rows[s]] for s in seeds])
        for key in first["model"]
    }
    raw = json.loads(first["config"])
    raw["run"]["seeds"] = [int(s) for s in seeds]
    if len(runs) > 1:
        raw.setdefault("meta", {})["joined_from"] = [str(r) for r in runs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FINAL_MODEL
    stacked = dict(first, model=model, seeds=[int(s) for s in seeds], config=json.dumps(raw))
    atomic_torch_save(stacked, path)
    meta = raw.pop("meta", {})
    write_config(out, TrainConfig.from_dict(raw), meta)
    return path


def has_model(run_dir: str | Path) -> bool:
    """The run finished (its final model is written)."""
    return (Path(run_dir) / FINAL_MODEL).exists()


class UnfinishedRunError(RunDirError):
    """A run that has not finished (no final model), used where a finished one is needed."""


@dataclass(frozen=True)
class Unfinished:
    """A run directory that holds a run (a ``config.yaml`` or a ``checkpoint.pt``) but no
    ``final_model.pt``: stopped by Ctrl-C, killed, or still training."""

    run_dir: Path
    #: "train" or "finetune".
    kind: str
    #: Episodes per seed in its checkpoint (0 without one; None if it cannot be read).
    episodes_done: int | None
    #: Episodes per seed it was started for (None if its config cannot be read).
    episodes_planned: int | None

    def message(self) -> str:
        """The one line that refuses it."""
        if self.episodes_done is not None and self.episodes_planned is not None:
            done = f"{self.episodes_done} of {self.episodes_planned} episodes per seed, "
        else:
            done = ""
        return (
            f"{self.run_dir} is unfinished ({done}no {FINAL_MODEL}); finish it with "
            f"`soo-marl {self.kind} … --resume` (the command that started it, plus --resume), "
            "or pass --allow-unfinished"
        )


def unfinished(run_dir: str | Path) -> Unfinished | None:
    """What an unfinished run has done; None for a finished run (its final model is
    written) and for a directory that holds no run at all (its readers say what is
    missing). The checkpoint is read memory-mapped, for its episode count only."""
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT
    if has_model(run_dir) or not (config_path(run_dir).exists() or ckpt.exists()):
        return None
    kind, done, planned = TRAIN, None, None
    try:
        if config_path(run_dir).exists():
            config, meta = read_config(run_dir)
            kind, planned = meta.get("kind", TRAIN), config.run.episodes
        done = int(load_checkpoint(ckpt, mmap=True).get("episode", 0)) if ckpt.exists() else 0
    except ValueError:  # a config or checkpoint that cannot be read: no counts
        pass
    return Unfinished(run_dir, str(kind), done, planned)


def require_finished(run_dir: str | Path, allow_unfinished: bool = False) -> Unfinished | None:
    """The one check that keeps unfinished runs out of what reads trained runs (evaluate,
    a fine-tuning's parent, render, classify): an unfinished run (:func:`unfinished`) is
    refused with an :class:`UnfinishedRunError` of one line, unless ``allow_unfinished``;
    returns what it has done then (None for a finished run)."""
    found = unfinished(run_dir)
    if found is not None and not allow_unfinished:
        raise UnfinishedRunError(found.message())
    return found


@dataclass
class LoadedModel:
    """A trained stack of seeds with the config it was trained under."""

    model: MADDPG
    config: TrainConfig
    meta: dict
    path: Path

    @property
    def seeds(self) -> list[int]:
        """Trained seeds, in stack order."""
        return self.model.seeds

    @property
    def run_dir(self) -> Path:
        """The run directory the weights came from."""
        return self.path.parent

    @property
    def label(self) -> str:
        """Display name of the run (:func:`label`)."""
        return label(self.meta, self.config.env.sight_radius)


def read_header(state: dict) -> tuple[TrainConfig, dict[str, Any]]:
    """Config and meta stored in a checkpoint or model file."""
    raw = json.loads(state["config"])
    meta = raw.pop("meta", {})
    return TrainConfig.from_dict(raw), meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load ``final_model.pt``/``checkpoint.pt`` (a file, or a run dir holding one)."""
    path = Path(path)
    if path.is_dir():
        path = find_run_file(path, (FINAL_MODEL, CHECKPOINT))
    state = load_checkpoint(path)
    config, meta = read_header(state)
    model = MADDPG(config.maddpg, state["seeds"], state["obs_dims"], state["act_dims"])
    weights = state["model"] if "model" in state else state["learner"]["model"]
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not k.startswith("target") for k in missing):
        raise RunDirError(f"{path}: weights do not match the model ({unexpected or missing})")
    if missing:  # weights-only export: targets start as copies of the networks
        model.copy_targets()
    meta.setdefault("kind", state.get("kind", TRAIN))
    meta["episode"] = int(state.get("episode", 0))
    return LoadedModel(model.to(device).eval(), config, meta, path)


# --------------------------------------------------------------------------- history


def history_path(run_dir: str | Path) -> Path:
    """Where a run's history.jsonl is."""
    return Path(run_dir) / HISTORY


def append_history(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one logged row."""
    with open(history_path(run_dir), "a") as f:
        f.write(json.dumps(row) + "\n")


def write_history(run_dir: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite the history with ``rows`` (e.g. those up to a resumed checkpoint)."""
    with open(history_path(run_dir), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_history(run_dir: str | Path) -> list[dict[str, Any]] | None:
    """Rows of a run's history.jsonl, or None without one."""
    path = history_path(run_dir)
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- eval files


def eval_dir(run_dir: str | Path) -> Path:
    """Where ``soo-marl evaluate`` writes a run's results."""
    return Path(run_dir) / EVAL


def read_npz(path: str | Path, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file (all, or only ``keys``); no pickles."""
    with np.load(Path(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files if keys is None or k in keys}


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write compressed arrays (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # no key is allow_pickle
    return path


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``eval/metrics.json``, or None if it was not evaluated."""
    path = eval_dir(run_dir) / METRICS
    return json.loads(path.read_text()) if path.exists() else None


def require_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``eval/metrics.json``; FileNotFoundError telling what to run if absent."""
    m = read_metrics(run_dir)
    if m is None:
        raise FileNotFoundError(f"{run_dir}: no {EVAL}/{METRICS} (run soo-marl evaluate first)")
    return m


def write_metrics(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write ``eval/metrics.json``."""
    path = eval_dir(run_dir) / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return path


@overload
def read_trajectories(
    run_dir: str | Path, keys: Sequence[str] | None = None, *, required: Literal[True]
) -> dict[str, np.ndarray]: ...
@overload
def read_trajectories(
    run_dir: str | Path, keys: Sequence[str] | None = None, required: bool = False
) -> dict[str, np.ndarray] | None: ...
def read_trajectories(
    run_dir: str | Path, keys: Sequence[str] | None = None, required: bool = False
) -> dict[str, np.ndarray] | None:
    """A run's ``eval/trajectories.npz`` (all arrays or only ``keys``); None if absent,
    or FileNotFoundError with ``required``."""
    path = eval_dir(run_dir) / TRAJECTORIES
    if not path.exists():
        if required:
            raise FileNotFoundError(
                f"{run_dir}: no {EVAL}/{TRAJECTORIES} (run `soo-marl evaluate` first)"
            )
        return None
    return read_npz(path, keys)


def read_grids(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """A run's ``eval/grids.npz``, or None."""
    path = eval_dir(run_dir) / GRIDS
    return read_npz(path) if path.exists() else None
