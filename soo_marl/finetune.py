"""SOO fine-tuning of a deceptive baseline (docs/spec.md §3.1–§3.8), and its anchor-only control.

:func:`finetune` loads every seed of a deceptive parent and runs the training loop of
:mod:`soo_marl.train` with blue's actor objective extended by W·SOO + A·anchor, both
computed on the out-of-sight rows of each sampled batch. Everything else (critics, red,
the reward) continues as in training, for all seeds at once. Each extra term is an
:class:`~soo_marl.objectives.Objective` handed to the loop.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soo_marl import rundir, soo
from soo_marl.config import RunConfig, TrainConfig, file_sha256
from soo_marl.envs import core
from soo_marl.objectives import (
    AnchorTerm,
    AuthorsSooStep,
    BlindRed,
    FreezeRed,
    FrozenParent,
    Objective,
    SooTerm,
)
from soo_marl.train import Plan, TrainResult, TrainState, run_training

NOISE_MODES = ("continue", "restart")
#: "ours": SOO and anchor on the self-observation rows of every sampled batch;
#: "authors": the published code's separate action-level SOO step (docs/spec.md §3.11).
STYLES = ("ours", "authors")
#: The blue reward fine-tuning continues with ("honest" is the positive control).
REWARDS = ("deceptive", "honest")


@dataclass
class FinetuneConfig:
    """SOO fine-tuning settings (docs/spec.md §3.9)."""

    episodes: int = field(default=10_000, metadata={"help": "fine-tuning episodes per seed"})
    soo_weight: float = field(
        default=1.0,
        metadata={"help": "λ_soo, weight of the SOO loss (0: the control without SOO)"},
    )
    anchor_weight: float = field(
        default=1.0,
        metadata={"help": "λ_anchor, weight of the anchor loss against the frozen parent's blue"},
    )
    soo_layers: str | None = field(
        default=None,
        metadata={
            "help": "activations the SOO loss compares: h1h2 (both hidden layers), h2, action "
            "(default: h1h2; action with --style authors)",
            "choices": soo.SOO_LAYERS,
        },
    )
    soo_radius: float | None = field(
        default=None,
        metadata={
            "help": "R_soo: the fictitious red offset is drawn within this distance "
            "(default: the run's sight radius, blue's where §1.12 splits them)",
            "type": float,
        },
    )
    soo_rows: str = field(
        default="all",
        metadata={
            "help": "self observations: every out-of-sight row, or pre-trap ones only",
            "choices": soo.SOO_ROWS,
        },
    )
    keep_trap_flag: bool = field(
        default=False,
        metadata={"help": "the other observation keeps the trap flag (slots 8–9) of the self one"},
    )
    soo_distance: str | None = field(
        default=None,
        metadata={
            "help": "per-row SOO loss: mse, or log = the paper's log(MSE + 1e-25) (default: "
            "mse; log with --style authors)",
            "choices": soo.SOO_DISTANCES,
        },
    )
    soo_other: str = field(
        default="red",
        metadata={
            "help": "the other observation: red (a fictitious red in sight, on out-of-sight "
            "rows), sham-flag (the same rows with trap-flag slot 9 flipped: the sham "
            "control), role-swap (on rows with red in sight: blue's view from red's place)",
            "choices": soo.SOO_OTHERS,
        },
    )
    blind_red: bool = field(
        default=False,
        metadata={
            "help": "surgical blinding: blue's first-layer weights on every slot carrying red "
            "(its offset, and its relative velocity where blue observes it) set to 0 and "
            "kept there"
        },
    )
    reward: str = field(
        default="deceptive",
        metadata={
            "help": "blue's reward while fine-tuning (honest: the positive control)",
            "choices": REWARDS,
        },
    )
    style: str = field(
        default="ours",
        metadata={
            "help": "ours: SOO + anchor on replay batches; authors: the published code's "
            "separate action-level SOO step on the live observation of each update round",
            "choices": STYLES,
        },
    )
    freeze_red: bool = field(
        default=False, metadata={"help": "keep red's actor fixed (isolates blue's change)"}
    )
    noise: str | None = field(
        default=None,
        metadata={
            "help": "exploration noise: continue the parent's schedule (0 after its decay) or "
            "restart it from episode 0 (default: continue; restart with --style authors)",
            "choices": NOISE_MODES,
        },
    )
    reuse_buffer: bool | None = field(
        default=None,
        metadata={
            "help": "start from the parent's replay buffer when its checkpoint holds one, "
            "or empty (--fresh-buffer) (default: reuse; fresh with --style authors and with "
            "--reward honest, whose rewards differ from those stored)",
            "flag": "--reuse-buffer/--fresh-buffer",
            "type": bool,
        },
    )

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes must be positive, got {self.episodes}")
        if self.soo_weight < 0 or self.anchor_weight < 0:
            raise ValueError("SOO and anchor weights must be non-negative")
        authors = self.style == "authors"
        if self.soo_layers is None:
            self.soo_layers = "action" if authors else "h1h2"
        if self.soo_distance is None:
            self.soo_distance = "log" if authors else "mse"
        for name, allowed in (
            ("soo_layers", soo.SOO_LAYERS),
            ("soo_rows", soo.SOO_ROWS),
            ("soo_distance", soo.SOO_DISTANCES),
            ("soo_other", soo.SOO_OTHERS),
            ("reward", REWARDS),
            ("style", STYLES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; allowed: {', '.join(allowed)}"
                )
        if self.soo_radius is not None and not self.soo_radius > 0:
            raise ValueError("soo_radius must be positive")
        if self.noise is None:
            self.noise = "restart" if authors else "continue"
        if self.noise not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {self.noise!r}; allowed: {NOISE_MODES}")
        changes_reward = self.reward != "deceptive"
        if self.reuse_buffer is None:
            self.reuse_buffer = not (authors or changes_reward)
        if self.reuse_buffer and changes_reward:
            raise ValueError(
                "--reward honest cannot reuse the parent's buffer: its stored rewards are the "
                "deceptive ones (use --fresh-buffer)"
            )
        if authors and (
            self.soo_layers != "action"
            or self.soo_rows != "all"
            or self.soo_distance != "log"
            or self.keep_trap_flag
            or self.soo_other != "red"
        ):
            raise ValueError(
                "--style authors fixes the SOO form (action-level, every out-of-sight live "
                "observation, trap flag zeroed, log distance, a fictitious red): drop "
                "--soo-layers, --soo-rows, --soo-distance, --keep-trap-flag and --soo-other"
            )

    @property
    def condition(self) -> str:
        """The condition this fine-tuning stands for: "soo" or the "no-soo" control,
        prefixed "authors-" for the published style, suffixed "+honest-reward" for the
        positive control, "+sham-flag" or "+role-swap" for another other observation and
        "+blind-red" for surgical blinding."""
        name = rundir.SOO if self.soo_weight > 0 else rundir.NO_SOO
        if self.style == "authors":
            name = f"authors-{name}"
        if self.soo_weight > 0 and self.soo_other != "red":
            name = f"{name}+{self.soo_other}"
        if self.blind_red:
            name = f"{name}+blind-red"
        if self.reward == "honest":
            name = f"{name}+honest-reward"
        return name


@dataclass
class Parent:
    """A deceptive baseline to fine-tune: its best checkpoint, config and meta."""

    run_dir: Path
    path: Path
    config: TrainConfig
    meta: dict[str, Any]
    state: dict[str, Any]
    #: Set when the parent is unfinished (taken with ``allow_unfinished``).
    unfinished: rundir.Unfinished | None = None

    @property
    def episode(self) -> int:
        """Episodes the parent was trained for."""
        return int(self.state.get("episode", self.config.run.episodes))


def load_parent(parent: str | Path, allow_unfinished: bool = False) -> Parent:
    """The parent's full checkpoint (or, without one, its weights-only export) and config.

    Raises RunDirError when ``parent`` holds no trained run or not a deceptive baseline,
    and when it is unfinished (no final model; :func:`rundir.require_finished`) unless
    ``allow_unfinished``.
    """
    parent = Path(parent)
    if not rundir.config_path(parent).exists() and not rundir.has_model(parent):
        raise rundir.RunDirError(f"--from {parent}: no trained run there")
    unfinished = rundir.require_finished(parent, allow_unfinished)
    path = rundir.find_run_file(parent, (rundir.CHECKPOINT, rundir.FINAL_MODEL))
    state = rundir.load_checkpoint(path, mmap=True)  # the buffer is read only if reused
    if rundir.config_path(parent).exists():
        config, meta = rundir.read_config(parent)
    else:
        config, meta = rundir.read_header(state)
    if meta.get("baseline") != "deceptive" or meta.get("kind", rundir.TRAIN) != rundir.TRAIN:
        raise rundir.RunDirError(
            f"--from {parent}: a deceptive baseline is required, found a "
            f"{meta.get('kind', rundir.TRAIN)} run of baseline {meta.get('baseline')!r}"
        )
    return Parent(parent, path, config, meta, state, unfinished)


def check_overrides(parent: TrainConfig, overrides: dict[str, Any]) -> None:
    """Learning settings come from the parent; a different value is refused.

    ``overrides`` maps "section__field" to a value (as the CLI passes them)."""
    plain = parent.to_dict()
    for key, value in overrides.items():
        section, name = key.split("__", 1)
        if section == "run":
            continue
        have = plain[section][name]
        want = list(value) if isinstance(value, tuple) else value
        if have != want:
            raise rundir.RunDirError(
                f"the parent was trained with {section}.{name}={have!r}; fine-tuning "
                f"cannot change it to {want!r}"
            )


def finetune_meta(parent: Parent, ft: FinetuneConfig) -> dict[str, Any]:
    """config.yaml's meta: the parent run, its checkpoint hash, its episode count (with
    ``parent_unfinished`` and the episodes it was started for when it is unfinished) and
    the settings."""
    meta = {
        "kind": rundir.FINETUNE,
        "baseline": ft.reward,
        "condition": ft.condition,
        "parent": str(parent.run_dir),
        "parent_checkpoint": str(parent.path),
        "parent_sha256": file_sha256(parent.path),
        "parent_episode": parent.episode,
    }
    if parent.unfinished is not None:
        meta["parent_unfinished"] = True
        meta["parent_episodes_planned"] = parent.unfinished.episodes_planned
    return {**meta, "finetune": asdict(ft)}


def load_parent_state(parent: Parent, state: TrainState, reuse_buffer: bool) -> None:
    """Put the parent's networks (and optimisers and buffer, when its checkpoint holds
    them and ``reuse_buffer``) into a new run's state."""
    st, model = parent.state, state.model
    if list(st["seeds"]) != model.seeds:
        raise rundir.RunDirError("parent seeds differ")
    if "learner" in st:
        model.load_full_state(st["learner"])
        if reuse_buffer and "buffer" in st:
            state.buffer.load_state_dict(st["buffer"])
    else:  # weights-only export: fresh optimisers and buffer
        model.load_state_dict(st["model"], strict=False)
        model.copy_targets()
    model.update_rounds = 0
    st.pop("buffer", None)  # copied (or not wanted): do not hold a second copy in memory


def soo_generators(seeds: list[int], tag: int = 7) -> list[torch.Generator]:
    """One CPU generator of fictitious red offsets per seed, determined by that seed alone
    (so the draws are the same whichever seeds run alongside and on any device)."""
    out = []
    for seed in seeds:
        state = np.random.SeedSequence([int(seed), tag]).generate_state(1)[0]
        out.append(torch.Generator().manual_seed(int(state)))
    return out


def finetune_plan(
    parent: str | Path,
    ft: FinetuneConfig,
    overrides: dict[str, Any] | None = None,
    device: str = RunConfig.device,
    kernels: str | None = None,
    allow_unfinished: bool = False,
) -> Plan:
    """The training plan of a fine-tuning: the parent's config for ``ft.episodes``
    episodes (with ``ft.reward`` as blue's reward), starting from the parent's state, with
    the SOO variant of ``ft`` (and ``freeze_red``) as objectives. ``ft.soo_radius``
    defaults to the parent's sight radius (blue's, ``EnvConfig.blue_sight``); ``kernels``
    (the learner's numerics, ``MADDPGConfig.kernels``) to the parent's. An unfinished
    parent is refused unless ``allow_unfinished`` (:func:`load_parent`)."""
    par = load_parent(parent, allow_unfinished)
    check_overrides(par.config, overrides or {})
    if ft.reuse_buffer and par.state.get("buffer_pruned"):
        raise rundir.RunDirError(
            f"--from {par.run_dir}: its replay buffer was pruned (soo-marl prune); fine-tune "
            "with --fresh-buffer"
        )
    config, ft = _finetune_config(par.config, ft, device, kernels)
    frozen = FrozenParent()
    gens = soo_generators(list(config.run.seeds))
    parts = _objectives(ft, frozen, gens, config.env.history)
    blind = BlindRed(core.stacked_red_slots(config.env)) if ft.blind_red else None
    if blind is not None:
        parts.append(blind)

    def start(state: TrainState) -> None:
        load_parent_state(par, state, bool(ft.reuse_buffer))
        frozen.capture(state.model)
        if blind is not None:
            blind.apply(state.model)

    return Plan(
        config,
        finetune_meta(par, ft),
        objectives=parts,
        noise_offset=par.episode if ft.noise == "continue" else 0,
        start=start,
        buffer_rows=_reused_rows(par, bool(ft.reuse_buffer)),
    )


def _finetune_config(
    parent: TrainConfig, ft: FinetuneConfig, device: str, kernels: str | None
) -> tuple[TrainConfig, FinetuneConfig]:
    """The fine-tuning's training config (from the parent's) and ``ft`` with its radius set."""
    config = copy.deepcopy(parent)
    config.run.episodes = ft.episodes
    config.run.device = device
    if kernels is not None:
        config.maddpg = replace(config.maddpg, kernels=kernels)
    config.env = config.env.with_(baseline=ft.reward)
    if ft.soo_radius is None:
        ft = replace(ft, soo_radius=config.env.blue_sight)  # blue's sight radius
    return config, ft


def _objectives(
    ft: FinetuneConfig,
    frozen: FrozenParent,
    gens: list[torch.Generator],
    history: int = core.EnvConfig.history,
) -> list[Objective]:
    """The frozen parent, the SOO variant's terms of ``ft`` and, if asked, a frozen red
    (``history``: the stacked frames of blue's observations, ``EnvConfig.history``)."""
    # __post_init__ fills soo_layers and soo_distance, _finetune_config sets soo_radius
    assert ft.soo_radius is not None and ft.soo_layers is not None and ft.soo_distance is not None
    parts: list[Objective] = [frozen]
    if ft.style == "authors":
        step = AuthorsSooStep(ft.soo_weight, ft.anchor_weight, ft.soo_radius, frozen, gens, history)
        parts.append(step)
    else:
        parts.append(
            SooTerm(
                ft.soo_weight,
                ft.soo_layers,
                ft.soo_radius,
                gens,
                rows=ft.soo_rows,
                keep_trap_flag=ft.keep_trap_flag,
                distance=ft.soo_distance,
                other=ft.soo_other,
                history=history,
            )
        )
        parts.append(AnchorTerm(ft.anchor_weight, frozen, history))
    if ft.freeze_red:
        parts.append(FreezeRed(frozen))
    return parts


def _reused_rows(parent: Parent, reuse_buffer: bool) -> int:
    """Transitions per seed that :func:`load_parent_state` copies from the parent's
    buffer into the new run's (0 with a fresh buffer or a weights-only parent)."""
    saved = parent.state.get("buffer") if "learner" in parent.state else None
    return int(saved["filled"]) if reuse_buffer and saved is not None else 0


def finetune(
    parent: str | Path,
    ft: FinetuneConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    device: str = RunConfig.device,
    kernels: str | None = None,
    allow_unfinished: bool = False,
) -> TrainResult:
    """Fine-tune every seed of the deceptive run ``parent`` into ``run_dir`` (``kernels``:
    the learner's numerics, by default the parent's, or on ``resume`` the run's own). An
    unfinished parent (no final model) is refused unless ``allow_unfinished``; its episode
    count is then recorded in the run's meta."""
    if resume and kernels is None and rundir.config_path(run_dir).exists():
        kernels = rundir.read_config(run_dir)[0].maddpg.kernels
    plan = finetune_plan(parent, ft, overrides, device, kernels, allow_unfinished)
    return run_training(plan, run_dir, resume, progress)
