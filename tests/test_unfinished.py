"""An unfinished run says so: Ctrl-C ends ``train`` and ``finetune`` with exit status 130
after the checkpoint and the one line on how to continue; ``evaluate``, ``finetune
--from``, ``render`` and ``classify`` refuse a run without its final model in one line
(the command line and the Python functions alike) unless ``--allow-unfinished``, and what
they then make records how far the run had got."""

import json
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from soo_marl import rundir
from soo_marl import train as train_module
from soo_marl.analysis.classify import classify
from soo_marl.cli import main
from soo_marl.evaluate import evaluate_runs
from soo_marl.finetune import FinetuneConfig, finetune
from soo_marl.rendering import play_run
from soo_marl.vecenv import DeceptionVecEnv

EPISODES = 60  # 6 batches of 10 episodes per seed


def ctrl_c_at(mp: pytest.MonkeyPatch, batch: int) -> None:
    """Every training in this process sends itself SIGINT (what Ctrl-C sends) as its
    ``batch``-th batch of episodes starts: a known point inside the training loop."""

    class CtrlCEnv(DeceptionVecEnv):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.resets = 0

        def reset(self, rngs):
            self.resets += 1
            if self.resets == batch:
                signal.raise_signal(signal.SIGINT)
            return super().reset(rngs)

    mp.setattr(train_module, "DeceptionVecEnv", CtrlCEnv)


def train_args(run_dir: Path, *extra: str) -> list[str]:
    return ["train", "--baseline", "deceptive", "--seed", "3", "--episodes", str(EPISODES),
            "--batch-size", "64", "--buffer-size", "5000", "--checkpoint-every", "40",
            "--log-every", "20", "--torch-threads", "1", "--run-dir", str(run_dir), "--quiet",
            *extra]  # fmt: skip


def invoke(args: list[str], batch: int | None = None):
    """The command line in this process; with ``batch``, Ctrl-C as that batch starts."""
    with pytest.MonkeyPatch.context() as mp:
        if batch is not None:
            ctrl_c_at(mp, batch)
        return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """``soo-marl train`` stopped by Ctrl-C as its 3rd batch starts (episode 30 of 60), and
    its result."""
    run = tmp_path_factory.mktemp("unfinished") / "dec"
    return run, invoke(train_args(run), batch=3)


def refusal(run: Path) -> str:
    return (
        f"{run} is unfinished (30 of {EPISODES} episodes per seed, no final_model.pt); finish "
        "it with `soo-marl train … --resume` (the command that started it, plus --resume), or "
        "pass --allow-unfinished"
    )


def test_train_stopped_by_ctrl_c_exits_130_after_its_checkpoint_and_one_line(cut):
    run, res = cut
    assert res.exit_code == 130, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"interrupted at 30 episodes of {EPISODES} per seed in "
    ), res.output
    assert f"checkpoint saved in {run / rundir.CHECKPOINT};" in lines[0]
    assert lines[0].endswith("continue with the same command plus --resume")
    assert rundir.load_checkpoint(run / rundir.CHECKPOINT)["episode"] == 30
    assert not rundir.has_model(run)
    found = rundir.unfinished(run)
    assert (found.kind, found.episodes_done, found.episodes_planned) == ("train", 30, EPISODES)


def test_ctrl_c_in_the_last_batch_finishes_the_run_and_exits_0(tmp_path):
    res = invoke(train_args(tmp_path / "dec"), batch=EPISODES // 10)
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"finished {EPISODES} episodes per seed in ")
    assert rundir.has_model(tmp_path / "dec") and rundir.unfinished(tmp_path / "dec") is None


def test_finetune_stopped_by_ctrl_c_exits_130_and_resumes(tiny_r05_root, tmp_path):
    parent, child = tiny_r05_root / "deceptive", tmp_path / "soo"
    args = ["finetune", "--from", parent, "--run-dir", child, "--episodes", "40",
            "--device", "cpu", "--quiet"]  # fmt: skip
    res = invoke(args, batch=2)
    assert res.exit_code == 130, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at 20 episodes of 40 per seed")
    assert lines[0].endswith("continue with the same command plus --resume")
    assert not rundir.has_model(child)
    found = rundir.unfinished(child)
    assert (found.kind, found.episodes_done, found.episodes_planned) == ("finetune", 20, 40)
    again = invoke([*args, "--resume"])
    assert again.exit_code == 0 and again.output.startswith("fine-tuned 40 episodes per seed")
    assert rundir.has_model(child)


def _commands(run: Path, tmp: Path) -> dict[str, list]:
    return {
        "evaluate": ["evaluate", run, "--episodes", "2", "--eval-seeds", "155", "--quiet"],
        "finetune": ["finetune", "--from", run, "--run-dir", tmp / "ft", "--episodes", "20",
                     "--device", "cpu", "--quiet"],
        "render": ["render", run, "--episodes", "1", "--out", tmp / "x.gif"],
        "render --against": ["render", tmp / "done", "--against", run, "--episodes", "1",
                             "--out", tmp / "x.gif"],
        "classify": ["classify", "--deceptive", run, "--honest", run, "--out", tmp / "clf"],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["evaluate", "finetune", "render", "render --against",
                                     "classify"])  # fmt: skip
def test_commands_refuse_an_unfinished_run_in_one_line(cut, tiny_r05_root, tmp_path, command):
    run, _ = cut
    (tmp_path / "done").symlink_to(tiny_r05_root / "deceptive")  # a finished run
    res = invoke(_commands(run, tmp_path)[command])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines() == ["Error: " + refusal(run)]
    assert not (run / rundir.EVAL).exists()  # nothing was made
    assert not any(p.name != "done" for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "call",
    [
        lambda run, tmp: evaluate_runs([run], episodes=2, eval_seeds=[155], progress=False),
        lambda run, tmp: finetune(run, FinetuneConfig(episodes=20), tmp / "ft", device="cpu"),
        lambda run, tmp: play_run(run, episodes=1),
        lambda run, tmp: classify(run, run),
    ],
    ids=["evaluate_runs", "finetune", "play_run", "classify"],
)
def test_python_functions_refuse_an_unfinished_run(cut, tmp_path, call):
    run, _ = cut
    with pytest.raises(rundir.UnfinishedRunError) as err:
        call(run, tmp_path)
    assert str(err.value) == refusal(run)
    assert not (tmp_path / "ft").exists()


def test_allow_unfinished_evaluates_renders_and_classifies_it_and_says_how_far(cut, tmp_path):
    run = tmp_path / "dec"
    shutil.copytree(cut[0], run)  # evaluated here, so the other tests see no eval/
    res = invoke(["evaluate", run, "--episodes", "2", "--eval-seeds", "155", "--allow-unfinished"])
    assert res.exit_code == 0, res.output
    assert f"(1 seeds; unfinished: 30 of {EPISODES} episodes per seed)" in res.output
    meta = rundir.require_metrics(run)["meta"]
    assert meta["unfinished"] is True
    assert (meta["episodes_trained"], meta["episodes_planned"]) == (30, EPISODES)
    res = invoke(["render", run, "--episodes", "1", "--out", tmp_path / "x.gif",
                  "--allow-unfinished"])  # fmt: skip
    assert res.exit_code == 0 and (tmp_path / "x.gif").stat().st_size > 0, res.output
    res = invoke(["classify", "--deceptive", run, "--honest", run, "--episodes", "1",
                  "--out", tmp_path / "clf", "--allow-unfinished"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "clf" / "classifier.json").read_text())["n_episodes"] == [1]


def test_allow_unfinished_fine_tunes_it_and_the_child_records_the_parents_episodes(cut, tmp_path):
    run, _ = cut
    child = tmp_path / "ft"
    res = invoke(["finetune", "--from", run, "--run-dir", child, "--episodes", "20",
                  "--device", "cpu", "--quiet", "--allow-unfinished"])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = yaml.safe_load((child / rundir.CONFIG).read_text())["meta"]
    assert meta["parent_unfinished"] is True
    assert (meta["parent_episode"], meta["parent_episodes_planned"]) == (30, EPISODES)
    assert meta["parent_checkpoint"] == str(run / rundir.CHECKPOINT)
    assert rundir.has_model(child)  # the child itself finished


def test_a_finished_parent_records_no_unfinished_flag(tiny_r05_root, tmp_path):
    finetune(tiny_r05_root / "deceptive", FinetuneConfig(episodes=20), tmp_path / "ft",
             progress=False, device="cpu")  # fmt: skip
    meta = rundir.read_config(tmp_path / "ft")[1]
    assert "parent_unfinished" not in meta and meta["parent_episode"] == 60


def test_a_directory_without_a_run_is_not_called_unfinished(tmp_path):
    assert rundir.unfinished(tmp_path) is None  # its readers say what is missing
    res = invoke(["evaluate", tmp_path])
    assert res.exit_code != 0 and "holds no final_model.pt or checkpoint.pt" in res.output


def test_a_stage_run_in_process_fails_when_its_training_is_stopped(tmp_path):
    """How a Ray task runs a stage (``sweep.run.execute_in_process`` of its typed task): a
    training stopped by Ctrl-C is a failure, not a finished stage."""
    from soo_marl.sweep.run import execute_in_process
    from soo_marl.tasks import TrainTask

    options = {"baseline": "deceptive", "seed": [3], "episodes": EPISODES, "batch_size": 64,
               "buffer_size": 5000, "checkpoint_every": 40, "log_every": 20}  # fmt: skip
    task = TrainTask.from_options(options, tmp_path / "dec", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        ctrl_c_at(mp, 3)
        with pytest.raises(RuntimeError, match="was interrupted before it finished"):
            execute_in_process(task, threads=1)
    assert rundir.unfinished(tmp_path / "dec").episodes_done == 30
