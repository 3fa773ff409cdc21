"""Training runs: seed independence, exact resume after SIGKILL, run-dir safety, CLI."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.cli import main
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.train import Logger, train

SMALL = dict(batch_size=64, buffer_size=5000)


def small_config(seeds, episodes=60, baseline="deceptive", **run) -> TrainConfig:
    return TrainConfig(
        env=EnvConfig(baseline=baseline),
        maddpg=MADDPGConfig(**SMALL),
        run=RunConfig(seeds=tuple(seeds), episodes=episodes, log_every=20, **run),
    )


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "final_model.pt", weights_only=True)["model"]


def test_seed_result_does_not_depend_on_other_seeds(tmp_path):
    train(small_config([3]), tmp_path / "alone", progress=False)
    # 16 seeds: 32 members, a stack size at which torch's stacked reductions sum in
    # another order than at 2 members (docs/spec.md §7.1)
    train(small_config([0, 3, *range(10, 24)]), tmp_path / "among", progress=False)
    alone, among = weights(tmp_path / "alone"), weights(tmp_path / "among")
    for k, v in alone.items():
        member = among[k][2:4]  # seed 3 is the second of 16: members 2 (red) and 3 (blue)
        assert torch.equal(member, v), k  # bit-identical on CPU


def test_config_written_and_run_dir_safety(tmp_path):
    run = tmp_path / "run"
    train(small_config([1], episodes=20), run, progress=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["meta"]["baseline"] == "deceptive"
    assert saved["maddpg"]["batch_size"] == 64 and saved["run"]["seeds"] == [1]
    before = (run / "checkpoint.pt").read_bytes()
    runner = CliRunner()
    # another baseline into the same dir: one clear line, non-zero exit, nothing overwritten
    res = runner.invoke(
        main, ["train", "--baseline", "honest", "--seed", "1", "--run-dir", str(run)]
    )
    assert res.exit_code != 0 and "holds a 'deceptive' run" in res.output
    res = runner.invoke(
        main, ["train", "--baseline", "deceptive", "--seed", "1", "--run-dir", str(run)]
    )
    assert res.exit_code != 0 and "--resume" in res.output
    assert (run / "checkpoint.pt").read_bytes() == before
    res = runner.invoke(main, ["train", "--baseline", "deceptive", "--episodes", "0"])
    assert res.exit_code != 0 and "episodes must be positive" in res.output
    res = runner.invoke(main, ["train", "--baseline", "sneaky"])
    assert res.exit_code != 0 and "sneaky" in res.output
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    res = runner.invoke(
        main,
        [
            "train",
            "--baseline",
            "deceptive",
            "--seed",
            "1",
            "--run-dir",
            str(run),
            "--resume",
            "--batch-size",
            "64",
            "--buffer-size",
            "5000",
            "--episodes",
            "40",
        ],
    )
    assert res.exit_code != 0 and "cannot read checkpoint" in res.output


def _cli(run_dir: Path, episodes: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "soo_marl.cli",
        "train",
        "--baseline",
        "deceptive",
        "--seed",
        "2",
        "--episodes",
        str(episodes),
        "--batch-size",
        "64",
        "--buffer-size",
        "5000",
        "--checkpoint-every",
        "40",
        "--log-every",
        "20",
        "--run-dir",
        str(run_dir),
        "--quiet",
        *extra,
    ]


def _history_rows(run_dir: Path) -> int:
    path = run_dir / "history.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    episodes = 300
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(full, episodes), check=True, capture_output=True)
    proc = subprocess.Popen(
        _cli(killed, episodes), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # kill once the 3rd log row (episode 60) is written: past the checkpoint at episode 40,
    # so 20 episodes must be replayed exactly, and long before the run could end
    deadline = time.time() + 120
    while _history_rows(killed) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "run ended before it could be killed"
    assert not (killed / "final_model.pt").exists()
    assert 3 <= _history_rows(killed) < episodes // 20
    subprocess.run(_cli(killed, episodes, "--resume"), check=True, capture_output=True)
    a, b = weights(full), weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_full = [json.loads(line) for line in (full / "history.jsonl").read_text().splitlines()]
    rows_killed = [json.loads(line) for line in (killed / "history.jsonl").read_text().splitlines()]
    for row in rows_full + rows_killed:
        row.pop("SPS")  # wall-clock speed, the only column that may differ
    assert rows_full == rows_killed  # same metrics at every logged episode, no duplicates


@pytest.mark.slow
def test_honest_blue_learns_to_reach_goal(tmp_path):
    """Small budget: blue's deterministic goal-reach rate rises far above a random policy's."""
    import numpy as np

    from soo_marl import metrics
    from soo_marl.rollout import rollout, start_uniforms
    from soo_marl.rundir import load_model

    cfg = TrainConfig(
        env=EnvConfig(baseline="honest"),
        maddpg=MADDPGConfig(
            batch_size=256, buffer_size=50_000, noise_decay_episodes=1000, steps_per_update=20
        ),
        run=RunConfig(seeds=(0,), episodes=1000, envs_per_seed=10, log_every=500),
    )
    train(cfg, tmp_path / "honest", progress=False)
    lm = load_model(tmp_path / "honest")
    u = start_uniforms([155], 300)
    tr = rollout(cfg.env, u, lm.model, lm.model)
    learned = metrics.goal_reach_rate(cfg.env, tr["blue_pos"], tr["landmarks"], tr["goal_index"])
    untrained = load_model(tmp_path / "honest")
    torch.manual_seed(0)
    fresh = type(untrained.model)(cfg.maddpg, [0], [6, 10], [2, 2])
    tr0 = rollout(cfg.env, u, fresh, fresh)
    before = metrics.goal_reach_rate(cfg.env, tr0["blue_pos"], tr0["landmarks"], tr0["goal_index"])
    assert float(np.mean(learned)) > float(np.mean(before)) + 0.3
    assert float(np.mean(learned)) > 0.5


def test_logged_values_do_not_keep_the_rounds_tensors_alive(tmp_path):
    """The log window holds copies of the logged per-seed values, not numpy views of the
    update round's tensors: views kept those tensors' storages alive until the next flush,
    and hundreds of such small blocks among a round's large temporaries fragmented the
    heap (a 32-seed fine-tuning's resident memory grew by about 8 MB per round)."""
    from types import SimpleNamespace

    import numpy as np

    state = SimpleNamespace(log_window={})
    log = Logger(tmp_path, [0, 1], ["red", "blue"], state)
    loss = torch.tensor([0.5, 1.5])
    view = loss.numpy()
    log.add("losses/critic_blue", view)
    kept = state.log_window["losses/critic_blue"][0]
    assert not np.shares_memory(kept, view)
    loss.add_(1.0)  # the round's tensor changes (or is freed): the logged value does not
    assert kept.tolist() == [0.5, 1.5] and kept.dtype == view.dtype


def test_each_session_of_a_run_records_the_versions_that_ran(tmp_path):
    from importlib.metadata import version

    run = tmp_path / "run"
    train(small_config([1], episodes=20), run, progress=False)
    train(small_config([1], episodes=40), run, resume=True, progress=False)
    lines = [json.loads(x) for x in (run / "provenance.jsonl").read_text().splitlines()]
    assert [x["episode"] for x in lines] == [0, 20]  # the start, then the resume
    for x in lines:
        assert x["packages"]["torch"] == torch.__version__
        assert x["packages"]["numpy"] == version("numpy")
        assert x["torch threads"] == torch.get_num_threads()
        assert x["device"] == "cpu"


def test_summary_records_steady_speed_threads_and_efficiency(tmp_path, monkeypatch):
    from soo_marl import train as train_module
    from soo_marl.bench_learner import flops_per_seed_update, gemm_limit

    cfg = small_config([1, 2], episodes=60, torch_threads=1)
    train(cfg, tmp_path / "short", progress=False)
    short = json.loads((tmp_path / "short" / "summary.json").read_text())
    assert short["episodes_done"] == 60 and short["torch_threads"] == 1
    assert "steady_seed_updates_per_s" not in short  # seconds of steady state: no rate
    monkeypatch.setattr(train_module, "MIN_STEADY_S", 0.0)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    s = json.loads((run / "summary.json").read_text())
    assert s["episodes_done"] == 60 and s["torch_threads"] == 1
    assert 0 < s["steady_seed_updates_per_s"] and s["wall_s"] > 0
    assert s["flops_per_seed_update"] == flops_per_seed_update(cfg.maddpg)
    assert s["gemm_limit_gflops"] == gemm_limit(1)["gflops"] > 0
    expected = s["steady_seed_updates_per_s"] * s["flops_per_seed_update"] / 1e9
    assert s["efficiency_vs_gemm_limit"] == pytest.approx(expected / s["gemm_limit_gflops"])
