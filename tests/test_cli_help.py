"""A readable --help: train's and finetune's options in sections (the most used first),
defaults in one format, no history in the help text, one visible way to choose seeds (the
others hidden aliases that still work), and ``train --print-config``, whose YAML
``--config`` reads back to the same config."""

import dataclasses
import re
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from soo_marl import commands
from soo_marl.cli import main
from soo_marl.config import TrainConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.help_sections import split_default
from soo_marl.tasks import train_config

TRAIN_SECTIONS = ["Run:", "Environment:", "Closed-loop environment options:", "Learner (MADDPG):"]


def _help(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def _sections(text: str) -> dict[str, str]:
    """Section heading → its body, for the unindented ``Heading:`` lines after the usage."""
    parts = re.split(r"^(\S[^\n]*:)$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _config(*args: str) -> str:
    result = CliRunner().invoke(main, ["train", "--baseline", "deceptive", *args, "--print-config"])
    assert result.exit_code == 0, result.output
    return result.output


def test_train_help_sections_appear_in_order() -> None:
    text = _help("train")
    headings = [h for h in _sections(text) if not h.startswith("Usage")]
    assert headings == [*TRAIN_SECTIONS, "Other options:"]


def test_the_most_used_options_come_first() -> None:
    sections = _sections(_help("train"))
    run = sections["Run:"]
    options = re.findall(r"^  (--[a-z-]+)", run, flags=re.M)
    assert options[:4] == ["--baseline", "--episodes", "--seeds", "--run-dir"]
    assert "--print-config" in options
    assert "--guide-reward" in sections["Closed-loop environment options:"]
    assert "--guide-reward" not in sections["Environment:"]
    assert "--lr-actor" in sections["Learner (MADDPG):"]
    assert sections["Environment:"].split()[0] == "--sight-radius"  # the first there


@pytest.mark.parametrize("command", ["train", "finetune", "evaluate"])
def test_help_has_no_history_and_one_default_format(command: str) -> None:
    text = _help(command)
    assert not re.search(r"\b20\d\d\b", text), "a year in the help text"
    assert "(default" not in text
    assert "default:" not in text.replace("[default:", "")
    flat = " ".join(text.split())
    assert "[default: 40000]" in flat or command != "train"


def test_finetune_help_sections() -> None:
    sections = _sections(_help("finetune"))
    assert [h for h in sections if not h.startswith("Usage")] == [
        "Run:",
        "Fine-tuning:",
        "Other options:",
    ]
    assert "--episodes" in sections["Run:"] and "--soo-weight" in sections["Fine-tuning:"]


def test_every_closed_loop_field_is_an_environment_field() -> None:
    names = {f.name for f in dataclasses.fields(EnvConfig)}
    assert set(commands.CLOSED_LOOP_FIELDS) <= names


def test_seed_aliases_are_hidden_and_give_the_same_config() -> None:
    text = _help("train")
    assert "--seeds" in text
    assert "--first-seed" not in text and not re.search(r"--seed\b(?!s)", text)
    assert _config("--seed", "3", "--seed", "5") == _config("--seeds", "3,5")
    assert _config("--seeds", "4", "--first-seed", "8") == _config("--seeds", "8-11")
    assert _config("--seeds", "3") == _config("--seeds", "0-2")
    data = yaml.safe_load(_config("--seeds", "0-2,7"))
    assert data["run"]["seeds"] == [0, 1, 2, 7]


def test_print_config_round_trips_through_config(tmp_path: Path) -> None:
    args = ["--seeds", "2-3", "--episodes", "30", "--guide-reward", "0.5", "--hidden", "32,16"]
    args += ["--red-sees-velocity", "--torch-threads", "1", "--kernels", "reference"]
    printed = _config(*args)
    path = tmp_path / "printed.yaml"
    path.write_text(printed)
    assert _config("--config", str(path)) == printed
    options = {"baseline": "deceptive", "seeds": (2, 3), "episodes": 30, "guide_reward": 0.5}
    options |= {"hidden": "32,16", "red_sees_velocity": True, "torch_threads": 1}
    options |= {"kernels": "reference"}
    expected = train_config(options)
    assert TrainConfig.from_dict(yaml.safe_load(printed)) == expected
    assert train_config({"baseline": "deceptive", "config": path}) == expected


def test_print_config_trains_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _config("--run-dir", str(run), "--episodes", "10")
    assert not run.exists()


def test_bad_seeds_are_one_clear_line() -> None:
    result = CliRunner().invoke(main, ["train", "--baseline", "honest", "--seeds", "x"])
    assert result.exit_code != 0
    assert "--seeds takes seeds and ranges" in result.output


def test_split_default() -> None:
    assert split_default("a rate (default: 1 (or 2)) (x or y)") == ("a rate (x or y)", "1 (or 2)")
    assert split_default("no remark") == ("no remark", None)


def test_hidden_options_have_no_help_record() -> None:
    ctx = click.Context(commands.train)
    names = [p.name for p in commands.train.get_params(ctx) if getattr(p, "hidden", False)]
    assert sorted(names) == ["first_seed", "seed_list"]
