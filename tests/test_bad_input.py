"""Training input that cannot work is refused up front with one clear line: more seeds than
memory holds, and a batch no update round could ever draw (docs/spec.md, issue 19 §8)."""

import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from soo_marl import allocator
from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.cli import main
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.train import Plan, check_run, last_round_fill, train
from soo_marl.vecenv import DeceptionVecEnv

GB = 10**9
_CPU = torch.device("cpu")


def _refused(args: list[str], tmp_path) -> str:
    """Run ``soo-marl train ARGS`` in-process; the one line it printed on stderr."""
    res = CliRunner().invoke(main, ["train", "--quiet", "--run-dir", str(tmp_path / "r"), *args])
    assert res.exit_code != 0
    assert isinstance(res.exception, SystemExit)  # click's error exit, not a crash
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert not (tmp_path / "r").exists()  # nothing written
    return lines[0]


def test_seeds_beyond_memory_refused_naming_needed_and_available(tmp_path):
    avail = allocator.memory_available()
    if avail is None or avail[0] > 300 * GB:
        pytest.skip("needs a machine with less than 300 GB of memory available")
    line = _refused(["--baseline", "deceptive", "--seeds", "2000"], tmp_path)
    # 2000 seeds × 1,000,000 transitions × 152 B = 304 GB of replay, plus networks
    assert "not enough memory" in line and "2,000 seeds × 1,000,000 transitions" in line
    assert "(304.0 GB)" in line and "need at least 304.8 GB" in line
    assert "is available (MemAvailable in /proc/meminfo)" in line and "--seeds" in line


def test_memory_figures_are_the_machines(tmp_path, monkeypatch):
    """The available figure is the one :func:`memory_available` reports, and a run that
    fits is not refused (16 seeds of 5000 transitions against 0.2 GB)."""
    monkeypatch.setattr(allocator, "memory_available", lambda device=None: (2 * GB, "test"))
    line = _refused(["--baseline", "deceptive", "--seeds", "16"], tmp_path)
    assert "need at least 2.4 GB, but 2.0 GB is available (test)" in line
    monkeypatch.setattr(allocator, "memory_available", lambda device=None: (GB // 5, "test"))
    cfg = TrainConfig(
        maddpg=MADDPGConfig(buffer_size=5000, batch_size=64),
        run=RunConfig(seeds=tuple(range(16)), episodes=100),
    )
    check_run(Plan(cfg, {}), DeceptionVecEnv.obs_dims, DeceptionVecEnv.act_dims, 50, _CPU)


def test_100000_seeds_refused_within_a_second(tmp_path):
    """Before the check, 100,000 seeds spent over a minute building worlds and networks."""
    cfg = TrainConfig(run=RunConfig(seeds=tuple(range(100_000))))
    t0 = time.perf_counter()
    with pytest.raises(allocator.InsufficientMemory, match="100,000 seeds"):
        train(cfg, tmp_path / "r", progress=False)
    assert time.perf_counter() - t0 < 1.0
    assert not (tmp_path / "r").exists()


def test_100000_seeds_on_the_command_line_one_line_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "soo_marl.cli", "train", "--baseline", "deceptive",
           "--seeds", "100000", "--quiet", "--run-dir", str(tmp_path / "r")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: not enough memory: 100,000 seeds")
    assert "GB is available" in lines[0]


def test_batch_larger_than_buffer_refused(tmp_path):
    line = _refused(
        ["--baseline", "deceptive", "--buffer-size", "10", "--batch-size", "1024"], tmp_path
    )
    assert "batch_size (1,024) exceeds buffer_size (10)" in line
    assert "without a single update" in line
    MADDPGConfig(buffer_size=64, batch_size=64)  # equal is allowed: a full buffer is a batch


def test_run_too_short_for_a_single_update_refused(tmp_path):
    line = _refused(["--baseline", "deceptive", "--seed", "0", "--episodes", "10"], tmp_path)
    # 10 episodes × 50 steps = 500 transitions, less than the default batch of 1024
    assert "no update round would run" in line and "holds only 500" in line
    line = _refused(
        ["--baseline", "deceptive", "--seed", "0", "--episodes", "10", "--batch-size", "64",
         "--buffer-size", "5000", "--steps-per-update", "1000"],
        tmp_path,
    )  # fmt: skip
    assert "one falls due every 1000 env steps" in line and "make only 500" in line


def test_last_round_fill_known_values():
    # 10 envs per seed, a round per 100 steps: the last of 5 rounds is due at step 50
    assert last_round_fill(500, 10, 100, 5000) == 500
    assert last_round_fill(500, 10, 100, 300) == 300  # capped by the buffer
    assert last_round_fill(500, 10, 1000, 5000) == 0  # no round falls due at all
    # 3 rounds of 300 in 1000 transitions: the third is due at step 90 (900 stored), so a
    # batch of 950 is never there even though the run stores 1000
    assert last_round_fill(1000, 10, 300, 5000) == 900
    assert last_round_fill(1000, 7, 300, 5000) == 903  # due at step ceil(900 / 7) = 129
    assert last_round_fill(500, 10, 100, 5000, start_rows=3000) == 3500  # a reused buffer


def test_a_reused_parent_buffer_counts_towards_the_first_batch():
    cfg = TrainConfig(
        maddpg=MADDPGConfig(buffer_size=5000, batch_size=1024),
        run=RunConfig(seeds=(0, 1), episodes=10),
    )
    dims = DeceptionVecEnv.obs_dims, DeceptionVecEnv.act_dims
    with pytest.raises(ValueError, match="holds only 500"):
        check_run(Plan(cfg, {}), *dims, 50, _CPU)  # fresh buffer: 500 < 1024
    check_run(Plan(cfg, {}, buffer_rows=3000), *dims, 50, _CPU)  # parent's 3000 + 500
    check_run(Plan(cfg, {}), *dims, None, _CPU)  # unknown episode length: not checked


def test_on_a_gpu_the_whole_buffer_counts_against_its_free_memory(monkeypatch):
    """On the CPU a buffer's pages become resident only as it fills; CUDA allocates all of
    it at once, so there the capacity counts, against the device's free memory."""
    asked = []

    def fake(device=None):
        asked.append(device)
        return GB, "test"

    monkeypatch.setattr(allocator, "memory_available", fake)
    cfg = TrainConfig(run=RunConfig(seeds=tuple(range(8)), episodes=100))  # 5000 of 1e6 rows
    dims = DeceptionVecEnv.obs_dims, DeceptionVecEnv.act_dims
    check_run(Plan(cfg, {}), *dims, 50, _CPU)  # 8 × 5000 × 152 B: fits in 1 GB
    with pytest.raises(allocator.InsufficientMemory, match="8 seeds × 1,000,000 transitions"):
        check_run(Plan(cfg, {}), *dims, 50, torch.device("cuda:0"))
    assert asked == [None, "cuda:0"]
    monkeypatch.undo()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GB, 80 * GB))
    assert allocator.memory_available("cuda:0") == (3 * GB, "free memory of cuda:0")


def test_reserving_more_than_the_system_gives_is_one_line(monkeypatch):
    """What the estimate lets through and the system still refuses (e.g. a buffer far
    larger than the transitions a short run stores) is refused in one line too."""
    from soo_marl.agents.buffer import StackedReplayBuffer

    with pytest.raises(allocator.InsufficientMemory) as err:
        StackedReplayBuffer(10**6, 10**9, 16, 4, 2)  # 152 PB
    assert str(err.value).startswith("cannot reserve 152,000,000.0 GB (cpu)")
