"""Episode GIFs for the ``render`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soo_marl.envs.physical_deception_v0 import parallel_env
from soo_marl.envs.render import write_gif


def render_random_episodes(
    out: str | Path,
    episodes: int = 2,
    seed: int = 0,
    baseline: str = "deceptive",
    sight_radius: float = 0.125,
) -> Path:
    """Play ``episodes`` episodes with uniformly random actions and write them as one GIF."""
    env = parallel_env(baseline=baseline, render_mode="rgb_array", sight_radius=sight_radius)
    frames: list[np.ndarray] = []
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        frames.append(env.render())
        while env.agents:
            env.step({a: env.action_space(a).sample() for a in env.agents})
            frames.append(env.render())
    return write_gif(frames, out, fps=env.metadata["render_fps"])
