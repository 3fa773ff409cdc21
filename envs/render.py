"""Drawing of environment states as RGB images and animated GIFs (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from soo_marl.envs.core import BLUE, RED, EnvConfig, State

COLOURS = {
    "background": (255, 255, 255),
    "wall": (90, 90, 90),
    "red": (215, 40, 40),
    "blue": (40, 70, 215),
    "goal": (30, 170, 60),
    "fake": (0, 0, 0),
    "sight": (150, 150, 220),
}


def render_frame(cfg: EnvConfig, state: State, index: int = 0, size: int = 400) -> np.ndarray:
    """(size, size, 3) uint8 image of world ``index``: red/blue agents, goal green, fake black.

    The circle around blue marks the sight radius; a trapped red gets a black ring.
    """
    img = Image.new("RGB", (size, size), COLOURS["background"])
    draw = ImageDraw.Draw(img)
    half = cfg.arena_half_width + cfg.wall_width
    scale = size / (2 * half)

    def px(p: np.ndarray) -> tuple[float, float]:
        return ((p[0] + half) * scale, (half - p[1]) * scale)

    def circle(centre: np.ndarray, radius: float, **kw: object) -> None:
        x, y = px(centre)
        r = radius * scale
        draw.ellipse([x - r, y - r, x + r, y + r], **kw)

    w = cfg.wall_width * scale
    draw.rectangle([0, 0, size - 1, size - 1], outline=COLOURS["wall"], width=max(1, int(w)))
    goal = int(state.goal_index[index])
    for i in range(2):
        colour = COLOURS["goal"] if i == goal else COLOURS["fake"]
        circle(state.landmarks[index, i], cfg.landmark_radius, fill=colour)
    blue, red = state.pos[index, BLUE], state.pos[index, RED]
    circle(blue, cfg.sight_radius, outline=COLOURS["sight"], width=2)
    circle(red, cfg.agent_radius, fill=COLOURS["red"])
    if state.trapped[index]:
        circle(red, cfg.agent_radius, outline=(0, 0, 0), width=3)
    circle(blue, cfg.agent_radius, fill=COLOURS["blue"])
    draw.text(
        (6, 4), f"t={state.t}" + ("  TRAPPED" if state.trapped[index] else ""), fill=(0, 0, 0)
    )
    return np.asarray(img)


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write RGB frames as an animated GIF that loops forever."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path
