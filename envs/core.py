"""Batched core of the physical-deception environment (docs/spec.md §1.1–§1.11).

Every rule of the environment lives here once: the start distribution, the physics
(damping and wall contact force), the trap and red's freeze, the sight radius, both
observation layouts and both reward variants. Arrays carry a leading batch dimension
``B``; the PettingZoo env, the trainer, the evaluator and the SOO code are all views
over these functions.

Agent axis convention: index 0 is red (``adversary_0``), index 1 is blue (``agent_0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import numpy as np

RED, BLUE = 0, 1
#: PettingZoo agent ids of red and blue (the names of the published environment), in the
#: order of the agent axis.
RED_ID, BLUE_ID = "adversary_0", "agent_0"
AGENT_IDS = (RED_ID, BLUE_ID)
#: The paper's sight radius: the default of ``EnvConfig.sight_radius``.
PAPER_SIGHT_RADIUS = 0.125
BASELINES = ("deceptive", "honest")
#: Who moves red (docs/spec.md §1.13): the learner's action, or the scripted rule.
RED_POLICIES = ("learned", "scripted")
OBS_DIM_RED = 6
OBS_DIM_BLUE = 10
ACTION_DIM = 2
#: Blue observation slots holding red's relative position (zero when out of sight).
BLUE_RED_SLOTS = slice(6, 8)
#: Blue observation slots holding the trap flag (twice).
BLUE_TRAP_SLOTS = slice(8, 10)
#: Blue observation slots holding red's velocity relative to blue (zero when out of
#: sight), appended after :data:`BLUE_TRAP_SLOTS` with ``blue_sees_velocity`` (§1.6).
BLUE_RED_VELOCITY_SLOTS = slice(10, 12)
#: Red observation slots holding blue's velocity relative to red (zero when out of
#: sight), appended after blue's offset with ``red_sees_velocity`` (§1.6).
RED_BLUE_VELOCITY_SLOTS = slice(6, 8)
#: Number of uniform draws one world's reset consumes (see :func:`reset`).
RESET_DRAWS = 9


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class EnvConfig:
    """Every constant of docs/spec.md §1.10, with the values given there as defaults."""

    baseline: str = field(
        default="deceptive",
        metadata=_help("blue's reward: deceptive (with the trap bonus) or honest"),
    )
    max_cycles: int = field(
        default=50,
        metadata=_help("episode length in steps (truncation only; there is no termination)"),
    )
    arena_half_width: float = field(
        default=1.0,
        metadata=_help("walls stand on x = ±arena_half_width and y = ±arena_half_width"),
    )
    wall_width: float = field(
        default=0.1,
        metadata=_help("width of a wall; the contact distance is agent_radius + wall_width / 2"),
    )
    agent_radius: float = field(default=0.15, metadata=_help("radius of both agents"))
    landmark_radius: float = field(
        default=0.08,
        metadata=_help("radius of both landmarks; at a landmark means centre distance < 2 × this"),
    )
    sight_radius: float = field(
        default=PAPER_SIGHT_RADIUS,
        metadata=_help(
            "centre distance at or below which the two agents see each other (the paper's "
            "0.125; red follows blue only at larger radii such as 0.5, the radius of "
            "reproduce's quick preset)"
        ),
    )
    start_radius: float = field(
        default=0.125,
        metadata=_help("blue starts within this distance of red (independent of sight_radius)"),
    )
    spawn_range: float = field(
        default=0.825,
        metadata=_help("red and the landmarks start uniform in [-spawn_range, spawn_range]²"),
    )
    dt: float = field(default=0.1, metadata=_help("integration time step"))
    damping: float = field(default=0.25, metadata=_help("fraction of velocity lost per step"))
    mass: float = field(default=1.0, metadata=_help("mass of an agent"))
    sensitivity: float = field(default=5.0, metadata=_help("action-to-force gain"))
    contact_force: float = field(
        default=100.0, metadata=_help("stiffness of the wall contact force")
    )
    contact_margin: float = field(
        default=0.001, metadata=_help("softness k of the softplus wall contact")
    )
    goal_reward: float = field(
        default=5.0, metadata=_help("reward per step for being at the goal landmark (both agents)")
    )
    red_sight_reward: float = field(
        default=1.0, metadata=_help("red's reward per step for having blue in sight")
    )
    trap_reward: float = field(
        default=10.0, metadata=_help("deceptive blue's reward per step while red is trapped")
    )
    red_speed_min: float = field(
        default=1.0,
        metadata=_help(
            "closed-loop variant: red's action-to-force gain is drawn per episode from "
            "U[red_speed_min, red_speed_max] × sensitivity; no agent observes it (1, 1: off)"
        ),
    )
    red_speed_max: float = field(
        default=1.0, metadata=_help("upper end of red's per-episode speed factor")
    )
    red_delay_max: int = field(
        default=0,
        metadata=_help(
            "closed-loop variant: red cannot move for the first k steps of an episode, "
            "k uniform in 0..red_delay_max and observed by no one (0: off)"
        ),
    )
    guide_reward: float = field(
        default=0.0,
        metadata=_help(
            "§1.12: blue's reward per step for red being at the goal landmark, under both "
            "baselines (0: off)"
        ),
    )
    trap_deadline: int = field(
        default=0,
        metadata=_help(
            "§1.12: the deceptive blue's trap bonus is paid only when red was trapped at a "
            "step ≤ this (0: off, paid for any trap)"
        ),
    )
    blue_sight_radius: float = field(
        default=0.0,
        metadata=_help("§1.12: centre distance at or below which blue sees red (0: sight_radius)"),
    )
    red_sight_radius: float = field(
        default=0.0,
        metadata=_help(
            "§1.12: centre distance at or below which red sees blue and earns its sight "
            "reward (0: sight_radius)"
        ),
    )
    start_distance_min: float = field(
        default=0.0,
        metadata=_help(
            "§1.12: blue starts at a distance from red in [start_distance_min, "
            "start_radius] (0: off, within start_radius)"
        ),
    )
    red_leash: int = field(
        default=0,
        metadata=_help(
            "§1.12: red's action force is zero while blue has been out of red's sight for "
            "this many consecutive steps or more (0: off)"
        ),
    )
    red_policy: str = field(
        default="learned",
        metadata=_help(
            "who moves red: learned (the action given to step) or scripted (step replaces "
            "red's action by the scripted follower/contrarian of docs/spec.md §1.13)"
        ),
    )
    red_contrarian_prob: float = field(
        default=0.0,
        metadata=_help(
            "scripted red (§1.13): probability that an episode's red is a contrarian, not a "
            "follower; drawn at reset, observed by no one (needs red_policy scripted)"
        ),
    )
    red_sees_velocity: bool = field(
        default=False,
        metadata=_help(
            "§1.6: red's observation gains two slots at its end, blue's velocity minus red's "
            "while blue is in red's sight, else 0 (8 slots instead of 6)"
        ),
    )
    blue_sees_velocity: bool = field(
        default=False,
        metadata=_help(
            "§1.6: blue's observation gains two slots at its end, red's velocity minus blue's "
            "while red is in blue's sight, else 0 (12 slots instead of 10)"
        ),
    )
    record_applied_action: bool = field(
        default=False,
        metadata=_help(
            "§1.13: the replay buffer and the exported trajectories hold the action the "
            "physics applied (after the scripted red, leash, start delay and trap freeze), "
            "not the one given; with a scripted red, red's actor is then not trained"
        ),
    )

    history: int = field(
        default=1,
        metadata=_help(
            "§1.6: each agent observes its last `history` observations stacked, oldest first "
            "and newest last, frames before the episode's start all 0 (1: the single current "
            "frame; both agents)"
        ),
    )

    def __post_init__(self) -> None:
        _check_history(self.history)
        if self.baseline not in BASELINES:
            raise ValueError(
                f"unknown baseline {self.baseline!r}; allowed values: {', '.join(BASELINES)}"
            )
        if (
            isinstance(self.max_cycles, bool)
            or not isinstance(self.max_cycles, (int, np.integer))
            or self.max_cycles <= 0
        ):
            raise ValueError(f"max_cycles must be a positive integer, got {self.max_cycles!r}")
        if not 0.0 <= self.damping < 1.0:
            raise ValueError(f"damping must be in [0, 1), got {self.damping!r}")
        for name in ("sight_radius", "start_radius", "spawn_range", "dt", "mass", "contact_margin"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 < self.red_speed_min <= self.red_speed_max:
            raise ValueError(
                "red speed factors must satisfy 0 < red_speed_min <= red_speed_max, got "
                f"{self.red_speed_min!r}, {self.red_speed_max!r}"
            )
        if not 0 <= self.red_delay_max < self.max_cycles:
            raise ValueError(
                f"red_delay_max must be in 0..max_cycles-1, got {self.red_delay_max!r}"
            )
        for name in ("guide_reward", "blue_sight_radius", "red_sight_radius"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 (0: off), got {getattr(self, name)!r}")
        for name in ("trap_deadline", "red_leash"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0 (0: off), got {v!r}")
        if not 0 <= self.start_distance_min <= self.start_radius:
            raise ValueError(
                "start_distance_min must be in [0, start_radius], got "
                f"{self.start_distance_min!r} with start_radius {self.start_radius!r}"
            )
        if self.start_distance_min > 0 and self.start_radius > self.spawn_range:
            raise ValueError(
                "start_distance_min > 0 needs start_radius <= spawn_range, got "
                f"start_radius {self.start_radius!r}, spawn_range {self.spawn_range!r}"
            )
        if self.red_policy not in RED_POLICIES:
            raise ValueError(
                f"unknown red_policy {self.red_policy!r}; allowed values: {', '.join(RED_POLICIES)}"
            )
        if not 0.0 <= self.red_contrarian_prob <= 1.0:
            raise ValueError(
                f"red_contrarian_prob must be in [0, 1], got {self.red_contrarian_prob!r}"
            )
        if self.red_contrarian_prob > 0 and not self.scripted_red:
            raise ValueError("red_contrarian_prob > 0 needs red_policy scripted (§1.13)")
        for name in ("red_sees_velocity", "blue_sees_velocity", "record_applied_action"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def scripted_red(self) -> bool:
        """Red is moved by the scripted rule of §1.13 (:func:`scripted_red_action`)."""
        return self.red_policy == "scripted"

    @property
    def varies_red_speed(self) -> bool:
        """Red's speed is drawn per episode (the closed-loop variant is on)."""
        return self.red_speed_min != 1.0 or self.red_speed_max != 1.0

    @property
    def blue_sight(self) -> float:
        """Blue's sight radius: ``blue_sight_radius``, or ``sight_radius`` when that is 0."""
        return self.blue_sight_radius or self.sight_radius

    @property
    def red_sight(self) -> float:
        """Red's sight radius: ``red_sight_radius``, or ``sight_radius`` when that is 0."""
        return self.red_sight_radius or self.sight_radius

    @property
    def split_sight(self) -> bool:
        """Blue and red see at different radii (§1.12)."""
        return self.blue_sight != self.red_sight

    @property
    def at_landmark_distance(self) -> float:
        """Centre distance below which an agent is "at" a landmark (0.16)."""
        return 2.0 * self.landmark_radius

    @property
    def wall_contact_distance(self) -> float:
        """d_min of the wall force: agent radius plus half the wall width (0.2)."""
        return self.agent_radius + 0.5 * self.wall_width

    @cached_property
    def hot(self) -> HotConstants:
        """The constants of the per-step functions, built once per configuration (see
        :class:`HotConstants`). Cached on the instance, never compared, hashed or pickled."""
        return HotConstants(self)

    def __getstate__(self) -> dict[str, Any]:
        # a pickled config holds its fields only, as before the cache existed
        return {k: v for k, v in self.__dict__.items() if k != "hot"}

    def with_(self, **changes: Any) -> EnvConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of all configurable fields."""
        return [f.name for f in fields(cls)]


_F64 = np.dtype(np.float64)


def _f64(x: float) -> np.ndarray:
    """``x`` as a read-only 0-d float64 array."""
    a = np.array(x, dtype=np.float64)
    a.flags.writeable = False
    return a


_ONE, _MINUS_ONE = _f64(1.0), _f64(-1.0)


def _is_f64(x: object) -> bool:
    """``x`` is a float64 array (or numpy float64): it may meet a 0-d float64 constant."""
    return getattr(x, "dtype", None) is _F64


class HotConstants:
    """Per-configuration constants of :func:`step`, :func:`wall_force`, :func:`outputs` and
    :func:`rewards` (``EnvConfig.hot``), computed once instead of on every call.

    Numbers are 0-d float64 arrays. numpy multiplies (adds, compares) a float64 array by
    one with the very operation it uses for the Python float it holds, so every result is
    bit-identical; it only skips converting a Python scalar on each call (about 0.2 µs per
    operation at one world, issue 34 item 7). They are used only where the other operand
    is float64; where it may not be (the caller's actions, a hand-made state) the Python
    float of the config is used, so a float32 input keeps numpy's promotion (NEP 50) and
    its results. The derived numbers are computed by the same expressions as before
    (e.g. ``at2`` = ``cfg.at_landmark_distance**2``).
    """

    __slots__ = (
        "sensitivity",
        "keep",
        "dt",
        "unit_mass",
        "zero",
        "wall_offsets",
        "contact_distance",
        "margin",
        "contact_scale",
        "at2",
        "blue_sight2",
        "red_sight2",
        "split_sight",
        "sees_velocity",
        "scripted",
        "deceptive",
        "goal_reward",
        "red_sight_reward",
        "trap_reward",
        "guide_reward",
    )

    def __init__(self, cfg: EnvConfig) -> None:
        self.sensitivity = _f64(cfg.sensitivity)
        self.keep = _f64(1.0 - cfg.damping)
        self.dt = _f64(cfg.dt)
        self.unit_mass = cfg.mass == 1.0
        self.zero = _f64(0.0)
        #: [a, −a] shaped (2, 1, 1, 1) for positions (B, 2 agents, 2), as _wall_offsets
        self.wall_offsets = _wall_offsets(cfg.arena_half_width, 3)
        self.contact_distance = _f64(cfg.wall_contact_distance)
        self.margin = _f64(cfg.contact_margin)
        self.contact_scale = _f64(cfg.contact_force * cfg.contact_margin)
        self.at2 = _f64(cfg.at_landmark_distance**2)
        self.blue_sight2 = _f64(cfg.blue_sight**2)
        self.red_sight2 = _f64(cfg.red_sight**2)
        self.split_sight = cfg.split_sight
        self.sees_velocity = cfg.red_sees_velocity or cfg.blue_sees_velocity
        self.scripted = cfg.scripted_red
        self.deceptive = cfg.baseline == "deceptive"
        self.goal_reward = _f64(cfg.goal_reward)
        self.red_sight_reward = _f64(cfg.red_sight_reward)
        self.trap_reward = _f64(cfg.trap_reward)
        self.guide_reward = _f64(cfg.guide_reward)


@dataclass(eq=False, slots=True)
class State:
    """State of B worlds. Positions/velocities are (B, 2 agents, 2) with red first.

    :func:`step` returns a new State and never changes the one it is given (the arrays
    that do not change within an episode are shared between the two). ``goal``, ``fake``
    and ``blue_targets`` are derived from ``landmarks`` and ``goal_index`` when not given;
    :func:`step` passes them on, so they are looked up once per episode. (A frozen
    dataclass updated with :func:`dataclasses.replace` was measured 8% slower per step at
    one world, issue 19, so the class itself stays mutable.)
    """

    pos: np.ndarray
    vel: np.ndarray
    #: (B, 2 landmarks, 2)
    landmarks: np.ndarray
    #: (B,) int64, which landmark is the goal
    goal_index: np.ndarray
    #: (B,) bool, red has reached the fake landmark at some step
    trapped: np.ndarray
    #: steps taken since reset (all worlds of a batch are in step)
    t: int
    # goal, fake, blue_targets and points are derived in __post_init__ when not given, so
    # after construction they are arrays (None only as the "derive me" default)
    #: (B, 2) goal landmark position
    goal: np.ndarray = None  # type: ignore[assignment]
    #: (B, 2) fake landmark position
    fake: np.ndarray = None  # type: ignore[assignment]
    #: (B, 3, 2) goal, landmark 0, landmark 1: what blue's observation is relative to
    blue_targets: np.ndarray = None  # type: ignore[assignment]
    #: (B,) red's speed factor this episode (closed-loop variant; None: 1)
    red_gain: np.ndarray | None = None
    #: (B,) steps red cannot move at the start of this episode (variant; None: 0)
    red_delay: np.ndarray | None = None
    #: (B,) int64 step at which red became trapped, -1 while not trapped (kept only with
    #: ``trap_deadline`` > 0; None otherwise)
    trap_step: np.ndarray | None = None
    #: (B,) int64 consecutive states (this one included) with blue out of red's sight
    #: (kept only with ``red_leash`` > 0; None otherwise)
    unseen: np.ndarray | None = None
    #: (B,) bool, this episode's scripted red is a contrarian (§1.13; None: not scripted)
    red_contrarian: np.ndarray | None = None
    #: (B, 4, 2) goal, landmark 0, landmark 1, fake: the points :func:`step_outputs`
    #: measures from both agents in one subtraction (derived like ``blue_targets``)
    points: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.goal is None or self.fake is None or self.blue_targets is None:
            rows = np.arange(self.landmarks.shape[0])
            gi = np.asarray(self.goal_index)
            self.goal = self.landmarks[rows, gi]
            self.fake = self.landmarks[rows, 1 - gi]
            self.blue_targets = np.concatenate([self.goal[:, None], self.landmarks], axis=1)
            self.points = None
        if self.points is None:
            self.points = np.concatenate([self.blue_targets, self.fake[:, None]], axis=1)

    @property
    def batch_size(self) -> int:
        """Number of worlds."""
        return self.pos.shape[0]

    def successor(
        self,
        pos: np.ndarray,
        vel: np.ndarray,
        trapped: np.ndarray,
        trap_step: np.ndarray | None,
        unseen: np.ndarray | None,
    ) -> State:
        """The state one step later in the same episode: these arrays new, every
        per-episode array shared with this state. Set field by field (a third of the
        keyword constructor's cost, which :func:`step` pays every step); a field added to
        the class must be added here, or reading it from a stepped state raises."""
        new = State.__new__(State)
        new.pos, new.vel, new.trapped, new.t = pos, vel, trapped, self.t + 1
        new.trap_step, new.unseen = trap_step, unseen
        new.landmarks, new.goal_index = self.landmarks, self.goal_index
        new.goal, new.fake, new.blue_targets, new.points = (
            self.goal,
            self.fake,
            self.blue_targets,
            self.points,
        )
        new.red_gain, new.red_delay, new.red_contrarian = (
            self.red_gain,
            self.red_delay,
            self.red_contrarian,
        )
        return new


def _check_history(history: Any) -> None:
    """Refuse a ``history`` (§1.6) that is not a positive integer."""
    if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 1:
        raise ValueError(f"history must be a positive integer, got {history!r}")


def obs_dims(cfg: EnvConfig) -> tuple[int, int]:
    """Observation sizes (red, blue) of ``cfg`` (docs/spec.md §1.6): :data:`OBS_DIM_RED`
    and :data:`OBS_DIM_BLUE` (6, 10), each plus 2 when that agent sees the other's
    relative velocity (``red_sees_velocity``, ``blue_sees_velocity``)."""
    return (
        OBS_DIM_RED + 2 * int(cfg.red_sees_velocity),
        OBS_DIM_BLUE + 2 * int(cfg.blue_sees_velocity),
    )


def red_slots(cfg: EnvConfig) -> list[int]:
    """Every slot of blue's observation that carries red (docs/spec.md §1.6): red's offset
    (:data:`BLUE_RED_SLOTS`, 6 and 7) and, with ``blue_sees_velocity``, red's relative
    velocity (:data:`BLUE_RED_VELOCITY_SLOTS`, 10 and 11). All are 0 while red is out of
    blue's sight. What blinding, the blind and shuffled-red probes and red-slot norms
    blank, shuffle or measure."""
    slots = list(range(BLUE_RED_SLOTS.start, BLUE_RED_SLOTS.stop))
    if cfg.blue_sees_velocity:
        slots += list(range(BLUE_RED_VELOCITY_SLOTS.start, BLUE_RED_VELOCITY_SLOTS.stop))
    return slots


def input_dims(cfg: EnvConfig) -> tuple[int, int]:
    """What each agent (red, blue) observes and its actor reads (docs/spec.md §1.6):
    ``history`` frames of :func:`obs_dims` each (6, 10 by default; 4 × with history 4)."""
    k = int(cfg.history)
    red, blue = obs_dims(cfg)
    return k * red, k * blue


def stacked_red_slots(cfg: EnvConfig) -> list[int]:
    """Every slot of blue's *stacked* observation (:func:`input_dims`) that carries red:
    :func:`red_slots` in each of the ``history`` frames (frame j holds slots j·w … j·w +
    w − 1, w blue's frame size). Equal to :func:`red_slots` with history 1. What surgical
    blinding zeroes and the actor's red-slot weights are."""
    width = obs_dims(cfg)[1]
    return [j * width + k for j in range(int(cfg.history)) for k in red_slots(cfg)]


def stack_frames(frames: np.ndarray, widths: Sequence[int]) -> np.ndarray:
    """Joint frames (k, ..., Σ widths), oldest first, as the stacked joint observation
    (..., k · Σ widths): per agent (of frame size ``widths[i]``, in order) its k frames
    side by side, oldest first (docs/spec.md §1.6)."""
    k = frames.shape[0]
    parts, start = [], 0
    for w in widths:
        block = np.moveaxis(frames[..., start : start + w], 0, -2)  # (..., k, w)
        parts.append(block.reshape(*block.shape[:-2], k * w))
        start += w
    return np.concatenate(parts, axis=-1)


def stack_episode(frames: np.ndarray, history: int, axis: int = -2) -> np.ndarray:
    """One agent's observations of whole episodes along the time ``axis`` (e.g. an export's
    ``obs_blue`` (S, N, T+1, w)) as the stacked observations the agent acted on (…, T+1,
    history · w): at step t the frames t − history + 1 … t, newest last, and zeros for the
    frames before the episode's start (docs/spec.md §1.6). ``history`` 1 returns
    ``frames`` itself."""
    if history == 1:
        return frames
    x = np.moveaxis(np.asarray(frames), axis, 0)  # (T+1, ..., w)
    out = np.zeros((history, *x.shape), dtype=x.dtype)
    for back in range(history):  # frame history-1-back holds the step `back` steps ago
        if back < x.shape[0]:
            out[history - 1 - back, back:] = x[: x.shape[0] - back]
    out = np.moveaxis(out, 0, -2)  # (T+1, ..., history, w)
    out = out.reshape(*out.shape[:-2], -1)
    return np.moveaxis(out, 0, axis)


class ObservationHistory:
    """The last ``history`` joint frames of a batch of worlds (docs/spec.md §1.6): what an
    environment hands out with ``EnvConfig.history`` > 1. :meth:`reset` starts an episode
    (earlier frames all 0), :meth:`push` adds its next frame; both return the stacked
    joint observation (:func:`stack_frames`). With history 1 both return the frame itself
    (no copy), so the default path is unchanged."""

    def __init__(self, history: int, widths: Sequence[int]) -> None:
        _check_history(history)
        self.history, self.widths = int(history), tuple(int(w) for w in widths)
        self.frames: np.ndarray | None = None  # (history, ..., Σ widths), oldest first

    def reset(self, frame: np.ndarray) -> np.ndarray:
        """Start an episode whose first joint frame is ``frame`` (..., Σ widths)."""
        if self.history == 1:
            return frame
        self.frames = np.zeros((self.history, *frame.shape), dtype=frame.dtype)
        return self.push(frame)

    def push(self, frame: np.ndarray) -> np.ndarray:
        """Add the episode's next joint frame; the stacked observation (..., k · Σ widths)."""
        if self.history == 1:
            return frame
        if self.frames is None:
            raise RuntimeError("ObservationHistory: call reset() first")
        self.frames[:-1] = self.frames[1:].copy()
        self.frames[-1] = frame
        return stack_frames(self.frames, self.widths)


def velocities_from_positions(cfg: EnvConfig, positions: np.ndarray, axis: int = -2) -> np.ndarray:
    """Velocities of an episode's states from its positions along the time ``axis`` (0 at
    t = 0; (x_t − x_{t−1}) / dt after, since a step moves by dt·v, docs/spec.md §1.4), e.g.
    a trajectory's ``red_pos`` (S, N, T+1, 2), to rebuild observations with the relative
    velocity slots. Equal to the simulated velocities up to rounding (and to the float32
    rounding of exported positions), not bit for bit."""
    x = np.moveaxis(np.asarray(positions, dtype=np.float64), axis, 0)
    vel = np.zeros_like(x)
    vel[1:] = (x[1:] - x[:-1]) / cfg.dt
    return np.moveaxis(vel, 0, axis)


def reset_draws(cfg: EnvConfig) -> int:
    """Uniform draws one world's reset consumes: 9, plus one for each closed-loop variant
    that is on (red's speed factor, red's start delay)."""
    return (
        RESET_DRAWS
        + int(cfg.varies_red_speed)
        + int(cfg.red_delay_max > 0)
        + int(cfg.scripted_red)  # red's hidden type (§1.13)
    )


def _uniform_draws(
    rng: np.random.Generator | int | Sequence[int], batch_size: int | None, draws: int
) -> np.ndarray:
    """(B, draws) uniforms; one generator for all worlds, or one seed per world."""
    if isinstance(rng, np.random.Generator):
        if batch_size is None:
            raise ValueError("batch_size is required when resetting from a Generator")
        return rng.random((batch_size, draws))
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng)).random((batch_size or 1, draws))
    seeds = list(rng)
    if batch_size is not None and batch_size != len(seeds):
        raise ValueError(f"got {len(seeds)} seeds for batch_size {batch_size}")
    return np.stack([np.random.default_rng(int(s)).random(draws) for s in seeds])


def reset_from_uniforms(cfg: EnvConfig, u: np.ndarray) -> State:
    """Start state of B worlds from a (B, ``reset_draws(cfg)``) array of U[0, 1) draws.

    Column layout: 0-3 landmark coordinates, 4 goal choice, 5-6 red position,
    7 blue's start distance, 8 blue's start angle; then, when on, red's speed factor,
    red's start delay (docs/spec.md §1.3, §1.11) and the scripted red's type (§1.13).
    """
    if u.shape[1] != reset_draws(cfg):
        raise ValueError(f"{u.shape[1]} draws per world; this config takes {reset_draws(cfg)}")
    b = u.shape[0]
    s = cfg.spawn_range
    landmarks = (u[:, 0:4] * 2.0 * s - s).reshape(b, 2, 2)
    goal_index = (u[:, 4] >= 0.5).astype(np.int64)
    red = u[:, 5:7] * 2.0 * s - s
    phi = u[:, 8] * 2.0 * np.pi
    if cfg.start_distance_min > 0:  # §1.12: distance in [min, start_radius], kept exactly
        lo = cfg.start_distance_min
        rho = lo + u[:, 7] * (cfg.start_radius - lo)
        offset = rho[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
        # mirror a coordinate of the offset that would leave the spawn square (inside
        # then, as start_radius <= spawn_range): the distance is unchanged
        offset = np.where(np.abs(red + offset) > s, -offset, offset)
        blue = np.clip(red + offset, -s, s)
    else:
        rho = u[:, 7] * cfg.start_radius
        blue = np.clip(red + rho[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1), -s, s)
    extra = RESET_DRAWS
    red_gain = red_delay = None
    if cfg.varies_red_speed:
        red_gain = cfg.red_speed_min + u[:, extra] * (cfg.red_speed_max - cfg.red_speed_min)
        extra += 1
    if cfg.red_delay_max > 0:
        red_delay = np.floor(u[:, extra] * (cfg.red_delay_max + 1)).astype(np.int64)
        extra += 1
    red_contrarian = None
    if cfg.scripted_red:  # §1.13: the hidden type, contrarian with red_contrarian_prob
        red_contrarian = u[:, extra] < cfg.red_contrarian_prob
    trap_step = np.full(b, -1, dtype=np.int64) if cfg.trap_deadline > 0 else None
    unseen = None
    if cfg.red_leash > 0:
        unseen = (~red_sees_squared(cfg, squared_length(red - blue))).astype(np.int64)
    return State(
        pos=np.stack([red, blue], axis=1),
        vel=np.zeros((b, 2, 2)),
        landmarks=landmarks,
        goal_index=goal_index,
        trapped=np.zeros(b, dtype=bool),
        t=0,
        red_gain=red_gain,
        red_delay=red_delay,
        trap_step=trap_step,
        unseen=unseen,
        red_contrarian=red_contrarian,
    )


def red_hidden_variables(cfg: EnvConfig, u: np.ndarray) -> dict[str, np.ndarray]:
    """Red's per-episode hidden variables of B worlds, from their (B, ``reset_draws(cfg)``)
    start draws, as :func:`reset_from_uniforms` draws them (docs/spec.md §1.3, §1.11,
    §1.13): ``red_type`` ((B,) bool, the scripted red is a contrarian; with a scripted
    red), ``red_speed`` ((B,) red's speed factor g; with the speed variant on) and
    ``red_delay`` ((B,) int64 start delay; with the delay variant on). Only the variables
    of variants that are on; empty for the default environment. No agent observes them;
    the counterfactual-red probe (§4.4) picks its donors by them."""
    state = reset_from_uniforms(cfg, u)
    out = {
        "red_type": state.red_contrarian,
        "red_speed": state.red_gain,
        "red_delay": state.red_delay,
    }
    return {k: v for k, v in out.items() if v is not None}


def reset(
    cfg: EnvConfig,
    rng: np.random.Generator | int | Sequence[int],
    batch_size: int | None = None,
) -> State:
    """Start state of a batch of worlds.

    ``rng`` is a Generator (world i uses row i of one (B, 9) draw), an int seed, or a
    sequence of seeds, one per world. A world reset from seed ``s`` alone equals row 0
    of a Generator ``default_rng(s)`` batch, so a PettingZoo env reset with ``seed=s``
    replays world i of a batch reset from ``[..., s, ...]``.
    """
    return reset_from_uniforms(cfg, _uniform_draws(rng, batch_size, reset_draws(cfg)))


@lru_cache(maxsize=32, typed=True)
def _wall_offsets(half_width: float, ndim: int) -> np.ndarray:
    """Read-only (2, 1, …, 1) array [a, −a] that shifts positions of ``ndim`` dimensions to
    the walls at −a and +a (built once, not on every step)."""
    offsets = np.array([half_width, -half_width]).reshape((2,) + (1,) * ndim)
    offsets.flags.writeable = False
    return offsets


def wall_force(cfg: EnvConfig, pos: np.ndarray) -> np.ndarray:
    """Soft contact force of the four walls on agents at ``pos`` (any shape ending in 2).

    Per wall w ∈ {−a, +a} on each axis: 100 · sign(d) · k · softplus((d_min − |d|) / k),
    with d = x − w the signed distance along the wall's normal.
    """
    c = cfg.hot
    offsets = c.wall_offsets if pos.ndim == 3 else _wall_offsets(cfg.arena_half_width, pos.ndim)
    d = pos + offsets  # to the wall at −a, +a; float64 from here on (the offsets are)
    penetration = np.logaddexp(c.zero, (c.contact_distance - np.abs(d)) / c.margin)
    f = np.sign(d) * penetration
    return c.contact_scale * (f[0] + f[1])


def squared_length(d: np.ndarray) -> np.ndarray:
    """x² + y² of the offsets ``d`` (any shape ending in 2: x, y)."""
    sq = d * d
    # one add of the two columns: bit-identical to summing the last axis, and far cheaper
    # than a reduction over an axis of length 2 (which numpy loops over pair by pair)
    return sq[..., 0] + sq[..., 1]


def within(a: np.ndarray, b: np.ndarray, radius: float, strict: bool = True) -> np.ndarray:
    """Centre distance of points ``a`` and ``b`` (any matching shapes ending in 2) below
    ``radius`` (``<``), or at most ``radius`` with ``strict=False``."""
    d2 = squared_length(a - b)
    return d2 < radius**2 if strict else d2 <= radius**2


def at_landmark_squared(cfg: EnvConfig, d2: np.ndarray) -> np.ndarray:
    """True where an agent whose squared centre distance to a landmark is ``d2`` is "at"
    it (centre distance < 0.16)."""
    return d2 < (cfg.hot.at2 if _is_f64(d2) else cfg.at_landmark_distance**2)


def at_landmark(cfg: EnvConfig, pos: np.ndarray, landmark: np.ndarray) -> np.ndarray:
    """True where an agent at ``pos`` is "at" ``landmark`` (centre distance < 0.16)."""
    return at_landmark_squared(cfg, squared_length(pos - landmark))


def in_sight_squared(cfg: EnvConfig, d2: np.ndarray) -> np.ndarray:
    """True where blue, at squared centre distance ``d2`` from red, sees red (centre
    distance ≤ blue's sight radius; both agents' radius unless §1.12 splits them)."""
    return d2 <= (cfg.hot.blue_sight2 if _is_f64(d2) else cfg.blue_sight**2)


def red_sees_squared(cfg: EnvConfig, d2: np.ndarray) -> np.ndarray:
    """True where red, at squared centre distance ``d2`` from blue, sees blue (centre
    distance ≤ red's sight radius, §1.12)."""
    return d2 <= (cfg.hot.red_sight2 if _is_f64(d2) else cfg.red_sight**2)


def in_sight(cfg: EnvConfig, red_pos: np.ndarray, blue_pos: np.ndarray) -> np.ndarray:
    """True where blue sees red (centre distance ≤ blue's sight radius)."""
    return in_sight_squared(cfg, squared_length(red_pos - blue_pos))


def _move(cfg: EnvConfig, state: State, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New positions and velocities of one step (docs/spec.md §1.4, §1.5, §1.11–§1.13): both
    agents integrate, a red trapped before this step stays frozen."""
    c = cfg.hot
    # the caller's actions keep their dtype (float32 ones are scaled in float32, NEP 50):
    # only float64 ones take the 0-d constant (the same product, bit for bit)
    push = (c.sensitivity if actions.dtype is _F64 else cfg.sensitivity) * actions
    if c.scripted:  # §1.13: red's given action is replaced by the scripted rule
        push[:, RED] = cfg.sensitivity * scripted_red_action(cfg, state)
    if state.red_gain is not None:  # closed-loop variant: red's speed factor this episode
        push[:, RED] *= state.red_gain[:, None]
    if state.unseen is not None:  # §1.12 leash: no force from red's action
        push[state.unseen >= cfg.red_leash, RED] = 0.0
    force = push + wall_force(cfg, state.pos)  # float64 (the wall force is)
    if not c.unit_mass:  # x / 1.0 == x exactly, so the default mass skips a pass
        force = force / cfg.mass
    vel = state.vel * (c.keep if state.vel.dtype is _F64 else 1.0 - cfg.damping) + force * c.dt
    if np.count_nonzero(state.trapped):  # any world trapped (far cheaper than .any())
        vel[state.trapped, RED] = 0.0
    if state.red_delay is not None:  # closed-loop variant: red held at its start
        vel[state.t < state.red_delay, RED] = 0.0
    return state.pos + vel * c.dt, vel


def _advance(
    cfg: EnvConfig, state: State, pos: np.ndarray, vel: np.ndarray, fake_d2: np.ndarray
) -> State:
    """The state after :func:`_move`: the trap flag from red's new squared distance to the
    fake landmark ``fake_d2`` (docs/spec.md §1.5), the deadline's and the leash's counters."""
    trapped = state.trapped | at_landmark_squared(cfg, fake_d2)
    trap_step = unseen = None
    if state.trap_step is not None:  # §1.12 deadline: remember when red became trapped
        trap_step = np.where(trapped & ~state.trapped, state.t + 1, state.trap_step)
    if state.unseen is not None:
        seen = red_sees_squared(cfg, squared_length(pos[:, RED] - pos[:, BLUE]))
        unseen = np.where(seen, 0, state.unseen + 1)
    return state.successor(pos, vel, trapped, trap_step, unseen)


def step(cfg: EnvConfig, state: State, actions: np.ndarray) -> State:
    """Advance B worlds by one step; ``actions`` is (B, 2 agents, 2), already in [-1, 1].

    Order: integrate both agents (a red trapped before this step stays frozen), then
    update the trap flag from red's new position. :func:`step_outputs` also returns the
    :func:`outputs` of the new state, sharing the distance work.
    """
    pos, vel = _move(cfg, state, actions)
    return _advance(cfg, state, pos, vel, squared_length(pos[:, RED] - state.fake))


def applied_actions(cfg: EnvConfig, state: State, actions: np.ndarray) -> np.ndarray:
    """(B, 2 agents, 2) the actions :func:`step` applies to ``state`` when given
    ``actions`` (docs/spec.md §1.13, ``record_applied_action``): red's given action is
    replaced by the scripted red's (§1.13), and is 0 where red's action moves nothing: in a
    step under the leash (§1.12), during red's start delay (§1.11) and once red is trapped
    (§1.5). Blue's is its given action. Red's speed factor (§1.11) scales the force of
    the action and is not part of it (the recorded action stays in [-1, 1]). Stepping
    ``state`` with these actions gives the same state, bit for bit, as with float64
    ``actions``."""
    out = np.array(actions, dtype=np.float64)  # a copy
    red = out[:, RED]
    if cfg.scripted_red:
        red[:] = scripted_red_action(cfg, state)
    held = state.trapped.copy()
    if state.unseen is not None:
        held |= state.unseen >= cfg.red_leash
    if state.red_delay is not None:
        held |= state.t < state.red_delay
    red[held] = 0.0
    return out


def unit(d: np.ndarray) -> np.ndarray:
    """Rows of ``d`` scaled to length 1 (zero rows stay zero): full force that way."""
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)


def scripted_red_action(cfg: EnvConfig, state: State) -> np.ndarray:
    """(B, 2) action of the scripted red (docs/spec.md §1.13), from red's observation only.

    Blue in red's sight (red's blue slots non-zero): a follower heads for blue, a
    contrarian for the landmark farther from blue (landmark 0 on a tie); full force.
    Blue out of sight: no force. Re-exported by ``soo_marl.envs.scripted`` beside the
    scripted blues; :func:`step` calls it when ``cfg.red_policy`` is scripted.
    """
    obs = observe(cfg, state)[0].astype(np.float64)
    landmarks, blue = obs[:, 0:4].reshape(-1, 2, 2), obs[:, 4:6]
    seen = np.any(blue != 0.0, axis=1)
    contrarian = state.red_contrarian
    if contrarian is None:
        contrarian = np.zeros(state.batch_size, dtype=bool)
    far = squared_length(landmarks[:, 1] - blue) > squared_length(landmarks[:, 0] - blue)
    target = np.where(
        contrarian[:, None], landmarks[np.arange(state.batch_size), far.astype(np.int64)], blue
    )
    return unit(target) * seen[:, None]


def red_visible(cfg: EnvConfig, state: State) -> np.ndarray:
    """(B,) bool: blue sees red (centre distance ≤ blue's sight radius)."""
    return in_sight(cfg, state.pos[:, RED], state.pos[:, BLUE])


def target_offsets(state: State) -> np.ndarray:
    """(B, 2 agents, 3, 2): goal, landmark 0 and landmark 1 minus each agent's position.

    One subtraction serves both observations and the goal test of :func:`outputs`.
    """
    return state.blue_targets[:, None] - state.pos[:, :, None]


def _relative_velocities(
    cfg: EnvConfig, state: State, blue_sees: np.ndarray, red_sees: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The velocity slots of docs/spec.md §1.6: (red's velocity − blue's where blue sees
    red, for blue; blue's − red's where red sees blue, for red), exactly 0 out of sight;
    None for an agent that does not see velocities. ``*_sees`` are (B,) bool or 1.0/0.0."""
    dv = state.vel[:, RED] - state.vel[:, BLUE]
    shown_blue = shown_red = None
    if cfg.blue_sees_velocity:
        shown_blue = np.where(blue_sees[:, None] != 0, dv, 0.0)
    if cfg.red_sees_velocity:
        shown_red = np.where(red_sees[:, None] != 0, -dv, 0.0)
    return shown_blue, shown_red


def _observations(
    state: State,
    targets: np.ndarray,
    red_from_blue: np.ndarray,
    red_from_blue_red: np.ndarray | None = None,
    velocities: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> tuple[np.ndarray, np.ndarray]:
    """Both observation layouts (docs/spec.md §1.6) as float32, from :func:`target_offsets`
    (or the four-point offsets of :func:`step_outputs`, whose fourth, the fake, is unused
    here) and red − blue already zeroed where blue does not see red (and, when given,
    zeroed where red does not see blue for red's observation; §1.12); ``velocities`` are
    the relative-velocity slots of :func:`_relative_velocities` (None: not observed)."""
    if red_from_blue_red is None:
        red_from_blue_red = red_from_blue
    b, _, k, _ = targets.shape  # k = 3 (goal, landmarks) or 4 (and the fake, step_outputs)
    flat = targets.reshape(b, 4 * k)  # a view of the subtraction that made targets
    flag = state.trapped[:, None]
    red = [flat[:, 2:6], -red_from_blue_red]  # red's landmark 0, landmark 1
    blue = [flat[:, 2 * k : 2 * k + 6], red_from_blue, flag, flag]  # blue's goal, landmarks
    vel_blue, vel_red = velocities
    if vel_red is not None:  # §1.6: blue's velocity relative to red's, appended
        red.append(vel_red)
    if vel_blue is not None:  # red's velocity relative to blue's, appended
        blue.append(vel_blue)
    # concatenating straight to float32 (same_kind casting) rounds each float64 value
    # once, exactly as astype would
    if b == 1:  # one world: one concatenation for both (numpy's per-call cost dominates)
        both = np.concatenate(red + blue, axis=1, dtype=np.float32)
        width = OBS_DIM_RED if vel_red is None else OBS_DIM_RED + 2
        return both[:, :width], both[:, width:]
    obs_red = np.concatenate(red, axis=1, dtype=np.float32)
    obs_blue = np.concatenate(blue, axis=1, dtype=np.float32)
    return obs_red, obs_blue


def observe(
    cfg: EnvConfig, state: State, visible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Observations (float32): red (B, 6) and blue (B, 10), layouts of docs/spec.md §1.6
    (sizes :func:`obs_dims`: 8 and 12 with the relative-velocity slots).

    ``visible`` is what blue sees (computed when not given); with split radii (§1.12)
    red's own sight is computed from the positions."""
    red_from_blue = state.pos[:, RED] - state.pos[:, BLUE]
    if visible is None:
        visible = in_sight_squared(cfg, squared_length(red_from_blue))
    red_part = None
    red_sees = visible
    if cfg.split_sight:
        red_sees = red_sees_squared(cfg, squared_length(red_from_blue))
        red_part = red_from_blue * red_sees[:, None]
    velocities: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if cfg.hot.sees_velocity:
        velocities = _relative_velocities(cfg, state, visible, red_sees)
    shown = red_from_blue * visible[:, None]
    return _observations(state, target_offsets(state), shown, red_part, velocities)


def at_goal(cfg: EnvConfig, state: State) -> np.ndarray:
    """(B, 2) bool: red / blue centre strictly within 0.16 of the goal."""
    return at_landmark(cfg, state.pos, state.goal[:, None, :])


def rewards(
    cfg: EnvConfig,
    state: State,
    visible: np.ndarray | None = None,
    goal_flags: np.ndarray | None = None,
) -> np.ndarray:
    """(B, 2) per-step rewards, red first, for ``cfg.baseline``.

    ``visible`` is red seeing blue (red's sight reward): computed when not given, from
    red's sight radius (the common one unless §1.12 splits them)."""
    if goal_flags is None:
        goal_flags = at_goal(cfg, state)
    if visible is None:
        visible = red_sees_squared(cfg, squared_length(state.pos[:, RED] - state.pos[:, BLUE]))
    return _rewards(cfg, state, visible.astype(np.float64), goal_flags)


def _rewards(cfg: EnvConfig, state: State, sees: np.ndarray, goal_flags: np.ndarray) -> np.ndarray:
    """:func:`rewards`, with red's sight given as 1.0 / 0.0 (float64, (B,)).

    flag · reward: numpy computes bool * float as 1.0 or 0.0 times the float64 reward, so
    casting the flags first and multiplying by the 0-d constants gives the same bits,
    without the mixed-type multiply (the slowest operation here at one world)."""
    c = cfg.hot
    r = goal_flags.astype(np.float64)
    r *= c.goal_reward
    red = r[:, RED]  # views: adding in place writes into r without a copy back
    red += sees * c.red_sight_reward
    blue = r[:, BLUE]
    if c.deceptive:
        trapped = state.trapped
        if state.trap_step is not None:  # §1.12 deadline: only traps by step t_max pay
            trapped = trapped & (state.trap_step <= cfg.trap_deadline)
        blue += trapped.astype(np.float64) * c.trap_reward
    if cfg.guide_reward > 0:  # §1.12 guide reward: red at the goal, both baselines
        blue += goal_flags[:, RED].astype(np.float64) * c.guide_reward
    return r


class Outputs(NamedTuple):
    """What the agents receive after a step (or at reset), computed together."""

    obs_red: np.ndarray
    obs_blue: np.ndarray
    #: (B, 2) rewards, red first
    rewards: np.ndarray
    #: (B,) blue sees red (blue's sight radius; both agents' unless §1.12 splits them)
    visible: np.ndarray
    #: (B, 2) red / blue at the goal
    at_goal: np.ndarray
    #: (B,) red sees blue (red's sight radius; the same array as ``visible`` unless split)
    red_sees: np.ndarray | None = None


def _outputs(cfg: EnvConfig, state: State, targets: np.ndarray, goal_d2: np.ndarray) -> Outputs:
    """:func:`outputs` from the offsets of the targets (``targets[:, :, :3]`` are the goal,
    landmark 0 and landmark 1 minus each agent's position) and both agents' squared
    distances to the goal ``goal_d2`` (B, 2)."""
    pos = state.pos
    red_from_blue = pos[:, RED] - pos[:, BLUE]
    d2 = squared_length(red_from_blue)
    visible = in_sight_squared(cfg, d2)
    goal_flags = at_landmark_squared(cfg, goal_d2)
    # x · 1.0 and x · 0.0 are what x * flag computes (numpy casts the flag to float64
    # first), without the slower mixed-type multiply
    seen = visible.astype(np.float64)
    shown = red_from_blue * seen[:, None]
    c = cfg.hot
    if c.split_sight:  # §1.12: red sees at its own radius
        red_sees = red_sees_squared(cfg, d2)
        seen = red_sees.astype(np.float64)
        red_part = red_from_blue * seen[:, None]
    else:
        red_sees, red_part = visible, None
    if c.sees_velocity:  # §1.6: the relative-velocity slots
        velocities = _relative_velocities(cfg, state, visible, red_sees)
        obs_red, obs_blue = _observations(state, targets, shown, red_part, velocities)
    else:
        obs_red, obs_blue = _observations(state, targets, shown, red_part)
    r = _rewards(cfg, state, seen, goal_flags)  # red's sight: seen as red sees
    return Outputs(obs_red, obs_blue, r, visible, goal_flags, red_sees)


def outputs(cfg: EnvConfig, state: State) -> Outputs:
    """Observations, rewards, sight and goal flags of a state, sharing the distance work:
    red − blue serves sight and both observations, :func:`target_offsets` serves both
    observations and the goal test."""
    targets = target_offsets(state)
    # squaring all of targets (contiguous) beats squaring its strided goal column
    return _outputs(cfg, state, targets, squared_length(targets)[:, :, 0])


#: Largest batch :func:`step_outputs` steps in one pass; larger ones are stepped by
#: :func:`step` then :func:`outputs` (the one wider subtraction saves per-call work, which
#: dominates at a few worlds, but costs more than it saves from about 128 worlds on).
FUSED_MAX_BATCH = 64


def step_outputs(cfg: EnvConfig, state: State, actions: np.ndarray) -> tuple[State, Outputs]:
    """``(step(cfg, state, actions), outputs(cfg, new state))``, bit for bit. Up to
    :data:`FUSED_MAX_BATCH` worlds in one pass: one subtraction gives the goal, both
    landmarks and the fake landmark minus each agent's new position, which serve the trap
    test, the goal test and both observations (``State.points``). What the PettingZoo env
    and :class:`BatchedEnv` call per step."""
    if state.batch_size > FUSED_MAX_BATCH:
        new = step(cfg, state, actions)
        return new, outputs(cfg, new)
    pos, vel = _move(cfg, state, actions)
    targets = state.points[:, None] - pos[:, :, None]  # (B, 2 agents, 4, 2)
    d2 = squared_length(targets)  # |fake − red|² is |red − fake|², bit for bit
    new = _advance(cfg, state, pos, vel, d2[:, RED, 3])
    return new, _outputs(cfg, new, targets, d2[:, :, 0])


def validate_actions(actions: np.ndarray, agent: str, batch_size: int | None = None) -> np.ndarray:
    """Check one agent's actions (shape, finite) and clip them to [-1, 1].

    Raises ``ValueError`` naming the agent for a wrong shape, NaN or inf. Values outside
    [-1, 1] are clipped, not rejected.
    """
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action of {agent} is not numeric: {actions!r}") from exc
    expected = (ACTION_DIM,) if batch_size is None else (batch_size, ACTION_DIM)
    if a.shape != expected:
        raise ValueError(f"action of {agent} has shape {a.shape}, expected {expected}")
    if not np.isfinite(a).all():
        raise ValueError(f"action of {agent} contains NaN or inf: {a.tolist()}")
    return np.clip(a, -1.0, 1.0)


def validate_joint_actions(
    actions: Sequence[np.ndarray], agents: Sequence[str], batch_size: int | None = None
) -> np.ndarray:
    """All agents' actions checked and clipped at once: (n_agents, 2) or (B, n_agents, 2).

    Same rules and errors as :func:`validate_actions`, which names the agent at fault;
    this is the fast path for actions that are already fine.
    """
    per_agent = (ACTION_DIM,) if batch_size is None else (batch_size, ACTION_DIM)
    try:
        a = np.asarray(actions, dtype=np.float64)
        # a finite sum of squares means every entry is finite (NaN and ±inf never give a
        # finite one); one that overflows merely sends finite actions down the slow path
        ok = a.shape == (len(agents), *per_agent) and math.isfinite(np.vdot(a, a))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        for act, agent in zip(actions, agents, strict=True):
            validate_actions(act, agent, batch_size)
    if batch_size is not None:
        a = a.swapaxes(0, 1)
    return np.minimum(np.maximum(a, _MINUS_ONE), _ONE)  # a is float64: 0-d bounds, same bits


class BatchedEnv:
    """Stateful convenience wrapper: B worlds stepped together, reset together."""

    def __init__(self, cfg: EnvConfig, batch_size: int) -> None:
        self.cfg = cfg
        self.batch_size = batch_size
        self.state: State | None = None

    def reset(
        self, rng: np.random.Generator | int | Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reset all worlds; returns (obs_red, obs_blue)."""
        self.state = reset(self.cfg, rng, self.batch_size)
        return observe(self.cfg, self.state)

    def step(
        self, actions_red: np.ndarray, actions_blue: np.ndarray, validate: bool = True
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, bool]:
        """Step all worlds; returns ((obs_red, obs_blue), rewards (B, 2), truncated)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if validate:
            actions = validate_joint_actions(
                [actions_red, actions_blue], AGENT_IDS, self.batch_size
            )
        else:
            actions = np.stack([actions_red, actions_blue], axis=1)
        self.state, out = step_outputs(self.cfg, self.state, actions)
        return (out.obs_red, out.obs_blue), out.rewards, self.state.t >= self.cfg.max_cycles
