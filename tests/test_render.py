"""Rendering of trained policies (``soo-marl render RUN_DIR``) and of random actions:
frame count and size, what a frame shows where, cross-play / scripted / blind blues
(checked against :func:`soo_marl.rollout.rollout`), and one-line errors."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.cli import main
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs import core
from soo_marl.envs.physical_deception_v0 import parallel_env
from soo_marl.envs.render import COLOURS, draw_frame, panel_height, render_frame
from soo_marl.rendering import (
    PAUSE_FRAMES,
    episode_frames,
    play_run,
    render_random_episodes,
    render_run,
)
from soo_marl.rollout import rollout, start_uniforms
from soo_marl.rundir import load_model
from soo_marl.train import train

SIZE = 400
SCALE = SIZE / 2.2  # the arena square spans [-1.1, 1.1]² (arena plus wall width)
T = 50


def _train(path, baseline="deceptive", seeds=(0, 1), sight_radius=0.5):
    cfg = TrainConfig(
        env=core.EnvConfig(baseline=baseline, sight_radius=sight_radius),
        maddpg=MADDPGConfig(batch_size=64, buffer_size=5000),
        run=RunConfig(seeds=seeds, episodes=20, log_every=20),
    )
    train(cfg, path, progress=False)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs: deceptive (seeds 0, 1) and honest (2, 3) at r0.5, one at r0.125, one of
    1 seed."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "deceptive": _train(root / "deceptive"),
        "honest": _train(root / "honest", baseline="honest", seeds=(2, 3)),  # other weights
        "r0.125": _train(root / "r0125", sight_radius=0.125),
        "one_seed": _train(root / "one_seed", seeds=(0,)),
    }


#: How far (pixels) a drawn pixel's index may lie beyond a disc's true edge: the index
#: names the pixel's corner (up to √2/2 from its centre), PIL's box end is inclusive
#: (1 px), and which edge pixel is filled depends on float rounding of the position,
#: which differs between CPUs (a pixel at r + 1.51 px was seen on an Intel Xeon).
EDGE_PX = 1.0 + np.sqrt(2) / 2 + 0.25


def to_pixel(p) -> np.ndarray:
    """(column, row) of world point p in the arena square."""
    return np.array([(p[0] + 1.1) * SCALE, (1.1 - p[1]) * SCALE])


def arena_pixels(img: np.ndarray, colour) -> np.ndarray:
    """(k, 2) (column, row) of the arena pixels of exactly ``colour``."""
    mask = np.all(img[:SIZE] == np.array(colour, dtype=np.uint8), axis=-1)
    rows, cols = np.nonzero(mask)
    return np.stack([cols, rows], axis=1).astype(float)


def assert_disc(img, colour, centre, radius, min_share=0.6):
    """Every pixel of ``colour`` lies on the disc at ``centre``, and they fill most of it."""
    pts = arena_pixels(img, colour)
    dist = np.linalg.norm(pts - to_pixel(centre), axis=1)
    assert dist.max() <= radius * SCALE + EDGE_PX, (colour, dist.max())
    assert len(pts) >= min_share * np.pi * (radius * SCALE) ** 2, (colour, len(pts))


def circle_share(img, centre, radius) -> float:
    """Share of points on the circle (inside the image) that are drawn in the sight colour
    (within one pixel)."""
    sight = np.all(img[:SIZE] == np.array(COLOURS["sight"], dtype=np.uint8), axis=-1)
    c = to_pixel(centre)
    hits = total = 0
    for a in np.linspace(0, 2 * np.pi, 180, endpoint=False):
        x, y = c + radius * SCALE * np.array([np.cos(a), np.sin(a)])
        if not (2 <= x < SIZE - 2 and 2 <= y < SIZE - 2):
            continue
        total += 1
        hits += bool(sight[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2].any())
    return hits / total


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


# --------------------------------------------------------------------------- frames


def test_gif_has_every_step_and_the_pauses(runs, tmp_path):
    out = render_run(runs["deceptive"], tmp_path / "ep.gif", episodes=2)
    played = play_run(runs["deceptive"], episodes=2)
    frames = episode_frames(played)
    assert len(frames) == 2 * (T + 1 + PAUSE_FRAMES)
    assert all(f.shape == (SIZE + panel_height(SIZE), SIZE, 3) for f in frames)
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.info.get("loop") == 0
        assert gif.n_frames == 2 * (T + 1 + PAUSE_FRAMES)
        assert gif.size == (SIZE, SIZE + panel_height(SIZE))
        # the GIF holds the drawn frames (palette quantisation only touches text edges)
        for i in (0, T, T + 1 + PAUSE_FRAMES + 7):
            gif.seek(i)
            same = np.all(np.asarray(gif.convert("RGB")) == frames[i], axis=-1)
            assert same.mean() > 0.99
    # a pause repeats the final state of its episode: the arena is unchanged
    last = frames[T]
    for j in range(PAUSE_FRAMES):
        np.testing.assert_array_equal(frames[T + 1 + j][:SIZE], last[:SIZE])


def test_frames_draw_the_rollout_positions_and_both_sight_circles(runs):
    played = play_run(runs["deceptive"], episodes=2)
    tr, cfg = played.traj, played.cfg
    assert cfg.sight_radius == 0.5
    frames = episode_frames(played)
    for k in range(2):
        gi = int(tr["goal_index"][k])
        goal, fake = tr["landmarks"][k, gi], tr["landmarks"][k, 1 - gi]
        for t in (0, 17, T):
            img = frames[k * (T + 1 + PAUSE_FRAMES) + t]
            red, blue = tr["red_pos"][k, t], tr["blue_pos"][k, t]
            assert_disc(img, COLOURS["blue"], blue, cfg.agent_radius)  # blue is drawn last
            red_px = arena_pixels(img, COLOURS["red"])
            dist = np.linalg.norm(red_px - to_pixel(red), axis=1)
            assert dist.max() <= cfg.agent_radius * SCALE + EDGE_PX
            for p in (red, blue):
                assert circle_share(img, p, cfg.sight_radius) > 0.8
            # landmarks: exactly where they are, unless an agent covers them
            for colour, p in ((COLOURS["goal"], goal), (COLOURS["fake"], fake)):
                pts = arena_pixels(img, colour)
                if len(pts):
                    d = np.linalg.norm(pts - to_pixel(p), axis=1)
                    assert d.max() <= cfg.landmark_radius * SCALE + EDGE_PX


def test_sight_circle_radius_follows_the_run(runs):
    played = play_run(runs["r0.125"], episodes=1)
    img = episode_frames(played)[5]
    for agent in ("red_pos", "blue_pos"):
        p = played.traj[agent][0, 5]
        assert circle_share(img, p, 0.125) > 0.8
        assert circle_share(img, p, 0.5) < 0.2


def test_trapped_frame_has_the_marker():
    cfg = core.EnvConfig(sight_radius=0.5)
    red, blue = np.array([-0.3, -0.2]), np.array([0.4, 0.3])
    landmarks = np.array([[-0.3, -0.2], [0.5, 0.5]])
    args = (cfg, red, blue, landmarks, 1)
    free = draw_frame(*args, False, 12)
    trapped = draw_frame(*args, True, 12)
    orange = COLOURS["trapped"]
    assert len(arena_pixels(free, orange)) == 0
    ring = arena_pixels(trapped, orange)
    assert len(ring) > 200
    # the marker is on red (ring and the "TRAPPED" text right next to it)
    d = np.linalg.norm(ring - to_pixel(red), axis=1)
    assert d.min() > cfg.agent_radius * SCALE and np.median(d) < cfg.agent_radius * SCALE + 20
    # ... and "TRAPPED" in the status line: more orange in the panel than the legend's ring
    in_panel = np.all(trapped[SIZE:] == np.array(orange, dtype=np.uint8), axis=-1).sum()
    assert in_panel > np.all(free[SIZE:] == np.array(orange, dtype=np.uint8), axis=-1).sum()
    # the PettingZoo env's frames (from a core.State) get the same marker
    state = core.State(
        pos=np.array([[red, blue]]),
        vel=np.zeros((1, 2, 2)),
        landmarks=landmarks[None],
        goal_index=np.array([1]),
        trapped=np.array([True]),
        t=12,
    )
    np.testing.assert_array_equal(
        render_frame(cfg, state, caption=[]), draw_frame(*args, True, 12, visible=False)
    )


def test_step_counter_and_captions_change_the_panel_only(runs):
    frames = episode_frames(play_run(runs["deceptive"], episodes=1))
    # consecutive steps differ in the panel (the step counter), so no frame is merged away
    for a, b in zip(frames, frames[1:], strict=False):
        assert (a[SIZE:] != b[SIZE:]).any()
    blank = draw_frame(core.EnvConfig(), [0, 0], [0.5, 0], [[0.3, 0.3], [-0.3, 0.3]], 0, False, 3)
    captioned = draw_frame(
        core.EnvConfig(), [0, 0], [0.5, 0], [[0.3, 0.3], [-0.3, 0.3]], 0, False, 3, caption=["x"]
    )
    np.testing.assert_array_equal(blank[:SIZE], captioned[:SIZE])
    assert (blank[SIZE:] != captioned[SIZE:]).any()


# --------------------------------------------------------------------------- who plays blue


def _rollout_of(run_dir, blue, seed_index=0, episodes=2, blind=False):
    lm = load_model(run_dir)
    u = start_uniforms([155], episodes, core.reset_draws(lm.config.env))
    traj = rollout(lm.config.env, u, lm.model, blue(lm), blind_blue=blind)
    return {k: v[seed_index] for k, v in traj.items()}


def _assert_same(played, expected):
    for k, v in played.traj.items():
        np.testing.assert_array_equal(v, expected[k], err_msg=k)


def test_against_to_fake_draws_blue_at_the_fake(runs):
    played = play_run(runs["deceptive"], seed=1, episodes=2, against="to_fake")
    assert played.seed == 1 and played.blue == "scripted to_fake"
    _assert_same(played, _rollout_of(runs["deceptive"], lambda lm: "to_fake", seed_index=1))
    tr, cfg = played.traj, played.cfg
    frames = episode_frames(played)
    for k in range(2):
        fake = tr["landmarks"][k, 1 - tr["goal_index"][k]]
        end = tr["blue_pos"][k, T]
        assert np.linalg.norm(end - fake) < cfg.at_landmark_distance
        start = np.linalg.norm(tr["blue_pos"][k, 0] - fake)
        assert start > np.linalg.norm(end - fake)
        img = frames[k * (T + 1 + PAUSE_FRAMES) + T]
        assert_disc(img, COLOURS["blue"], end, cfg.agent_radius)
        # the drawn blue sits on the fake landmark
        centre = arena_pixels(img, COLOURS["blue"]).mean(axis=0)
        assert np.linalg.norm(centre - to_pixel(fake)) < cfg.at_landmark_distance * SCALE + 3


def test_cross_play_and_blind_are_the_rollouts(runs):
    played = play_run(runs["deceptive"], episodes=2, against=runs["honest"])
    assert played.blue == "honest r0.5's blue (cross-play)"
    honest = load_model(runs["honest"]).model
    _assert_same(played, _rollout_of(runs["deceptive"], lambda lm: honest))
    own = play_run(runs["deceptive"], episodes=2)
    assert own.blue == "own policy"
    assert not np.array_equal(own.traj["blue_pos"], played.traj["blue_pos"])
    blind = play_run(runs["deceptive"], episodes=2, blind=True)
    assert blind.blue == "own policy, blind to red"
    _assert_same(blind, _rollout_of(runs["deceptive"], lambda lm: lm.model, blind=True))


def test_first_episode_picks_later_start_states(runs):
    both = play_run(runs["deceptive"], episodes=3)
    last = play_run(runs["deceptive"], episodes=1, first_episode=2)
    for k, v in last.traj.items():
        if np.issubdtype(v.dtype, np.floating):
            # A batch of 1 and a batch of 3 run the networks with different matrix shapes;
            # some CPUs (e.g. Intel Xeon with AVX-512) round float32 products differently
            # per shape, so positions agree only up to float32 rounding (docs/spec.md §7.1).
            np.testing.assert_allclose(v[0], both.traj[k][2], rtol=0, atol=1e-5, err_msg=k)
        else:
            np.testing.assert_array_equal(v[0], both.traj[k][2], err_msg=k)


def test_library_errors(runs, tmp_path):
    with pytest.raises(ValueError, match="no such run"):
        play_run(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="seed 5 is not in"):
        play_run(runs["deceptive"], seed=5)
    with pytest.raises(ValueError, match="neither a run directory nor a scripted blue"):
        play_run(runs["deceptive"], against="to_nowhere")
    with pytest.raises(ValueError, match="1 seeds"):
        play_run(runs["deceptive"], against=runs["one_seed"])
    with pytest.raises(ValueError, match="differ in sight_radius"):
        play_run(runs["deceptive"], against=runs["r0.125"])
    with pytest.raises(ValueError, match="cannot be blind"):
        play_run(runs["deceptive"], against="still", blind=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        play_run(tmp_path / "empty")
    with pytest.raises(ValueError, match="ffmpeg"):
        render_run(runs["deceptive"], tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


# --------------------------------------------------------------------------- command


def test_render_command_with_a_run(runs, tmp_path):
    out = tmp_path / "run.gif"
    args = [str(runs["deceptive"]), "--seed", "1", "--episodes", "1", "--eval-seed", "714"]
    result = CliRunner().invoke(main, ["render", *args, "--against", "to_fake", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as gif:
        assert gif.n_frames == T + 1 + PAUSE_FRAMES
        gif.seek(T)
        drawn = np.asarray(gif.convert("RGB"))
    lm = load_model(runs["deceptive"])
    u = start_uniforms([714], 1, core.reset_draws(lm.config.env))
    blue_end = rollout(lm.config.env, u, lm.model, "to_fake")["blue_pos"][1, 0, T]
    assert_disc(drawn, COLOURS["blue"], blue_end, 0.15)


@pytest.mark.parametrize(
    "args, says",
    [
        (["{run}", "--out", "x.mp4"], "ffmpeg"),
        (["{run}", "--out", "x.png"], "cannot write .png"),
        (["{tmp}/nowhere", "--out", "x.gif"], "no such run directory"),
        (["{run}", "--seed", "7", "--out", "x.gif"], "seed 7 is not in"),
        (["{run}", "--against", "to_nowhere", "--out", "x.gif"], "nor a scripted blue"),
        (["{run}", "--against", "{r0125}", "--out", "x.gif"], "differ in sight_radius"),
        (["{run}", "--against", "{one}", "--out", "x.gif"], "has 1 seeds"),
        (["{run}", "--against", "still", "--blind", "--out", "x.gif"], "cannot be blind"),
        (["{run}", "--policy", "random", "--out", "x.gif"], "random actions"),
        (["--against", "to_fake", "--out", "x.gif"], "need a RUN_DIR"),
    ],
)
def test_render_command_errors_are_one_line(runs, tmp_path, args, says):
    names = {
        "run": runs["deceptive"],
        "r0125": runs["r0.125"],
        "one": runs["one_seed"],
        "tmp": tmp_path,
    }
    args = [a.format(**names) for a in args]
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    line = one_line_error(CliRunner().invoke(main, ["render", *args]))
    assert says in line
    assert not any(p.name.startswith("x.") for p in tmp_path.iterdir())


def test_random_policy_gif_has_legend_and_both_circles(tmp_path):
    out = render_random_episodes(tmp_path / "r.gif", episodes=1, seed=3, sight_radius=0.5)
    env = parallel_env(render_mode="rgb_array", sight_radius=0.5)
    env.reset(seed=3)
    red, blue = env.state_.pos[0]
    with Image.open(out) as gif:
        assert gif.n_frames == T + 1
        assert gif.size == (SIZE, SIZE + panel_height(SIZE))
        first = np.asarray(gif.convert("RGB"))
    for img in (first, env.render()):  # the GIF's first frame and the env's own render()
        for p in (red, blue):
            assert circle_share(img, p, 0.5) > 0.8
        # legend swatches in the panel: every agent and landmark colour is there
        panel = img[SIZE:]
        for name in ("red", "blue", "goal", "fake", "sight", "trapped"):
            assert np.all(panel == np.array(COLOURS[name], dtype=np.uint8), axis=-1).any(), name
    # the default (no RUN_DIR, no --policy) is still random actions
    args = ["render", "--episodes", "1", "--out", str(tmp_path / "d.gif")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "d.gif") as gif:
        assert gif.n_frames == T + 1
