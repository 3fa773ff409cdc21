"""Training loop: S seeds of MADDPG in one process on a vectorised environment."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG
from soo_marl.config import TrainConfig, load_yaml, save_yaml
from soo_marl.vecenv import DeceptionVecEnv

CHECKPOINT = "checkpoint.pt"
FINAL_MODEL = "final_model.pt"
CONFIG = "config.yaml"
HISTORY = "history.jsonl"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (another run's, missing, corrupt)."""


def resolve_device(name: str) -> torch.device:
    """Map "auto" to CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


def seed_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent RNG streams of one training seed (env, exploration noise, sampling)."""
    children = np.random.SeedSequence(int(seed)).spawn(3)
    return {
        k: np.random.default_rng(c)
        for k, c in zip(("env", "noise", "sample"), children, strict=True)
    }


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``); clear error if unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunDirError(f"no checkpoint at {path}") from None
    except Exception as exc:  # corrupt, truncated or not a checkpoint
        raise RunDirError(f"cannot read checkpoint {path}: {exc.__class__.__name__}") from exc


def find_run_file(run_dir: Path, names: tuple[str, ...]) -> Path:
    """The first of ``names`` that exists in ``run_dir`` (e.g. final model or checkpoint)."""
    for name in names:
        if (Path(run_dir) / name).exists():
            return Path(run_dir) / name
    raise RunDirError(f"{run_dir} holds no {' or '.join(names)}")


@dataclass
class TrainResult:
    """What a finished (or interrupted) run leaves behind."""

    run_dir: Path
    episodes_done: int
    interrupted: bool
    final_stats: dict[str, list[float]]
    wall_time_s: float


class Trainer:
    """Owns the model, buffers, RNG streams and counters of one run directory."""

    #: Kind of run recorded in config.yaml ("train"; fine-tuning overrides it).
    kind = "train"

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        env_factory: Callable[[int, int], Any] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        rc = config.run
        if rc.torch_threads:
            torch.set_num_threads(rc.torch_threads)
        self.device = resolve_device(rc.device)
        self.seeds = list(rc.seeds)
        s, e = len(self.seeds), rc.envs_per_seed
        if env_factory is None:
            self.env = DeceptionVecEnv(config.env, s, e)
        else:
            self.env = env_factory(s, e)
        self.model = MADDPG(config.maddpg, self.seeds, self.env.obs_dims, self.env.act_dims)
        self.model.to(self.device)
        self.buffer = StackedReplayBuffer(
            s,
            config.maddpg.buffer_size,
            self.model.joint_obs_dim,
            self.model.joint_act_dim,
            self.model.n_agents,
            self.device,
        )
        self.streams = [seed_streams(x) for x in self.seeds]
        self.episode = 0  # episodes completed per seed
        self.steps_since_update = 0
        self.env_steps = 0  # per seed
        self.history: list[dict] = []
        self._window: dict[str, list[np.ndarray]] = {}
        self._stop = False

    # -- run-dir bookkeeping -------------------------------------------------------------
    def run_meta(self) -> dict[str, Any]:
        """Extra entries written to config.yaml next to the config."""
        return {"kind": self.kind, "baseline": self.config.env.baseline}

    def prepare_run_dir(self, resume: bool) -> None:
        """Create or check the run dir; refuse to overwrite another run."""
        cfg_path = self.run_dir / CONFIG
        ckpt = self.run_dir / CHECKPOINT
        if resume:
            if not cfg_path.exists():
                raise RunDirError(f"--resume: {self.run_dir} holds no run (no {CONFIG})")
            saved = load_yaml(cfg_path)
            self._check_compatible(saved)
            if ckpt.exists():
                self.load(load_checkpoint(ckpt))
            return
        if cfg_path.exists() or ckpt.exists():
            saved = load_yaml(cfg_path) if cfg_path.exists() else {}
            other = saved.get("meta", {}).get("baseline")
            if other and other != self.config.env.baseline:
                raise RunDirError(
                    f"{self.run_dir} holds a {other!r} run; choose another --run-dir for "
                    f"{self.config.env.baseline!r}"
                )
            raise RunDirError(
                f"{self.run_dir} already holds a run; use --resume to continue it or "
                "choose another --run-dir"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml({"meta": self.run_meta(), **self.config.to_dict()}, cfg_path)

    def _check_compatible(self, saved: dict) -> None:
        meta = saved.get("meta", {})
        if meta.get("baseline") != self.config.env.baseline:
            raise RunDirError(
                f"{self.run_dir} holds a {meta.get('baseline')!r} run, "
                f"not {self.config.env.baseline!r}"
            )
        old = TrainConfig.from_dict({k: v for k, v in saved.items() if k != "meta"})
        if old.learning_dict() != self.config.learning_dict() or old.run.seeds != tuple(self.seeds):
            raise RunDirError(
                f"--resume: the config differs from the one in {self.run_dir / CONFIG} "
                "(only episodes, device, checkpoint/log intervals may change)"
            )
        save_yaml({"meta": meta, **self.config.to_dict()}, self.run_dir / CONFIG)

    # -- persistence ---------------------------------------------------------------------
    def state(self) -> dict:
        """Complete resumable state (tensors, numbers and strings only)."""
        return {
            "format": 1,
            "seeds": self.seeds,
            "agents": list(self.env.agents),
            "obs_dims": list(self.env.obs_dims),
            "act_dims": list(self.env.act_dims),
            "config": json.dumps({"meta": self.run_meta(), **self.config.to_dict()}),
            "learner": self.model.full_state(),
            "buffer": self.buffer.state_dict(),
            "rng": json.dumps(
                [{k: g.bit_generator.state for k, g in st.items()} for st in self.streams]
            ),
            "episode": self.episode,
            "steps_since_update": self.steps_since_update,
            "env_steps": self.env_steps,
            "history": json.dumps(self.history),
        }

    def load(self, state: dict) -> None:
        """Restore :meth:`state` output into this trainer."""
        if list(state["seeds"]) != self.seeds:
            raise RunDirError(f"checkpoint seeds {state['seeds']} differ from {self.seeds}")
        self.model.load_full_state(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        for st, saved in zip(self.streams, json.loads(state["rng"]), strict=True):
            for k, g in st.items():
                g.bit_generator.state = saved[k]
        self.episode = int(state["episode"])
        self.steps_since_update = int(state["steps_since_update"])
        self.env_steps = int(state["env_steps"])
        self.history = json.loads(state["history"])

    def save_checkpoint(self) -> None:
        """Atomically write the resumable checkpoint."""
        atomic_torch_save(self.state(), self.run_dir / CHECKPOINT)

    def export_model(self, path: Path | None = None) -> Path:
        """Write final weights only (actors and critics, no buffers): a few hundred kB."""
        path = path or self.run_dir / FINAL_MODEL
        model = {k: v for k, v in self.model.state_dict().items() if not k.startswith("target")}
        atomic_torch_save(
            {
                "format": 1,
                "kind": self.kind,
                "seeds": self.seeds,
                "agents": list(self.env.agents),
                "obs_dims": list(self.env.obs_dims),
                "act_dims": list(self.env.act_dims),
                "config": json.dumps({"meta": self.run_meta(), **self.config.to_dict()}),
                "episode": self.episode,
                "model": model,
            },
            path,
        )
        return path

    # -- the loop ------------------------------------------------------------------------
    def noise_episode_offset(self) -> int:
        """Episodes added to the exploration schedule's index (0 for plain training)."""
        return 0

    def actor_extra_loss(self) -> Callable | None:
        """Extra per-member actor loss (none for plain MADDPG)."""
        return None

    def after_update(self, out: dict[str, torch.Tensor]) -> None:
        """Collect per-member losses of one update round for logging."""
        n = self.model.n_agents
        for key in ("critic", "actor"):
            v = out[key].view(len(self.seeds), n).cpu().numpy()
            for i, a in enumerate(self.env.agents):
                self._window.setdefault(f"losses/{key}_{a}", []).append(v[:, i])

    def run_episode_batch(self) -> dict[str, np.ndarray]:
        """Play E episodes per seed with exploration noise, storing and learning."""
        mc = self.config.maddpg
        s, e = len(self.seeds), self.config.run.envs_per_seed
        act_dim = self.model.joint_act_dim
        ep_idx = self.noise_episode_offset() + self.episode + np.arange(e)
        scale = mc.noise_scale(ep_idx)[None, :, None]  # (1, E, 1)
        ou = np.zeros((s, e, act_dim))
        obs = self.env.reset([st["env"] for st in self.streams])
        returns = np.zeros((s, e, self.model.n_agents))
        done = False
        while not done:
            obs_t = torch.from_numpy(obs).to(self.device)
            act = self.model.act(obs_t).cpu().numpy().astype(np.float64)
            noise = np.stack([st["noise"].standard_normal((e, act_dim)) for st in self.streams])
            ou += mc.ou_theta * (-ou) + mc.ou_sigma * noise
            act = np.clip(act + scale * ou, -1.0, 1.0)
            next_obs, rew, done = self.env.step(act)
            returns += rew
            self.buffer.add(
                obs_t,
                torch.from_numpy(act.astype(np.float32)).to(self.device),
                torch.from_numpy(rew.astype(np.float32)).to(self.device),
                torch.from_numpy(next_obs).to(self.device),
            )
            obs = next_obs
            self.env_steps += e
            self.steps_since_update += e
            while self.steps_since_update >= mc.steps_per_update:
                self.steps_since_update -= mc.steps_per_update
                if len(self.buffer) >= mc.batch_size:
                    batch = self.buffer.sample(
                        [st["sample"] for st in self.streams], mc.batch_size, mc.normalize_rewards
                    )
                    self.after_update(self.model.update(batch, self.actor_extra_loss()))
        self.episode += e
        stats = {f"charts/return_{a}": returns[..., i] for i, a in enumerate(self._short())}
        for k, v in self.env.episode_stats().items():
            stats[f"charts/{k}"] = v
        return stats

    def _short(self) -> list[str]:
        names = {"adversary_0": "red", "agent_0": "blue"}
        return [names.get(a, a) for a in self.env.agents]

    def _flush_logs(self, writers: list, sps: float) -> dict[str, list[float]]:
        means = {k: np.mean(np.stack(v), axis=0) for k, v in self._window.items()}
        self._window = {}
        row = {"episode": self.episode, "env_steps": self.env_steps, "SPS": sps}
        for k, v in means.items():
            row[k] = [float(x) for x in v]
        self.history.append(row)
        with open(self.run_dir / HISTORY, "a") as f:
            f.write(json.dumps(row) + "\n")
        for i, w in enumerate(writers):
            for k, v in means.items():
                w.add_scalar(k, float(v[i]), self.episode)
            w.add_scalar("charts/SPS", sps, self.episode)
            w.flush()
        return {k: [float(x) for x in v] for k, v in means.items()}

    def train(self, resume: bool = False, progress: bool = True) -> TrainResult:
        """Run (or continue) to ``config.run.episodes`` episodes per seed."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        self.prepare_run_dir(resume)
        rc = self.config.run
        writers = [
            SummaryWriter(str(self.run_dir / "tb" / f"seed_{x}"), purge_step=self.episode or None)
            for x in self.seeds
        ]
        if resume:  # drop history rows logged after the checkpoint
            self._rewrite_history()
        last: dict[str, list[float]] = {}
        old_handler = signal.getsignal(signal.SIGINT)
        if old_handler is not None:
            signal.signal(signal.SIGINT, self._request_stop)
        t0 = time.perf_counter()
        steps0 = self.env_steps
        bar = tqdm(
            total=rc.episodes, initial=self.episode, disable=not progress, unit="ep", smoothing=0.05
        )
        try:
            while self.episode < rc.episodes and not self._stop:
                stats = self.run_episode_batch()
                for k, v in stats.items():
                    self._window.setdefault(k, []).append(v.mean(axis=1))
                bar.update(rc.envs_per_seed)
                if self.episode % rc.log_every == 0 or self.episode >= rc.episodes:
                    sps = (self.env_steps - steps0) * len(self.seeds) / (time.perf_counter() - t0)
                    last = self._flush_logs(writers, sps)
                    bar.set_postfix(
                        trap=f"{np.mean(last.get('charts/trap_rate', [np.nan])):.2f}",
                        R_blue=f"{np.mean(last.get('charts/return_blue', [np.nan])):.1f}",
                        R_red=f"{np.mean(last.get('charts/return_red', [np.nan])):.1f}",
                    )
                if self.episode % rc.checkpoint_every == 0 or self.episode >= rc.episodes:
                    self.save_checkpoint()
            if self._stop:
                self.save_checkpoint()
            self.export_model()
        finally:
            bar.close()
            for w in writers:
                w.close()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return TrainResult(self.run_dir, self.episode, self._stop, last, time.perf_counter() - t0)

    def _request_stop(self, signum: int, frame: object) -> None:
        """First Ctrl-C: finish the current episodes, checkpoint and stop."""
        self._stop = True

    def _rewrite_history(self) -> None:
        path = self.run_dir / HISTORY
        with open(path, "w") as f:
            for row in self.history:
                f.write(json.dumps(row) + "\n")


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    env_factory: Callable[[int, int], Any] | None = None,
) -> TrainResult:
    """Train ``config.run.seeds`` in one process into ``run_dir`` (see :class:`Trainer`)."""
    return Trainer(config, run_dir, env_factory).train(resume=resume, progress=progress)
