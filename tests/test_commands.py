"""The command registry: the stage kinds name real options of their commands, the command
line is assembled from the same command objects, and defaults have one home each."""

from pathlib import Path

from soo_marl import stage_kinds
from soo_marl.cli import main
from soo_marl.sweep import parse_study


def test_every_stage_kind_is_a_command_of_the_cli():
    for name, kind in stage_kinds.KINDS.items():
        assert main.commands[name] is kind.command
        options = stage_kinds.command_options(name)
        # a reserved option is one the command has (the runs of evaluate and plot are its
        # arguments, not options)
        assert kind.reserved - {"runs"} <= set(options), name
        assert kind.cpus >= 1
    assert stage_kinds.RUN_KINDS == tuple(k for k, v in stage_kinds.KINDS.items() if v.makes_run)


def test_stage_argv_of_each_kind():
    s = parse_study(
        {
            "name": "t",
            "stages": [
                {"name": "d", "kind": "train", "options": {"baseline": "deceptive"}},
                {"name": "h", "kind": "train", "options": {"baseline": "honest"}},
                {"name": "f", "kind": "finetune", "parent": "d",
                 "options": {"soo": False, "fresh-buffer": True}},
                {"name": "e", "kind": "evaluate", "runs": ["d", "h", "f"], "cross_with": ["d"]},
                {"name": "c", "kind": "classify", "deceptive": "d", "honest": "h",
                 "options": {"pool-eval-seeds": True}},
                {"name": "p", "kind": "plot", "runs": ["d"], "classifier": "c",
                 "options": {"format": ["png", "svg"]}},
                {"name": "r", "kind": "report", "classifier": "c", "figures": "p",
                 "runs": {"deceptive": "d", "honest": "h", "soo": "f", "no-soo": "f"}},
            ],
        }
    )  # fmt: skip
    o = Path("/O")

    def argv(name: str, resume: bool = False) -> list[str]:
        return stage_kinds.stage_argv(s.stage(name), o, s.stage, resume)

    assert argv("d", resume=True) == [
        "train", "--run-dir", "/O/d", "--resume", "--baseline", "deceptive"
    ]  # fmt: skip
    assert argv("f") == [
        "finetune", "--from", "/O/d", "--run-dir", "/O/f", "--no-soo", "--fresh-buffer"
    ]  # fmt: skip
    assert argv("e") == ["evaluate", "/O/d", "/O/h", "/O/f", "--cross-with", "/O/d", "--quiet"]
    assert argv("c") == [
        "classify", "--deceptive", "/O/d", "--honest", "/O/h", "--out", "/O/c",
        "--pool-eval-seeds",
    ]  # fmt: skip
    clf = "/O/c/classifier_pooled.json"
    assert argv("p") == [
        "plot", "/O/d", "--out", "/O/p", "--classifier", clf, "--format", "png", "--format", "svg"
    ]  # fmt: skip
    assert argv("r") == [
        "report", "--deceptive", "/O/d", "--honest", "/O/h", "--soo", "/O/f", "--no-soo", "/O/f",
        "--classifier", clf, "--figures", "/O/p", "--out", "/O/r.md",
    ]  # fmt: skip
