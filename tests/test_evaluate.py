"""Evaluation exports: metrics recomputable from the saved trajectories; probes behave."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from soo_marl import metrics, rundir
from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.cli import main
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs.core import EnvConfig
from soo_marl.evaluate import evaluate_runs
from soo_marl.train import train


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for baseline in ("deceptive", "honest"):
        cfg = TrainConfig(
            env=EnvConfig(baseline=baseline),
            maddpg=MADDPGConfig(batch_size=64, buffer_size=5000),
            run=RunConfig(seeds=(0, 1), episodes=40, log_every=20),
        )
        train(cfg, root / baseline, progress=False)
    return root


def test_evaluate_exports_and_metrics_are_recomputable(two_runs):
    runs = [two_runs / "deceptive", two_runs / "honest"]
    res = evaluate_runs(runs, episodes=6, eval_seeds=[155, 714], progress=False)
    assert set(res) == {"deceptive r0.125", "honest r0.125"}
    for run in runs:
        saved = json.loads((run / "eval" / "metrics.json").read_text())
        tr = rundir.read_trajectories(run)
        assert tr["red_pos"].shape == (2, 12, 51, 2) and tr["actions_blue"].shape == (2, 12, 50, 2)
        assert list(tr["eval_seeds"]) == [155, 714] and int(tr["episodes_per_eval_seed"]) == 6
        # recompute from the file alone
        trap = metrics.trap_rate(tr["trapped"])
        assert np.allclose(saved["metrics"]["trap_rate"]["values"], trap)
        rec = metrics.deceptive_records(
            tr["blue_pos"], tr["landmarks"], tr["goal_index"], tr["red_visible"]
        )
        assert np.allclose(
            saved["metrics"]["headline_guard"]["values"], metrics.headline_count(*rec, keep_axis=0)
        )
        # SOO value: NaN exactly where red is in sight
        assert np.array_equal(np.isnan(tr["soo_value"]), tr["red_visible"])
        # all conditions saw the same start states
        other = rundir.read_trajectories(runs[0])
        assert np.array_equal(tr["landmarks"], other["landmarks"])
        assert np.array_equal(tr["red_pos"][:, :, 0], other["red_pos"][:, :, 0])
        # luring = own trap rate − trap rate with a to_goal blue, per seed
        luring = np.array(saved["metrics"]["trap_rate"]["values"]) - np.array(
            saved["probes"]["to_goal"]["trap_rate"]["values"]
        )
        assert np.allclose(saved["luring_delta_trap"]["values"], luring)
        assert len(saved["cross_play"]) == 1
        # a to_fake blue walks onto the fake landmark in (nearly) every episode
        assert saved["probes"]["to_fake"]["blue_at_fake"]["mean"] > 0.9
        assert saved["probes"]["still"]["blue_at_fake"]["mean"] < 0.3


def test_evaluate_cli_errors(tmp_path):
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert res.exit_code != 0 and "holds no final_model.pt" in res.output


def test_report_tables_quote_saved_numbers(two_runs):
    from soo_marl.analysis import tables

    runs = [two_runs / "deceptive", two_runs / "honest"]
    evaluate_runs(runs, episodes=4, eval_seeds=[155], progress=False)
    ms = [rundir.require_metrics(r) for r in runs]
    table = tables.results_table(ms).splitlines()
    assert len(table) == 4 and table[2].startswith("| deceptive r0.125 | 2 |")
    assert tables.fmt(ms[0]["metrics"]["trap_rate"]) in table[2]
    assert "to_fake" in tables.probe_table(ms)
    with pytest.raises(FileNotFoundError, match="soo-marl evaluate"):
        rundir.require_metrics(two_runs / "nowhere")
