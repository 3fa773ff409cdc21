"""``soo-marl bench env`` with tiny settings: keys, positive figures, JSON output."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from soo_marl.bench import BATCH_SIZES, bench_env, format_env_report

HAS_MPE2 = importlib.util.find_spec("mpe2") is not None


def check_result(result: dict) -> None:
    """Keys and value types of a bench_env result."""
    assert set(result) == {"pettingzoo_env", "batched", "mpe2", "ratio_vs_mpe2", "meta"}
    assert result["pettingzoo_env"] > 0
    assert set(result["batched"]) == {str(b) for b in BATCH_SIZES}
    assert all(v > 0 for v in result["batched"].values())
    if HAS_MPE2:
        assert result["mpe2"] > 0
        ratio = result["pettingzoo_env"] / result["mpe2"]
        assert result["ratio_vs_mpe2"] == pytest.approx(ratio)
    else:
        assert result["mpe2"] is None and result["ratio_vs_mpe2"] is None
    meta = result["meta"]
    for key in ("repeats", "numpy", "python", "cpu_count"):
        assert key in meta
    assert meta["batched_validate"] is False


def test_bench_env_tiny():
    result = bench_env(repeats=1, steps=50)
    check_result(result)
    assert result["meta"]["repeats"] == 1
    report = format_env_report(result)
    assert "batched core B=4096" in report and "PettingZoo env" in report
    if HAS_MPE2:
        assert "PettingZoo env / mpe2" in report
    else:
        assert "not installed" in report


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
