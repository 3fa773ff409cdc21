"""Drawing of environment states as RGB images and animated GIFs (Pillow).

One routine, :func:`draw_frame`, draws a world from plain arrays (agent positions, the
landmarks, the goal index, the trap flag and the step). :func:`render_frame` (behind the
PettingZoo env's ``render()``) feeds it a :class:`~soo_marl.envs.core.State`, the
trained-policy renderer (:mod:`soo_marl.rendering`) feeds it trajectory arrays.

A frame is the arena (``size`` × ``size`` pixels, walls at its border, world point
(x, y) at column ``(x + h) · size / 2h`` and row ``(h − y) · size / 2h`` with
h = arena half width + wall width) above an info panel of :func:`panel_height` rows:
caption lines, the step counter and status, and the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from soo_marl.envs.core import BLUE, RED, EnvConfig, State, red_visible

COLOURS = {
    "background": (255, 255, 255),
    "wall": (90, 90, 90),
    "red": (215, 40, 40),
    "blue": (40, 70, 215),
    "goal": (30, 170, 60),
    "fake": (0, 0, 0),
    "sight": (150, 150, 220),
    "trapped": (255, 140, 0),
    "text": (30, 30, 30),
    "trail_red": (240, 175, 175),
    "trail_blue": (175, 185, 240),
    "panel": (244, 244, 244),
}
#: Caption lines the panel has room for (above the status line and the legend).
CAPTION_LINES = 3
_LEGEND_ROWS = 2


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, ValueError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _font_px(size: int) -> int:
    return max(9, round(size / 30))


def _line_px(size: int) -> int:
    return round(_font_px(size) * 1.35)


def panel_height(size: int) -> int:
    """Rows of the info panel under a ``size``-pixel arena."""
    return (CAPTION_LINES + 1 + _LEGEND_ROWS) * _line_px(size) + 2 * _pad(size)


def _pad(size: int) -> int:
    return max(3, size // 80)


def draw_frame(
    cfg: EnvConfig,
    red: np.ndarray,
    blue: np.ndarray,
    landmarks: np.ndarray,
    goal_index: int,
    trapped: bool,
    t: int,
    *,
    visible: bool | None = None,
    caption: Sequence[str] = (),
    status: str = "",
    trails: tuple[np.ndarray, np.ndarray] | None = None,
    progress: float | None = None,
    size: int = 400,
) -> np.ndarray:
    """(size + panel_height(size), size, 3) uint8 image of one world.

    ``red``/``blue`` (2,) positions, ``landmarks`` (2, 2), ``goal_index`` which landmark
    is the goal, ``trapped`` red's trap flag, ``t`` the step (shown as "t = t / T").
    Drawn: walls, the goal (green, labelled "goal") and the fake (black, "fake"), both
    agents, a sight circle around each (its own radius: ``cfg.red_sight``,
    ``cfg.blue_sight``; both ``cfg.sight_radius`` by default), and when red is
    trapped an orange ring on red with "TRAPPED" next to it and in the status line.
    Optional: ``visible`` (blue sees red: "in sight" in the status line), up to
    :data:`CAPTION_LINES` ``caption`` lines, extra ``status`` text, ``trails`` (the
    positions red and blue went through, (k, 2) each, drawn as thin lines) and
    ``progress`` in [0, 1] (a bar under the panel, e.g. through a pause between episodes).
    """
    if len(caption) > CAPTION_LINES:
        raise ValueError(f"at most {CAPTION_LINES} caption lines, got {len(caption)}")
    panel = panel_height(size)
    img = Image.new("RGB", (size, size + panel), COLOURS["background"])
    draw = ImageDraw.Draw(img)
    font = _font(_font_px(size))
    half = cfg.arena_half_width + cfg.wall_width
    canvas = _Arena(draw, font, size, half, size / (2 * half))
    red, blue = np.asarray(red, dtype=float), np.asarray(blue, dtype=float)
    landmarks = np.asarray(landmarks, dtype=float)
    _draw_arena(canvas, cfg, red, blue, landmarks, int(goal_index), trapped, trails)
    _draw_panel(
        draw, font, size, caption, f"t = {t} / {cfg.max_cycles}", visible, status, trapped, progress
    )
    return np.asarray(img)


@dataclass(frozen=True)
class _Arena:
    """The arena part of a frame: where to draw, the font, and world-to-pixel scaling."""

    draw: ImageDraw.ImageDraw
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont
    size: int
    half: float
    scale: float

    def px(self, p: np.ndarray) -> tuple[float, float]:
        """Pixel (column, row) of world point ``p``."""
        return ((p[0] + self.half) * self.scale, (self.half - p[1]) * self.scale)

    def circle(self, centre: np.ndarray, radius_px: float, **kw: Any) -> None:
        """A circle of ``radius_px`` pixels around world point ``centre``."""
        x, y = self.px(centre)
        self.draw.ellipse([x - radius_px, y - radius_px, x + radius_px, y + radius_px], **kw)

    def label(self, centre: np.ndarray, gap_px: float, text: str, fill: tuple, below: bool) -> None:
        """``text`` centred above (or below) ``centre``, ``gap_px`` from it, kept inside."""
        size, font = self.size, self.font
        x, y = self.px(centre)
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        w, h = right - left, bottom - top
        ty = y + gap_px + 1 if below else y - gap_px - h - 1
        if ty < 0 or ty + h > size:  # no room on that side: the other one
            ty = y - gap_px - h - 1 if below else y + gap_px + 1
        tx = min(max(x - w / 2, 2), size - w - 2)
        self.draw.text((tx - left, ty - top), text, fill=fill, font=font)


def _draw_arena(
    canvas: _Arena,
    cfg: EnvConfig,
    red: np.ndarray,
    blue: np.ndarray,
    landmarks: np.ndarray,
    goal: int,
    trapped: bool,
    trails: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """The arena of :func:`draw_frame`: walls, trails, landmarks, agents, sight, trap marker."""
    draw, size, scale, circle = canvas.draw, canvas.size, canvas.scale, canvas.circle
    w = cfg.wall_width * scale
    draw.rectangle([0, 0, size - 1, size - 1], outline=COLOURS["wall"], width=max(1, int(w)))
    line_w = max(1, size // 200)
    if trails is not None:
        for path, colour in zip(trails, ("trail_red", "trail_blue"), strict=True):
            points = [canvas.px(p) for p in np.asarray(path, dtype=float)]
            if len(points) > 1:
                draw.line(points, fill=COLOURS[colour], width=line_w, joint="curve")
    lm_r = cfg.landmark_radius * scale
    for i in range(2):
        circle(landmarks[i], lm_r, fill=COLOURS["goal"] if i == goal else COLOURS["fake"])
    agent_r = cfg.agent_radius * scale
    circle(red, agent_r, fill=COLOURS["red"])
    circle(blue, agent_r, fill=COLOURS["blue"])
    # each agent's own sight radius (§1.12; both sight_radius by default)
    for p, sight in ((red, cfg.red_sight), (blue, cfg.blue_sight)):
        # on top: at small radii the circle lies inside the agent
        circle(p, sight * scale, outline=COLOURS["sight"], width=line_w)
    for i in range(2):
        name = "goal" if i == goal else "fake"
        canvas.label(landmarks[i], lm_r, name, COLOURS["text"], below=False)
    if trapped:
        circle(red, agent_r + 3 * line_w + 1, outline=COLOURS["trapped"], width=3 * line_w)
        canvas.label(red, agent_r + 3 * line_w + 2, "TRAPPED", COLOURS["trapped"], below=True)


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    size: int,
    caption: Sequence[str],
    step: str,
    visible: bool | None,
    status: str,
    trapped: bool,
    progress: float | None,
) -> None:
    """The panel under the arena of :func:`draw_frame`: caption lines, the step counter
    with the status line, the legend and the optional progress bar."""
    panel = panel_height(size)
    line_w = max(1, size // 200)
    draw.rectangle([0, size, size - 1, size + panel - 1], fill=COLOURS["panel"])
    pad, line = _pad(size), _line_px(size)
    y = size + pad
    for text in caption:
        draw.text((pad, y), text, fill=COLOURS["text"], font=font)
        y += line
    y = size + pad + CAPTION_LINES * line
    parts = [step]
    if visible is not None:
        parts.append("in sight" if visible else "out of sight")
    if status:
        parts.append(status)
    text = "   ".join(parts)
    draw.text((pad, y), text, fill=COLOURS["text"], font=font)
    if trapped:
        x = pad + draw.textlength(text + "   ", font=font)
        draw.text((x, y), "TRAPPED", fill=COLOURS["trapped"], font=font)
    _legend(draw, font, pad, y + line, size, line)
    if progress is not None:
        bar = max(2, line_w * 2)
        end = pad + (size - 2 * pad) * min(max(progress, 0.0), 1.0)
        draw.rectangle([pad, size + panel - bar, end, size + panel - 1], fill=COLOURS["wall"])


def _legend(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    x0: int,
    y0: int,
    size: int,
    line: int,
) -> None:
    """Swatches and names, flowed over the legend rows of the panel."""
    r = line * 0.32
    items = [
        ("red", "red agent (adversary)"),
        ("blue", "blue agent"),
        ("goal", "goal"),
        ("fake", "fake"),
        ("sight", "sight radius"),
        ("trapped", "trapped"),
    ]
    x: float
    y: float
    x, y = x0, y0
    for colour, text in items:
        width = 2 * r + 4 + draw.textlength(text, font=font)
        if x > x0 and x + width > size - x0:
            x, y = x0, y + line
        cx, cy = x + r, y + line / 2 - 1
        box = [cx - r, cy - r, cx + r, cy + r]
        if colour in ("sight", "trapped"):
            draw.ellipse(box, outline=COLOURS[colour], width=2 if colour == "sight" else 3)
        else:
            draw.ellipse(box, fill=COLOURS[colour])
        draw.text((x + 2 * r + 4, y), text, fill=COLOURS["text"], font=font)
        x += width + 1.2 * line


def render_frame(
    cfg: EnvConfig,
    state: State,
    index: int = 0,
    size: int = 400,
    caption: Sequence[str] | None = None,
    trails: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Image (:func:`draw_frame`) of world ``index`` of ``state``.

    ``caption`` defaults to the reward variant and the sight radius."""
    if caption is None:
        sight = f"sight radius {cfg.sight_radius:g}"
        if cfg.split_sight:
            sight = f"sight blue {cfg.blue_sight:g} red {cfg.red_sight:g}"
        caption = [f"physical deception · {cfg.baseline} reward · {sight}"]
    return draw_frame(
        cfg,
        state.pos[index, RED],
        state.pos[index, BLUE],
        state.landmarks[index],
        int(state.goal_index[index]),
        bool(state.trapped[index]),
        state.t,
        visible=bool(red_visible(cfg, state)[index]),
        caption=caption,
        trails=trails,
        size=size,
    )


def write_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write RGB frames as an animated GIF that loops forever.

    Pillow stores a frame identical to the one before it as a longer duration of that
    one, not as a frame of its own."""
    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=int(1000 / fps),
        loop=0,
        optimize=True,
    )
    return path
