"""``soo-marl bench env`` with tiny settings (keys, positive figures, JSON output), and the
memory harness (``soo-marl bench memory``) at tiny sizes."""

from __future__ import annotations

import importlib.util
import json
import statistics

import pytest
from click.testing import CliRunner

from soo_marl import bench
from soo_marl.bench import BATCH_SIZES, bench_env, format_env_report

HAS_MPE2 = importlib.util.find_spec("mpe2") is not None


def check_result(result: dict) -> None:
    """Keys and value types of a bench_env result, and how its figures follow from the
    timed repeats (not their values)."""
    assert set(result) == {
        "pettingzoo_env",
        "batched",
        "mpe2",
        "ratio_vs_mpe2",
        "ratio_vs_mpe2_paired",
        "pettingzoo_env_rates",
        "mpe2_rates",
        "meta",
    }
    meta = result["meta"]
    ours = result["pettingzoo_env_rates"]
    assert len(ours) == meta["repeats"] and all(r > 0 for r in ours)
    assert result["pettingzoo_env"] == statistics.median(ours)
    assert set(result["batched"]) == {str(b) for b in BATCH_SIZES}
    assert all(v > 0 for v in result["batched"].values())
    if HAS_MPE2:
        theirs = result["mpe2_rates"]
        assert len(theirs) == len(ours) and all(r > 0 for r in theirs)
        assert result["mpe2"] == statistics.median(theirs)
        # the ratio of the medians, and the median of the back-to-back pairs' ratios
        assert result["ratio_vs_mpe2"] == pytest.approx(result["pettingzoo_env"] / result["mpe2"])
        pairs = [p / m for p, m in zip(ours, theirs, strict=True)]
        assert result["ratio_vs_mpe2_paired"] == pytest.approx(statistics.median(pairs))
        assert min(pairs) <= result["ratio_vs_mpe2_paired"] <= max(pairs)
    else:
        for key in ("mpe2", "mpe2_rates", "ratio_vs_mpe2", "ratio_vs_mpe2_paired"):
            assert result[key] is None
    for key in ("repeats", "numpy", "python", "cpu_count"):
        assert key in meta
    assert meta["batched_validate"] is False
    assert meta["mpe2_interleaved"] is True


def test_bench_env_tiny():
    result = bench_env(repeats=1, steps=50)
    check_result(result)
    assert result["meta"]["repeats"] == 1
    report = format_env_report(result)
    assert "batched core B=4096" in report and "PettingZoo env" in report
    if HAS_MPE2:
        assert "PettingZoo env / mpe2" in report and "median of per-pair ratios" in report
    else:
        assert "not installed" in report


def test_bench_env_pairs_alternate(monkeypatch):
    """Timed repeats alternate ours, mpe2, ours, mpe2 (after one warm-up of each); each
    round's rates sit at the same position of both lists."""
    calls = []

    def runner(name, steps):
        def run_once():
            calls.append(name)
            return steps

        return run_once

    clock = iter([0.0, 1.0, 1.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 10.0])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    rates = bench._interleaved_rates([runner("ours", 12), runner("mpe2", 4)], repeats=3)
    assert calls == ["ours", "mpe2"] + ["ours", "mpe2"] * 3
    # seconds per repeat: ours 1, 1, 1; mpe2 2, 1, 4
    assert rates == [[12.0, 12.0, 12.0], [2.0, 4.0, 1.0]]


def test_bench_env_rejects_bad_settings():
    with pytest.raises(ValueError, match="repeats"):
        bench_env(repeats=0)
    with pytest.raises(ValueError, match="steps"):
        bench_env(steps=0)


def test_bench_env_cli_json():
    from soo_marl.cli import main

    result = CliRunner().invoke(main, ["bench", "env", "--json", "--repeats", "1", "--steps", "50"])
    assert result.exit_code == 0, result.output
    check_result(json.loads(result.output))


def test_bench_env_cli_table():
    from soo_marl.cli import main

    result = CliRunner().invoke(main, ["bench", "env", "--repeats", "1", "--steps", "50"])
    assert result.exit_code == 0, result.output
    assert "steps/s" in result.output


def test_memory_harness_tiny(tmp_path):
    """A 2-seed learner with 3,000 transitions per seed: a positive peak after each phase,
    never falling (a high-water mark), the buffer's size by the row width (152 B), and
    the checkpoint holding the full buffer."""
    import torch

    from soo_marl.bench_learner import format_memory_report, memory_harness

    result = memory_harness(tmp_path / "memh", seeds=2, capacity=3000, rounds=2)
    assert set(result) == {
        "seeds", "capacity", "rounds", "checkpoint", "buffer_mb", "peak_mb", "peak_reset",
        "seconds",
    }  # fmt: skip
    assert (result["seeds"], result["capacity"], result["rounds"]) == (2, 3000, 2)
    peaks = result["peak_mb"]
    assert list(peaks) == ["start", "filled", "updates", "checkpoint"]
    assert all(v > 0 for v in peaks.values())
    assert peaks["start"] <= peaks["filled"] <= peaks["updates"] <= peaks["checkpoint"]
    assert result["buffer_mb"] == pytest.approx(2 * 3000 * 152 / 2**20)
    state = torch.load(result["checkpoint"], weights_only=True)
    assert state["buffer"]["filled"] == 3000
    assert tuple(state["buffer"]["storage"].shape[:2]) == (2, 3000)
    report = format_memory_report(result).splitlines()
    assert report[0] == "2 seeds × 3,000 transitions (buffer 1 MB)"
    assert report[3].startswith("2 update rounds: peak ") and report[3].endswith(" MB")


def test_bench_memory_cli_json(tmp_path):
    from soo_marl.cli import main

    argv = ["bench", "memory", "--json", "--seeds", "1", "--capacity", "2000", "--rounds", "1"]
    result = CliRunner().invoke(main, [*argv, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["seeds"], out["capacity"], out["rounds"]) == (1, 2000, 1)
    assert all(v > 0 for v in out["peak_mb"].values())
    assert (tmp_path / "checkpoint.pt").exists()
