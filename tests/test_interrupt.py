"""Ctrl-C (SIGINT) during training: the run finishes the episodes it is playing, writes a
checkpoint and stops cleanly; ``--resume`` then ends bit-identical to a run never
interrupted, weights, optimiser states and logged history alike."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.train import train
from soo_marl.vecenv import DeceptionVecEnv

SMALL = dict(batch_size=64, buffer_size=5000)


def config(episodes: int = 60) -> TrainConfig:
    return TrainConfig(
        env=EnvConfig(baseline="deceptive"),
        maddpg=MADDPGConfig(**SMALL),
        run=RunConfig(
            seeds=(3,), episodes=episodes, log_every=20, checkpoint_every=40, torch_threads=1
        ),
    )


class CtrlCAt:
    """The physical-deception env, sending this process SIGINT (what Ctrl-C sends) as the
    ``at``-th batch of episodes starts: a known point inside the training loop."""

    def __init__(self, env: DeceptionVecEnv, at: int) -> None:
        self.env, self.at, self.resets = env, at, 0

    def reset(self, rngs):
        self.resets += 1
        if self.resets == self.at:
            signal.raise_signal(signal.SIGINT)
        return self.env.reset(rngs)

    def __getattr__(self, name):
        return getattr(self.env, name)


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_tensors(a, b, where: str = "") -> None:
    """Nested dicts/lists of tensors and numbers are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def history(run_dir: Path) -> list[dict]:
    """Logged rows without SPS (wall-clock speed, the one column that may differ)."""
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("SPS")
    return rows


def assert_same_run(full: Path, resumed: Path) -> None:
    a, b = load(full / "final_model.pt"), load(resumed / "final_model.pt")
    assert_same_tensors(a["model"], b["model"], "final_model")
    ca, cb = load(full / "checkpoint.pt"), load(resumed / "checkpoint.pt")
    for key in ("learner", "buffer", "episode", "env_steps", "steps_since_update", "rng"):
        assert_same_tensors(ca[key], cb[key], key)
    assert history(full) == history(resumed)  # same rows at the same episodes, no repeats


def test_ctrl_c_between_log_rows_then_resume_is_bit_identical(tmp_path):
    """SIGINT as episodes 21–30 start: the run stops after them (episode 30, between the
    history rows of 20 and 40, before the first periodic checkpoint) with a checkpoint
    that also holds the half-filled log interval, so the resumed row at 40 is the same."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(config(), full, progress=False)
    cfg = config()
    handler = signal.getsignal(signal.SIGINT)
    ctrl_c_at_3rd_batch = lambda s, e: CtrlCAt(DeceptionVecEnv(cfg.env, s, e), 3)  # noqa: E731
    result = train(cfg, cut, progress=False, env_factory=ctrl_c_at_3rd_batch)
    assert result.interrupted and result.episodes_done == 30
    assert not (cut / "final_model.pt").exists()
    saved = load(cut / "checkpoint.pt")
    assert saved["episode"] == 30 and saved["learner"]["update_rounds"] == 15
    assert [row["episode"] for row in json.loads(saved["history"])] == [20]
    window = saved["log_window"]  # what episodes 21-30 logged, for the row at 40
    assert window["charts/trap_rate"].shape == (1, 1)  # one batch of episodes, 1 seed
    losses = [v.shape for k, v in window.items() if k.startswith("losses/")]
    assert losses and all(shape == (5, 1) for shape in losses)  # 5 update rounds
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C behaves as before again
    again = train(config(), cut, resume=True, progress=False)
    assert not again.interrupted and again.episodes_done == 60
    assert_same_run(full, cut)


def _cli(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "soo_marl.cli", "train", "--baseline", "deceptive",
            "--seed", "0", "--seed", "3", "--episodes", "300", "--batch-size", "64",
            "--buffer-size", "5000", "--checkpoint-every", "40", "--log-every", "20",
            "--torch-threads", "1", "--run-dir", str(run_dir), "--quiet", *extra]  # fmt: skip


@pytest.mark.slow
def test_sigint_to_the_command_then_resume_is_bit_identical(tmp_path):
    """The command line: SIGINT once the first checkpoint (episode 40 of 300) is written;
    the process exits with status 130 (the run is unfinished) and a one-line note (where it
    stopped, where the checkpoint is, how to continue), leaving a checkpoint from which
    --resume ends as the uninterrupted run."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_cli(full), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(_cli(cut), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (cut / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint written in 300 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at "), out
    episode = load(cut / "checkpoint.pt")["episode"]
    assert 40 <= episode < 300 and f"interrupted at {episode} episodes of 300 per seed" in lines[0]
    assert f"checkpoint saved in {cut / 'checkpoint.pt'};" in lines[0], lines[0]
    assert lines[0].endswith("continue with the same command plus --resume"), lines[0]
    assert not (cut / "final_model.pt").exists(), "the run ended before it was interrupted"
    subprocess.run(_cli(cut, "--resume"), check=True, capture_output=True, timeout=600)
    assert_same_run(full, cut)


def test_closing_line_of_train_and_finetune_after_ctrl_c(capsys):
    """``commands.report_run``: the note after an early Ctrl-C (a resumed run needs no
    second --resume), then exit status 130; a Ctrl-C in the last batch, which the run
    finishes, is no interrupt."""
    from click.exceptions import Exit

    from soo_marl.commands import INTERRUPTED, report_run
    from soo_marl.train import TrainResult

    stopped = TrainResult(Path("runs/x"), 40, True, {}, 12.3)
    for resume in (False, True):
        with pytest.raises(Exit) as exited:
            report_run(stopped, 100, resume, "finished")
        assert exited.value.exit_code == INTERRUPTED == 130
    report_run(TrainResult(Path("runs/x"), 100, True, {}, 1.0), 100, False, "finished")
    report_run(TrainResult(Path("runs/x"), 100, False, {}, 1.0), 100, False, "finished")
    assert capsys.readouterr().out.splitlines() == [
        f"interrupted at 40 episodes of 100 per seed in 12 s; checkpoint saved in "
        f"{Path('runs/x/checkpoint.pt')}; continue with the same command plus --resume",
        f"interrupted at 40 episodes of 100 per seed in 12 s; checkpoint saved in "
        f"{Path('runs/x/checkpoint.pt')}; continue with the same command",
        "finished",
        "finished",
    ]
