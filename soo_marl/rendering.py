"""Episode GIFs for the ``render`` command: random actions, or a trained run's policies.

A trained run is shown on the evaluation start states of ``soo-marl evaluate`` (start
state k of evaluation seed E is the same world there and here), played by
:func:`soo_marl.rollout.rollout` with deterministic actors: red from the run, blue from
the run (optionally blinded to red), from another run (cross-play) or scripted. The
drawing is :func:`soo_marl.envs.render.draw_frame`, the same as the PettingZoo env's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import cast

import numpy as np

from soo_marl import rundir
from soo_marl.agents.maddpg import MADDPG
from soo_marl.envs import core
from soo_marl.envs.physical_deception_v0 import parallel_env
from soo_marl.envs.render import draw_frame, render_frame, write_gif
from soo_marl.rollout import DEFAULT_EVAL_SEEDS, SCRIPTED_BLUES, rollout, start_uniforms
from soo_marl.rundir import LoadedModel, load_model

#: Frames of the final state shown after each episode (a pause before the next one).
PAUSE_FRAMES = 8
#: Frames per second of the written GIFs (the PettingZoo env's ``render_fps``).
FPS = 10
#: Output formats that can be written.
SUFFIXES = (".gif",)
#: Why ``.mp4`` is refused.
MP4_MISSING = (
    "MP4 output needs ffmpeg (an ffmpeg binary, imageio-ffmpeg or PyAV), which is not "
    "installed; write a .gif instead"
)


def check_output(out: str | Path) -> Path:
    """``out`` as a Path if its suffix is one that can be written, else ValueError."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix == ".mp4":
        raise ValueError(f"{path}: {MP4_MISSING}")
    if suffix not in SUFFIXES:
        raise ValueError(
            f"{path}: cannot write {suffix or 'a file without suffix'}; "
            f"supported: {', '.join(SUFFIXES)}"
        )
    return path


def render_random_episodes(
    out: str | Path,
    episodes: int = 2,
    seed: int = 0,
    baseline: str = core.EnvConfig.baseline,
    sight_radius: float = core.PAPER_SIGHT_RADIUS,
) -> Path:
    """Play ``episodes`` episodes with uniformly random actions and write them as one GIF.

    Episode k starts from ``reset(seed=seed + k)``; frames are the env's frames with a
    caption and the paths the agents went through."""
    path = check_output(out)
    env = parallel_env(baseline=baseline, render_mode="rgb_array", sight_radius=sight_radius)
    frames: list[np.ndarray] = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        assert env.state_ is not None  # reset() sets it
        caption = [
            f"random actions · {baseline} reward · sight radius {sight_radius:g}",
            f"episode {ep + 1} / {episodes} (reset seed {seed + ep})",
        ]
        positions = [env.state_.pos[0].copy()]
        while True:
            path_so_far = np.array(positions)
            trails = (path_so_far[:, core.RED], path_so_far[:, core.BLUE])
            frames.append(render_frame(env.cfg, env.state_, 0, caption=caption, trails=trails))
            if not env.agents:
                break
            env.step({a: env.action_space(a).sample() for a in env.agents})
            positions.append(env.state_.pos[0].copy())
    return write_gif(frames, path, fps=cast(int, env.metadata["render_fps"]))


@dataclass
class PlayedEpisodes:
    """Episodes of one trained seed, as drawn by :func:`episode_frames`.

    ``traj`` holds the rollout arrays of that seed: ``red_pos``/``blue_pos`` (N, T+1, 2),
    ``landmarks`` (N, 2, 2), ``goal_index`` (N,), ``trapped``/``red_visible`` (N, T+1).
    Episode k is start state ``first_episode + k`` of evaluation seed ``eval_seed``.
    """

    cfg: core.EnvConfig
    traj: dict[str, np.ndarray]
    run_label: str
    seed: int
    blue: str
    eval_seed: int
    first_episode: int

    @property
    def episodes(self) -> int:
        """Number of episodes played."""
        return int(self.traj["goal_index"].shape[0])


def _load(run_dir: str | Path, allow_unfinished: bool = False) -> LoadedModel:
    path = Path(run_dir)
    if not path.exists():
        raise ValueError(f"no such run directory: {path}")
    rundir.require_finished(path, allow_unfinished)
    return load_model(path)


def _env_differences(a: core.EnvConfig, b: core.EnvConfig) -> list[str]:
    """Fields of two env configs that differ, the reward variant aside."""
    return [
        f.name
        for f in fields(a)
        if f.name != "baseline" and getattr(a, f.name) != getattr(b, f.name)
    ]


def _blue_player(
    lm: LoadedModel, against: str | Path | None, blind: bool, allow_unfinished: bool = False
) -> tuple[MADDPG | str, str]:
    """What plays blue (for :func:`rollout`) and how the frames name it."""
    blinded = ", blind to red" if blind else ""
    if against is None:
        return lm.model, f"own policy{blinded}"
    if str(against) in SCRIPTED_BLUES:
        if blind:
            raise ValueError(f"scripted blue {against} does not look at red: it cannot be blind")
        return str(against), f"scripted {against}"
    if not Path(against).exists():
        raise ValueError(
            f"{str(against)!r} is neither a run directory nor a scripted blue "
            f"({', '.join(SCRIPTED_BLUES)})"
        )
    other = _load(against, allow_unfinished)
    if other.model.n_seeds != lm.model.n_seeds:
        raise ValueError(
            f"cannot cross-play: {against} has {other.model.n_seeds} seeds, "
            f"{lm.run_dir} has {lm.model.n_seeds}"
        )
    differ = _env_differences(lm.config.env, other.config.env)
    if differ:
        raise ValueError(
            f"cannot cross-play: {against} and {lm.run_dir} differ in {', '.join(differ)}"
        )
    return other.model, f"{other.label}'s blue (cross-play){blinded}"


def play_run(
    run_dir: str | Path,
    seed: int | None = None,
    episodes: int = 2,
    eval_seed: int = DEFAULT_EVAL_SEEDS[0],
    against: str | Path | None = None,
    blind: bool = False,
    first_episode: int = 0,
    device: str = "cpu",
    allow_unfinished: bool = False,
) -> PlayedEpisodes:
    """Play ``episodes`` evaluation episodes of a trained run for one of its seeds.

    ``seed``: the trained seed shown (default the run's first). Red is the run's; blue is
    the run's (``against=None``), another run's of the same seed index (``against`` a run
    directory with as many seeds and the same environment apart from the reward), or a
    scripted blue (``against`` one of ``to_goal``, ``to_fake``, ``still``). ``blind``
    blinds the trained blue to red. Raises ValueError, with one line saying why, for a
    missing run, a seed not in it, mismatched runs or an unknown scripted blue, and for an
    unfinished run (no final model) unless ``allow_unfinished``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if first_episode < 0:
        raise ValueError(f"first_episode must be at least 0, got {first_episode}")
    lm = _load(run_dir, allow_unfinished)
    if seed is None:
        seed = lm.seeds[0]
    if seed not in lm.seeds:
        raise ValueError(
            f"seed {seed} is not in {lm.run_dir} (its seeds: {', '.join(map(str, lm.seeds))})"
        )
    blue, blue_name = _blue_player(lm, against, blind, allow_unfinished)
    cfg = lm.config.env
    uniforms = start_uniforms([eval_seed], first_episode + episodes, core.reset_draws(cfg))
    traj = rollout(cfg, uniforms[first_episode:], lm.model, blue, device, blind_blue=blind)
    index = lm.seeds.index(seed)
    keep = ("red_pos", "blue_pos", "landmarks", "goal_index", "trapped", "red_visible")
    return PlayedEpisodes(
        cfg=cfg,
        traj={k: traj[k][index] for k in keep},
        run_label=lm.label,
        seed=seed,
        blue=blue_name,
        eval_seed=eval_seed,
        first_episode=first_episode,
    )


def _frame(
    played: PlayedEpisodes,
    k: int,
    t: int,
    caption: list[str],
    size: int,
    status: str = "",
    progress: float | None = None,
) -> np.ndarray:
    """Step ``t`` of episode ``k``, with the paths taken up to it."""
    tr = played.traj
    red, blue = tr["red_pos"][k], tr["blue_pos"][k]
    return draw_frame(
        played.cfg,
        red[t],
        blue[t],
        tr["landmarks"][k],
        int(tr["goal_index"][k]),
        bool(tr["trapped"][k, t]),
        t,
        visible=bool(tr["red_visible"][k, t]),
        caption=caption,
        status=status,
        trails=(red[: t + 1], blue[: t + 1]),
        progress=progress,
        size=size,
    )


def episode_frames(
    played: PlayedEpisodes, size: int = 400, pause: int = PAUSE_FRAMES
) -> list[np.ndarray]:
    """Frames of every episode one after another: its T+1 steps, then ``pause`` frames of
    the final state (with the outcome and a filling bar, so no two frames are alike)."""
    n, t_len = played.episodes, played.cfg.max_cycles
    frames: list[np.ndarray] = []
    for k in range(n):
        caption = [
            f"run: {played.run_label} · seed {played.seed}",
            f"blue: {played.blue}",
            f"episode {k + 1} / {n} · start {played.first_episode + k} of eval seed "
            f"{played.eval_seed}",
        ]
        frames.extend(_frame(played, k, t, caption, size) for t in range(t_len + 1))
        hits = np.flatnonzero(played.traj["trapped"][k])
        outcome = f"over: trapped at t = {hits[0]}" if hits.size else "over: not trapped"
        frames.extend(
            _frame(played, k, t_len, caption, size, outcome, (j + 1) / pause) for j in range(pause)
        )
    return frames


def render_run(
    run_dir: str | Path,
    out: str | Path,
    seed: int | None = None,
    episodes: int = 2,
    eval_seed: int = DEFAULT_EVAL_SEEDS[0],
    against: str | Path | None = None,
    blind: bool = False,
    first_episode: int = 0,
    size: int = 400,
    allow_unfinished: bool = False,
) -> Path:
    """Write a trained run's episodes (:func:`play_run`, :func:`episode_frames`) as one
    animated GIF at ``out``; returns its path. ``.mp4`` is refused (no ffmpeg here), an
    unfinished run unless ``allow_unfinished``."""
    path = check_output(out)
    played = play_run(
        run_dir, seed, episodes, eval_seed, against, blind, first_episode,
        allow_unfinished=allow_unfinished,
    )  # fmt: skip
    return write_gif(episode_frames(played, size), path, fps=FPS)
