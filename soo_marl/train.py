"""The training loop: S seeds of MADDPG in one process on a vectorised environment.

:func:`run_training` is the whole loop, top to bottom. What differs between training a
baseline and fine-tuning one is handed to it as a :class:`Plan` — the run's metadata, how a
new run starts, and :class:`~soo_marl.objectives.Objective` parts (extra actor-loss terms,
work around update rounds) — never by subclassing. Checkpoints, logs and the run-directory
layout are small helpers below it and in :mod:`soo_marl.rundir`.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from soo_marl import rundir
from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG
from soo_marl.allocator import check_memory, fmt_bytes, tune_allocator
from soo_marl.config import TrainConfig, resolve_device
from soo_marl.envs import core
from soo_marl.objectives import Batch, LiveStep, Objective, to_numpy
from soo_marl.progress import Progress
from soo_marl.vecenv import DeceptionVecEnv

#: Display names of the agents in logged tags (``charts/return_red``).
SHORT_NAMES = dict(zip(DeceptionVecEnv.agents, ("red", "blue"), strict=True))


@dataclass
class TrainResult:
    """What a finished (or interrupted) run leaves behind."""

    run_dir: Path
    episodes_done: int
    interrupted: bool
    final_stats: dict[str, list[float]]
    wall_time_s: float


@dataclass
class TrainState:
    """Everything that changes while a run trains, and goes into its checkpoint."""

    model: MADDPG
    buffer: StackedReplayBuffer
    #: Per seed: independent "env", "noise" and "sample" random streams.
    streams: list[dict[str, np.random.Generator]]
    #: Episodes completed per seed.
    episode: int = 0
    #: Environment steps taken per seed.
    env_steps: int = 0
    steps_since_update: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Per-seed values logged since the last history row (:class:`Logger`), so that a run
    #: checkpointed between two rows (Ctrl-C) writes the next row as an unbroken run would.
    log_window: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers and strings only (loadable with ``weights_only=True``)."""
        return {
            "learner": self.model.full_state(),
            "buffer": self.buffer.state_dict(),
            "rng": json.dumps(
                [{k: g.bit_generator.state for k, g in st.items()} for st in self.streams]
            ),
            "episode": self.episode,
            "steps_since_update": self.steps_since_update,
            "env_steps": self.env_steps,
            "history": json.dumps(self.history),
            "log_window": {k: torch.from_numpy(np.stack(v)) for k, v in self.log_window.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        if list(state["seeds"]) != self.model.seeds:
            raise rundir.RunDirError(
                f"checkpoint seeds {state['seeds']} differ from {self.model.seeds}"
            )
        self.model.load_full_state(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        for st, saved in zip(self.streams, json.loads(state["rng"]), strict=True):
            for k, g in st.items():
                g.bit_generator.state = saved[k]
        self.episode = int(state["episode"])
        self.steps_since_update = int(state["steps_since_update"])
        self.env_steps = int(state["env_steps"])
        self.history = json.loads(state["history"])
        window = state.get("log_window", {})  # absent from checkpoints written before it
        self.log_window = {k: list(v.numpy()) for k, v in window.items()}


@dataclass
class Plan:
    """What :func:`run_training` runs besides plain MADDPG."""

    config: TrainConfig
    #: The ``meta`` block of config.yaml (see :mod:`soo_marl.rundir`).
    meta: dict[str, Any]
    objectives: Sequence[Objective] = ()
    #: Added to the episode index of the exploration-noise schedule.
    noise_offset: int = 0
    #: Sets up a new run's starting state (e.g. loads a parent); not called on resume.
    start: Callable[[TrainState], None] | None = None
    #: Transitions per seed that ``start`` puts into the replay buffer (a parent's buffer
    #: reused by a fine-tuning), for the checks made before the run allocates anything.
    buffer_rows: int = 0


def seed_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent RNG streams of one training seed (env, exploration noise, sampling)."""
    children = np.random.SeedSequence(int(seed)).spawn(3)
    return {
        k: np.random.default_rng(c)
        for k, c in zip(("env", "noise", "sample"), children, strict=True)
    }


def new_state(config: TrainConfig, env: Any, device: torch.device) -> TrainState:
    """Fresh networks, an empty buffer and the RNG streams of ``config.run.seeds``."""
    seeds = list(config.run.seeds)
    model = MADDPG(config.maddpg, seeds, env.obs_dims, env.act_dims).to(device)
    history = int(getattr(env, "history", 1))  # stacked frames (EnvConfig.history, §1.6)
    frames = list(getattr(env, "frame_dims", env.obs_dims))
    buffer = StackedReplayBuffer(
        len(seeds),
        config.maddpg.buffer_size,
        sum(frames),  # single frames are stored (§2.4)
        model.joint_act_dim,
        model.n_agents,
        device,
        history,
        frames,
    )
    return TrainState(model, buffer, [seed_streams(s) for s in seeds])


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    env_factory: Callable[[int, int], Any] | None = None,
) -> TrainResult:
    """Train ``config.run.seeds`` from scratch in one process into ``run_dir``.

    ``env_factory(n_seeds, envs_per_seed)`` replaces the physical-deception environment
    (e.g. :class:`~soo_marl.vecenv.PettingZooVecEnv` over another PettingZoo env).
    """
    plan = Plan(config, rundir.train_meta(config.env.baseline))
    return run_training(plan, run_dir, resume, progress, env_factory)


def run_training(
    plan: Plan,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    env_factory: Callable[[int, int], Any] | None = None,
) -> TrainResult:
    """Run (or continue) ``plan`` to ``plan.config.run.episodes`` episodes per seed.

    A new run refuses a directory that holds another run; ``resume`` continues the run in
    ``run_dir`` exactly from its checkpoint. Checkpoints are written every
    ``checkpoint_every`` episodes, on the first Ctrl-C (after finishing the current
    episodes) and at the end; the final model only when all episodes are done.
    """
    cfg, rc = plan.config, plan.config.run
    run_dir = Path(run_dir)
    tune_allocator()
    if rc.torch_threads:
        torch.set_num_threads(rc.torch_threads)
    device = resolve_device(rc.device)
    n_seeds, e = len(rc.seeds), rc.envs_per_seed
    env = _checked_env(plan, device, env_factory)
    state = new_state(cfg, env, device)
    rundir.prepare(run_dir, cfg, plan.meta, resume)
    head = rundir.header(state.model, env.agents, cfg, plan.meta)
    _resume_or_start(plan, state, run_dir, resume)
    rundir.record_provenance(run_dir, str(device), state.episode)
    log = Logger(run_dir, rc.seeds, env.agents, state)
    t0, steps0 = time.perf_counter(), state.env_steps
    speed = SteadySpeed(state.model)
    last: dict[str, list[float]] = {}
    bar = Progress(rc.episodes, state.episode, desc=run_dir.name, enabled=progress)
    with stop_on_ctrl_c() as stop, log, bar:
        while state.episode < rc.episodes and not stop.requested:
            play_episodes(state, env, plan, log)
            bar.update(e)
            if state.episode % rc.log_every == 0 or state.episode >= rc.episodes:
                sps = (state.env_steps - steps0) * n_seeds / (time.perf_counter() - t0)
                last = log.flush(state.episode, state.env_steps, sps)
                bar.set_postfix(**progress_values(last))
                speed.mark()
            if state.episode % rc.checkpoint_every == 0 or state.episode >= rc.episodes:
                _save_checkpoint(run_dir, head, state, plan)
        if stop.requested:
            _save_checkpoint(run_dir, head, state, plan)
        if state.episode >= rc.episodes:
            rundir.export_model(run_dir, state.model, head, plan.meta["kind"], state.episode)
    wall = time.perf_counter() - t0
    if device.type == "cpu":
        rundir.write_summary(run_dir, speed.summary(cfg, env, state.episode, wall))
    return TrainResult(run_dir, state.episode, stop.requested, last, wall)


def _checked_env(
    plan: Plan, device: torch.device, env_factory: Callable[[int, int], Any] | None
) -> Any:
    """The run's vectorised environment, built once :func:`check_run` has passed the run."""
    cfg, rc = plan.config, plan.config.run
    n_seeds, e = len(rc.seeds), rc.envs_per_seed
    if env_factory is None:  # checked before S·E worlds and S seeds' networks are built
        dims = core.input_dims(cfg.env)
        act_dims = DeceptionVecEnv.act_dims
        check_run(plan, dims, act_dims, cfg.env.max_cycles, device, cfg.env.history)
        return DeceptionVecEnv(cfg.env, n_seeds, e)
    env = env_factory(n_seeds, e)
    length = getattr(env, "episode_length", None)
    history = int(getattr(env, "history", 1))
    check_run(plan, env.obs_dims, env.act_dims, length, device, history)
    return env


def _resume_or_start(plan: Plan, state: TrainState, run_dir: Path, resume: bool) -> None:
    """Load the run's checkpoint on ``resume`` (if any), else start the plan's new run."""
    checkpoint = run_dir / rundir.CHECKPOINT
    if resume and checkpoint.exists():
        saved = rundir.load_checkpoint(checkpoint)
        if saved.get("buffer_pruned"):
            raise rundir.RunDirError(
                f"{run_dir}: its replay buffer was pruned (soo-marl prune), so it cannot be "
                "resumed exactly; train a new run instead"
            )
        state.load_state_dict(saved)
        for part in plan.objectives:
            part.load_state_dict(saved, state.model)
    elif plan.start is not None:
        plan.start(state)
    if resume:  # drop history rows logged after the checkpoint
        rundir.write_history(run_dir, state.history)


def _save_checkpoint(run_dir: Path, head: dict[str, Any], state: TrainState, plan: Plan) -> None:
    """Write the run's checkpoint: the training state and that of the plan's objectives."""
    parts = {k: v for p in plan.objectives for k, v in p.state_dict().items()}
    rundir.save_checkpoint(run_dir, head, {**state.state_dict(), **parts})


#: A run's summary gives its steady speed only over at least this many seconds of it
#: (the machine's float32 limit is measured then, once per process: about a second).
MIN_STEADY_S = 20.0


class SteadySpeed:
    """Seed-updates per second of a run in its steady state: from the first log row after
    its first update round (past the warm-up without updates and any one-off compilation)
    to the last row, with the learner's efficiency against the machine's float32 limit."""

    def __init__(self, model: MADDPG) -> None:
        self.model = model
        # (perf_counter, model.update_rounds) at the steady state's first and last log rows
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def mark(self) -> None:
        """Called at each log row."""
        now = (time.perf_counter(), self.model.update_rounds)
        if self.start is None:
            if now[1] > 0:
                self.start = now
        else:
            self.end = now

    def summary(self, cfg: TrainConfig, env: Any, episodes: int, wall: float) -> dict[str, Any]:
        """What the run's summary.json records about its speed (CPU runs)."""
        from soo_marl.bench_learner import flops_per_seed_update, gemm_limit

        threads = torch.get_num_threads()
        out: dict[str, Any] = {"episodes_done": episodes, "wall_s": wall, "torch_threads": threads}
        if self.start is None or self.end is None or self.end[1] == self.start[1]:
            return out  # too short to have a steady state
        if self.end[0] - self.start[0] < MIN_STEADY_S:  # a rate over a few seconds is noise
            return out
        rate = (self.end[1] - self.start[1]) * self.model.n_seeds / (self.end[0] - self.start[0])
        flops = flops_per_seed_update(cfg.maddpg, env.obs_dims, env.act_dims)
        limit = gemm_limit(threads)
        return {
            **out,
            "steady_seed_updates_per_s": rate,
            "flops_per_seed_update": flops,
            "gemm_limit_gflops": limit["gflops"],
            "gemm_limit_shape": limit["shape"],
            "efficiency_vs_gemm_limit": rate * flops / 1e9 / limit["gflops"],
        }


def last_round_fill(
    transitions: int, per_step: int, steps_per_update: int, capacity: int, start_rows: int = 0
) -> int:
    """Transitions per seed in the replay buffer when the last update round of a run
    falls due; 0 when none does.

    A run of ``transitions`` env steps per seed takes ``per_step`` (envs per seed) at a time
    and stores each; round k falls due at the first step that brings the count to
    k · ``steps_per_update`` and runs only if the buffer (``start_rows`` to begin with, at
    most ``capacity``) then holds a batch. The buffer only grows, so the run makes at
    least one update round if and only if this is at least the batch size.
    """
    rounds = transitions // steps_per_update
    if rounds == 0:
        return 0
    steps = -(-rounds * steps_per_update // per_step)  # the step at which the last is due
    return min(capacity, start_rows + steps * per_step)


def network_bytes(config: TrainConfig, obs_dims: Sequence[int], act_dims: Sequence[int]) -> int:
    """Bytes of one seed's networks while it trains: actors, critics, their targets and
    normalisation statistics, plus Adam's two moments and a gradient per trained weight."""
    one = MADDPG(config.maddpg, [0], obs_dims, act_dims)
    weights = sum(t.numel() * t.element_size() for t in one.state_dict().values())
    trained = [*one.actor.parameters(), *one.critic.parameters()]
    return weights + 3 * sum(p.numel() * p.element_size() for p in trained)


def replay_bytes(
    rows: int, obs_dims: Sequence[int], act_dims: Sequence[int], history: int, batch_size: int
) -> int:
    """One seed's replay memory: ``rows`` stored single-frame transitions and, with
    ``history`` > 1, the working memory of stacking a sampled batch (``obs_dims``: what
    the actors read, ``history`` frames per agent)."""
    obs_dim, act_dim, n = sum(obs_dims) // history, sum(act_dims), len(obs_dims)
    total = rows * StackedReplayBuffer.row_bytes(obs_dim, act_dim, n, history)
    if history > 1:
        total += StackedReplayBuffer.sample_bytes(batch_size, obs_dim, act_dim, n, history)
    return total


def check_run(
    plan: Plan,
    obs_dims: Sequence[int],
    act_dims: Sequence[int],
    episode_length: int | None,
    device: torch.device,
    history: int = core.EnvConfig.history,
) -> None:
    """Refuse, with a one-line ValueError and before anything is allocated, a run that
    could never make an update round, or whose replay buffers and networks need more
    memory than is available.

    ``obs_dims`` are what the actors read: ``history`` frames per agent (``EnvConfig.
    history``, docs/spec.md §1.6); the buffer stores single frames, and with history > 1
    each seed's sampling needs :meth:`~StackedReplayBuffer.sample_bytes` on top.

    No update: :func:`last_round_fill` is below the batch size (``episode_length`` None,
    for an environment of unknown episode length, skips this check). Memory: on the CPU
    the buffer's pages become resident only as it fills, so what a run needs is S seeds
    × the transitions it can store (``min(buffer_size, buffer_rows + episodes ×
    episode_length)``) × :meth:`~StackedReplayBuffer.row_bytes`, plus S ×
    :func:`network_bytes`, against :func:`~soo_marl.allocator.memory_available`; on a
    GPU the whole buffer is allocated at once. This is a lower bound (a checkpoint of a
    buffer that is not yet full copies its filled part, update rounds need working
    memory), so a run it lets through can still run short.
    """
    cfg, mc, rc = plan.config, plan.config.maddpg, plan.config.run
    n_seeds = len(rc.seeds)
    transitions = None if episode_length is None else rc.episodes * episode_length
    if transitions is not None:
        fill = last_round_fill(
            transitions, rc.envs_per_seed, mc.steps_per_update, mc.buffer_size, plan.buffer_rows
        )
        if fill < mc.batch_size:
            steps = f"{rc.episodes:,} episodes of {episode_length} steps"
            if transitions < mc.steps_per_update:
                raise ValueError(
                    f"no update round would run: one falls due every {mc.steps_per_update} "
                    f"env steps (steps_per_update), and {steps} make only {transitions:,}; "
                    "train more episodes"
                )
            raise ValueError(
                f"no update round would run: a round needs {mc.batch_size:,} transitions per "
                f"seed in the replay buffer (batch_size), which holds only {fill:,} when the "
                f"last round of {steps} falls due; train more episodes or lower the batch size"
            )
    rows = mc.buffer_size
    if transitions is not None and device.type == "cpu":
        rows = min(rows, plan.buffer_rows + transitions)
    replay = n_seeds * replay_bytes(rows, obs_dims, act_dims, history, mc.batch_size)
    nets = n_seeds * network_bytes(cfg, obs_dims, act_dims)
    what = (
        f"{n_seeds:,} seeds × {rows:,} transitions of replay ({fmt_bytes(replay)}) plus their "
        f"networks ({fmt_bytes(nets)})"
    )
    hint = "train fewer seeds at a time (--seeds 0-7, then 8-15, …) or lower --buffer-size"
    dev = None if device.type == "cpu" else str(device)
    check_memory(replay + nets, what, hint, dev)


def play_episodes(state: TrainState, env: Any, plan: Plan, log: Logger) -> None:
    """Play E episodes per seed with exploration noise, storing every transition and
    running each update round as it falls due (one per ``steps_per_update`` env steps)."""
    model, mc = state.model, plan.config.maddpg
    s, e = model.n_seeds, plan.config.run.envs_per_seed
    act_dim = model.joint_act_dim
    ep_idx = plan.noise_offset + state.episode + np.arange(e)
    scale = mc.noise_scale(ep_idx)[None, :, None]  # (1, E, 1)
    ou = np.zeros((s, e, act_dim))
    obs = env.reset([st["env"] for st in state.streams])
    returns = np.zeros((s, e, model.n_agents))
    done, t = False, 0
    while not done:
        obs_t = torch.from_numpy(obs).to(model.device)
        act = model.act(obs_t).cpu().numpy().astype(np.float64)
        noise = np.stack([st["noise"].standard_normal((e, act_dim)) for st in state.streams])
        ou += mc.ou_theta * (-ou) + mc.ou_sigma * noise
        act = np.clip(act + scale * ou, -1.0, 1.0)
        next_obs, rew, done = env.step(act)
        returns += rew
        recorded = getattr(env, "recorded_action", None)  # the applied action (§1.13)
        stored = act if recorded is None else recorded(act)
        state.buffer.add(
            obs_t,
            torch.from_numpy(stored.astype(np.float32)).to(model.device),
            torch.from_numpy(rew.astype(np.float32)).to(model.device),
            torch.from_numpy(next_obs).to(model.device),
            t,  # the episode step, by which a buffer with history stacks frames
        )
        obs, t = next_obs, t + 1
        state.env_steps += e
        state.steps_since_update += e
        while state.steps_since_update >= mc.steps_per_update:
            state.steps_since_update -= mc.steps_per_update
            if len(state.buffer) >= mc.batch_size:
                live = LiveStep(obs_t, scale * ou, act, model.update_rounds)
                update_round(state, plan, live, log)
    state.episode += e
    for i, a in enumerate(env.agents):
        log.add(f"charts/return_{SHORT_NAMES.get(a, a)}", returns[..., i].mean(axis=1))
    for k, v in env.episode_stats().items():
        log.add(f"charts/{k}", v.mean(axis=1))


def update_round(state: TrainState, plan: Plan, live: LiveStep, log: Logger) -> None:
    """One update round: the parts' work before it, the MADDPG round with their extra
    actor losses, their work after it; losses and the parts' scalars are logged."""
    model, mc = state.model, plan.config.maddpg
    for part in plan.objectives:
        part.before_round(model, live)
    rngs = [st["sample"] for st in state.streams]
    batch = state.buffer.sample(rngs, mc.batch_size, mc.normalize_rewards)
    members = trained_actors(plan.config, model)
    out = model.update(batch, extra_actor_loss(plan.objectives), members)
    for key in ("critic", "actor"):
        v = out[key].view(model.n_seeds, model.n_agents).cpu().numpy()
        for i, agent in enumerate(log.agents):
            log.add(f"losses/{key}_{agent}", v[:, i])
    for part in plan.objectives:
        part.after_round(model)
        for k, v in to_numpy(part.logs()).items():
            log.add(k, v)


def trained_actors(config: TrainConfig, model: MADDPG) -> torch.Tensor | None:
    """(S·n,) bool: the members whose actors an update round trains, or None for all.
    With a scripted red whose applied actions are recorded (``record_applied_action``,
    docs/spec.md §1.13) red's actor moves nothing, so it is left out."""
    env = config.env
    if not (env.record_applied_action and env.scripted_red):
        return None
    members = torch.ones(model.n_seeds, model.n_agents, dtype=torch.bool)
    members[:, core.RED] = False
    return members.view(-1)


def extra_actor_loss(
    parts: Sequence[Objective],
) -> Callable[[MADDPG, Batch], torch.Tensor | None] | None:
    """The sum of the parts' extra actor losses, as :meth:`MADDPG.update` takes it; None
    when no part has one (plain MADDPG)."""
    if not parts:
        return None

    def extra(model: MADDPG, batch: Batch) -> torch.Tensor | None:
        terms = [t for t in (p.actor_loss(model, batch) for p in parts) if t is not None]
        if not terms:
            return None
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    return extra


class Logger:
    """Averages per-seed scalars over each log interval; writes history.jsonl and
    TensorBoard (``tb/seed_<s>/``)."""

    def __init__(
        self, run_dir: Path, seeds: Sequence[int], agents: Sequence[str], state: TrainState
    ) -> None:
        self.run_dir, self.seeds, self.agents, self.state = run_dir, list(seeds), agents, state
        self._writers: list[Any] = []

    def __enter__(self) -> Logger:
        from torch.utils.tensorboard import SummaryWriter

        purge = self.state.episode or None
        self._writers = [
            SummaryWriter(str(self.run_dir / rundir.TENSORBOARD / f"seed_{s}"), purge_step=purge)
            for s in self.seeds
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for w in self._writers:
            w.close()

    def add(self, key: str, per_seed: np.ndarray) -> None:
        """One (S,) value per seed; the interval's mean is logged.

        The value is copied: a numpy view of a torch tensor would keep the tensor's
        storage alive until the next flush, and hundreds of such small blocks left among
        an update round's large temporaries fragment the heap (a 32-seed fine-tuning grew
        by about 8 MB per round that way, docs/performance.md)."""
        self.state.log_window.setdefault(key, []).append(np.array(per_seed, copy=True))

    def flush(self, episode: int, env_steps: int, sps: float) -> dict[str, list[float]]:
        """Write the interval's means as one history row and TensorBoard scalars."""
        means = {k: _mean(np.stack(v)) for k, v in self.state.log_window.items()}
        self.state.log_window = {}
        row: dict[str, Any] = {"episode": episode, "env_steps": env_steps, "SPS": sps}
        for k, v in means.items():
            row[k] = [float(x) for x in v]
        self.state.history.append(row)
        rundir.append_history(self.run_dir, row)
        for i, w in enumerate(self._writers):
            for k, v in means.items():
                w.add_scalar(k, float(v[i]), episode)
            w.add_scalar("charts/SPS", sps, episode)
            w.flush()
        return {k: [float(x) for x in v] for k, v in means.items()}


def _mean(values: np.ndarray) -> np.ndarray:
    """Mean over the logged rounds; NaN entries (a value a round did not produce) are
    left out, and a seed with none at all stays NaN."""
    if not np.isnan(values).any():
        return np.mean(values, axis=0)
    ok = ~np.isnan(values)
    total = np.where(ok, values, 0.0).sum(axis=0)
    return np.where(ok.any(axis=0), total / np.maximum(ok.sum(axis=0), 1), np.nan)


def progress_values(last: dict[str, list[float]]) -> dict[str, str]:
    """The progress bar's latest trap rate and returns (means over seeds)."""
    out = {}
    for key, name, digits in (
        ("charts/trap_rate", "trap", 2),
        ("charts/return_blue", "R_blue", 1),
        ("charts/return_red", "R_red", 1),
    ):
        if key in last:
            out[name] = f"{np.mean(last[key]):.{digits}f}"
    return out


@contextmanager
def stop_on_ctrl_c() -> Iterator[SimpleNamespace]:
    """While inside, the first Ctrl-C sets ``.requested`` instead of raising, so the loop
    can finish its episodes and checkpoint. Outside the main thread nothing is caught."""
    flag = SimpleNamespace(requested=False)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def request(signum: int, frame: object) -> None:
        flag.requested = True

    old = signal.signal(signal.SIGINT, request)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)
