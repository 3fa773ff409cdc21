"""SOO fine-tuning of a deceptive baseline (SPEC §3), and its anchor-only control.

Blue's actor objective becomes MADDPG actor loss + W·SOO + A·anchor, both extra terms
computed on the out-of-sight rows of each sampled batch. Everything else (critics, red,
the deceptive reward) continues as in :mod:`soo_marl.train`, for all seeds at once.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soo_marl import soo
from soo_marl.config import TrainConfig, file_sha256, load_yaml, save_yaml
from soo_marl.train import (
    CHECKPOINT,
    CONFIG,
    FINAL_MODEL,
    RunDirError,
    Trainer,
    TrainResult,
    find_run_file,
    load_checkpoint,
)

NOISE_MODES = ("continue", "restart")


@dataclass
class FinetuneConfig:
    """SOO fine-tuning settings (SPEC §3)."""

    #: Fine-tuning episodes per seed.
    episodes: int = 10_000
    #: λ_soo, weight of the SOO loss (0 gives the anchor-only control).
    soo_weight: float = 1.0
    #: λ_anchor, weight of the anchor loss against the frozen pre-trained blue actor.
    anchor_weight: float = 1.0
    #: Activations compared by the SOO loss: "h1h2", "h2" or "action".
    soo_layers: str = "h1h2"
    #: R_soo: the fictitious red offset is drawn within this distance.
    soo_radius: float = soo.SOO_RADIUS
    #: Keep red's actor fixed (isolates blue's change).
    freeze_red: bool = False
    #: Exploration noise: "continue" the parent's schedule (0 after 25k episodes, as the
    #: prototype did) or "restart" it from episode 0 (as the published code did).
    noise: str = "continue"
    #: Start from the parent's replay buffer (when its checkpoint holds one).
    reuse_buffer: bool = True

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"episodes must be positive, got {self.episodes}")
        if self.soo_weight < 0 or self.anchor_weight < 0:
            raise ValueError("SOO and anchor weights must be non-negative")
        if self.soo_layers not in soo.SOO_LAYERS:
            raise ValueError(f"unknown soo_layers {self.soo_layers!r}; allowed: {soo.SOO_LAYERS}")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"unknown noise mode {self.noise!r}; allowed: {NOISE_MODES}")
        if not self.soo_radius > 0:
            raise ValueError("soo_radius must be positive")


def parent_files(parent: Path) -> tuple[Path, dict]:
    """The parent's best checkpoint (full state preferred) and its config.yaml."""
    parent = Path(parent)
    if not (parent / CONFIG).exists() and not (parent / FINAL_MODEL).exists():
        raise RunDirError(f"--from {parent}: no trained run there")
    path = find_run_file(parent, (CHECKPOINT, FINAL_MODEL))
    if (parent / CONFIG).exists():
        return path, load_yaml(parent / CONFIG)
    return path, json.loads(load_checkpoint(path)["config"])


class FinetuneTrainer(Trainer):
    """A :class:`Trainer` that starts from a deceptive parent and adds SOO/anchor terms."""

    kind = "finetune"

    def __init__(
        self,
        parent: str | Path,
        ft: FinetuneConfig,
        run_dir: str | Path,
        overrides: dict[str, Any] | None = None,
        device: str = "auto",
    ) -> None:
        self.parent = Path(parent)
        self.ft = ft
        self.parent_path, saved = parent_files(self.parent)
        meta = saved.get("meta", {})
        if meta.get("baseline") != "deceptive" or meta.get("kind", "train") != "train":
            raise RunDirError(
                f"--from {self.parent}: a deceptive baseline is required, found a "
                f"{meta.get('kind', 'train')} run of baseline {meta.get('baseline')!r}"
            )
        parent_cfg = TrainConfig.from_dict({k: v for k, v in saved.items() if k != "meta"})
        self._check_overrides(parent_cfg, overrides or {})
        self.parent_config = parent_cfg
        self.parent_state = load_checkpoint(self.parent_path)
        self.parent_episode = int(self.parent_state.get("episode", parent_cfg.run.episodes))
        cfg = copy.deepcopy(parent_cfg)
        cfg.run.episodes = ft.episodes
        cfg.run.device = device
        super().__init__(cfg, run_dir)
        self.soo_gen = torch.Generator(device=self.device).manual_seed(
            int(np.random.SeedSequence([*self.seeds, 7]).generate_state(1)[0])
        )
        self._fresh = True

    @staticmethod
    def _check_overrides(parent: TrainConfig, overrides: dict[str, Any]) -> None:
        """Learning settings come from the parent; a different value is refused."""
        plain = parent.to_dict()
        for key, value in overrides.items():
            section, name = key.split("__", 1)
            if section == "run":
                continue
            have = plain[section][name]
            want = list(value) if isinstance(value, tuple) else value
            if have != want:
                raise RunDirError(
                    f"the parent was trained with {section}.{name}={have!r}; fine-tuning "
                    f"cannot change it to {want!r}"
                )

    def run_meta(self) -> dict[str, Any]:
        """config.yaml's meta: parent run, its checkpoint hash, and the SOO settings."""
        return {
            "kind": self.kind,
            "baseline": self.config.env.baseline,
            "condition": "soo" if self.ft.soo_weight > 0 else "no-soo",
            "parent": str(self.parent),
            "parent_checkpoint": str(self.parent_path),
            "parent_sha256": file_sha256(self.parent_path),
            "parent_episode": self.parent_episode,
            "finetune": asdict(self.ft),
        }

    def prepare_run_dir(self, resume: bool) -> None:
        """As for training; a new run starts from the parent's networks."""
        super().prepare_run_dir(resume)
        if not resume or not (self.run_dir / CHECKPOINT).exists():
            self._load_parent()

    def _check_compatible(self, saved: dict) -> None:
        old = dict(saved.get("meta", {}).get("finetune", {}))
        new = asdict(self.ft)
        old.pop("episodes", None), new.pop("episodes")
        if old != new:
            raise RunDirError(f"--resume: fine-tuning settings differ from {self.run_dir}")
        super()._check_compatible(saved)
        save_yaml({"meta": self.run_meta(), **self.config.to_dict()}, self.run_dir / CONFIG)

    def _load_parent(self) -> None:
        st = self.parent_state
        if list(st["seeds"]) != self.seeds:
            raise RunDirError("parent seeds differ")
        if "learner" in st:
            self.model.load_full_state(st["learner"])
            if self.ft.reuse_buffer and "buffer" in st:
                self.buffer.load_state_dict(st["buffer"])
        else:  # weights-only export: fresh optimisers and buffer
            self.model.load_state_dict(st["model"], strict=False)
            self.model.target_actor.load_state_dict(self.model.actor.state_dict())
            self.model.target_critic.load_state_dict(self.model.critic.state_dict())
        self.model.update_rounds = 0
        self._pre = None
        self._frozen()  # the frozen pre-trained copy, taken before any update

    # -- the SOO objective ---------------------------------------------------------------
    def _frozen(self) -> torch.nn.Module:
        if getattr(self, "_pre", None) is None:
            self._pre = copy.deepcopy(self.model).requires_grad_(False)
            self._red_snapshot = None
        return self._pre

    def actor_extra_loss(self):
        """W·SOO + A·anchor for blue members (0 for red), on out-of-sight rows."""
        pre = self._frozen()
        ft = self.ft
        odim = self.model.obs_dims[-1]

        def extra(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            obs_blue = batch["obs"][..., -odim:]
            mask = soo.self_mask(obs_blue)
            other = soo.other_observation(obs_blue, self.soo_gen, ft.soo_radius)
            h_self = soo.blue_activations(model, obs_blue, ft.soo_layers)
            h_other = soo.blue_activations(model, other, ft.soo_layers)
            soo_l = soo.soo_loss(h_self, h_other, mask)
            act = soo.blue_activations(model, obs_blue, "action")
            with torch.no_grad():
                act_pre = soo.blue_activations(pre, obs_blue, "action")
                value = soo.soo_value(h_self, h_other)
                value = torch.where(mask, value, torch.zeros_like(value)).sum(1) / mask.sum(
                    1
                ).clamp_min(1)
            anchor = soo.anchor_loss(act, act_pre, mask)
            blue_loss = ft.soo_weight * soo_l + ft.anchor_weight * anchor
            self._soo_log = {
                "soo/loss": soo_l.detach(),
                "soo/anchor_loss": anchor.detach(),
                "soo/value": value,
                "soo/out_of_sight_fraction": mask.float().mean(1),
            }
            out = torch.zeros(len(self.seeds), model.n_agents, device=blue_loss.device)
            out[:, -1] = blue_loss
            return out.view(-1)

        return extra

    def after_update(self, out: dict[str, torch.Tensor]) -> None:
        """Log SOO scalars; with ``freeze_red`` put red's actor back as it was."""
        super().after_update(out)
        for k, v in self._soo_log.items():
            self._window.setdefault(k, []).append(v.cpu().numpy())
        if self.ft.freeze_red:
            self._restore_red()

    def _restore_red(self) -> None:
        pre = self._frozen()
        n = self.model.n_agents
        with torch.no_grad():
            pairs = ((self.model.actor, pre.actor), (self.model.target_actor, pre.target_actor))
            for net, ref in pairs:
                for p, q in zip(net.parameters(), ref.parameters(), strict=True):
                    p.view(len(self.seeds), n, *p.shape[1:])[:, :-1] = q.view(
                        len(self.seeds), n, *q.shape[1:]
                    )[:, :-1]
                for name in ("running_mean", "running_var"):
                    b = getattr(net.norm, name)
                    r = getattr(ref.norm, name)
                    b.view(len(self.seeds), n, *b.shape[1:])[:, :-1] = r.view(
                        len(self.seeds), n, *r.shape[1:]
                    )[:, :-1]

    def noise_episode_offset(self) -> int:
        """Episodes added to the noise schedule's index (the parent's, when continuing)."""
        return self.parent_episode if self.ft.noise == "continue" else 0

    def state(self) -> dict:
        """Checkpoint, including the frozen pre-trained actor and the SOO generator."""
        st = super().state()
        st["pre_actor"] = self._frozen().actor.state_dict()
        st["soo_gen"] = self.soo_gen.get_state()
        return st

    def load(self, state: dict) -> None:
        """Restore a fine-tuning checkpoint."""
        super().load(state)
        self._frozen().actor.load_state_dict(state["pre_actor"])
        self.soo_gen.set_state(state["soo_gen"])


def finetune(
    parent: str | Path,
    ft: FinetuneConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
) -> TrainResult:
    """Fine-tune every seed of the deceptive run ``parent`` into ``run_dir``."""
    trainer = FinetuneTrainer(parent, ft, run_dir, overrides, device)
    return trainer.train(resume=resume, progress=progress)
