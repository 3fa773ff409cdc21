"""``soo-marl stack-models`` (:func:`soo_marl.rundir.stack_models`): runs of one config
trained on different seeds join bit for bit into the run trained on all of them
(seeds train independently of their stack, docs/spec.md §2.7)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.cli import main
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.rundir import RunDirError, load_model, read_config, stack_models
from soo_marl.tasks import parse_seed_ranges
from soo_marl.train import train


def config(seeds, baseline="deceptive") -> TrainConfig:
    return TrainConfig(
        env=EnvConfig(baseline=baseline, sight_radius=0.5),
        maddpg=MADDPGConfig(batch_size=64, buffer_size=5000),
        run=RunConfig(seeds=tuple(seeds), episodes=30, log_every=10),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Seeds (0, 1), (2, 3) and (0, 1, 2, 3) of one config, and (0, 1) of another."""
    root = tmp_path_factory.mktemp("stack")
    for name, seeds in (("s01", (0, 1)), ("s23", (2, 3)), ("s0123", (0, 1, 2, 3))):
        train(config(seeds), root / name, progress=False)
    train(config((0, 1), baseline="honest"), root / "honest01", progress=False)
    return root


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_two_stacks_join_into_the_run_of_all_their_seeds(runs, tmp_path):
    path = stack_models([runs / "s01", runs / "s23"], [0, 1, 2, 3], tmp_path / "joined")
    assert path == tmp_path / "joined" / "final_model.pt"
    joined, whole = weights(path), weights(runs / "s0123" / "final_model.pt")
    assert joined.keys() == whole.keys()
    for key, value in whole.items():
        assert torch.equal(joined[key], value), key  # bit for bit (same machine)
    cfg, meta = read_config(tmp_path / "joined")
    assert cfg == config((0, 1, 2, 3))
    assert meta["joined_from"] == [str(runs / "s01"), str(runs / "s23")]
    loaded = load_model(tmp_path / "joined")
    assert loaded.seeds == [0, 1, 2, 3] and loaded.config == cfg


def test_seeds_are_kept_in_the_order_asked(runs, tmp_path):
    stack_models([runs / "s0123"], [3, 0], tmp_path / "picked")
    picked, whole = (
        weights(tmp_path / "picked" / "final_model.pt"),
        weights(runs / "s0123" / "final_model.pt"),
    )
    for key, value in whole.items():  # 2 agents per seed: seed 3 is rows 6-7, seed 0 rows 0-1
        assert torch.equal(picked[key], torch.cat([value[6:8], value[0:2]])), key
    cfg, meta = read_config(tmp_path / "picked")
    assert cfg.run.seeds == (3, 0) and "joined_from" not in meta  # one run: not a join


def test_refuses_missing_seeds_and_runs_that_learn_differently(runs, tmp_path):
    with pytest.raises(RunDirError, match=r"seeds \[5\] are in none of the runs"):
        stack_models([runs / "s01", runs / "s23"], [0, 5], tmp_path / "x")
    with pytest.raises(RunDirError, match="differ in what they learn"):
        stack_models([runs / "s01", runs / "honest01"], [0, 1], tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_stack_models_command(runs, tmp_path):
    out = tmp_path / "cli"
    argv = ["stack-models", str(runs / "s23"), str(runs / "s01"), "--seeds", "0-3", "--out"]
    res = CliRunner().invoke(main, [*argv, str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"wrote {out / 'final_model.pt'}: seeds [0, 1, 2, 3]"
    whole = weights(runs / "s0123" / "final_model.pt")
    for key, value in weights(out / "final_model.pt").items():
        assert torch.equal(value, whole[key]), key
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["run"]["seeds"] == [0, 1, 2, 3]
    assert json.loads(torch.load(out / "final_model.pt", weights_only=True)["config"])["meta"][
        "joined_from"
    ] == [str(runs / "s23"), str(runs / "s01")]
    res = CliRunner().invoke(main, [*argv[:-2], "0-9", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1 and "seeds [4, 5, 6, 7, 8, 9] are in none of the runs" in res.output


def test_seed_ranges():
    assert parse_seed_ranges("8-11", "--seeds") == [8, 9, 10, 11]
    assert parse_seed_ranges("3,5", "--seeds") == [3, 5]
    assert parse_seed_ranges("0-2, 7", "--seeds") == [0, 1, 2, 7]
    with pytest.raises(ValueError, match="--seeds takes seeds and ranges"):
        parse_seed_ranges("a-b", "--seeds")
