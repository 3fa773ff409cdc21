"""The baseline weights committed under docs/results/models load (as `finetune --from` and
`evaluate` load them) and still behave as reported: honest blues reach the goal, and the
deceptive pairs trap red more often than the honest pairs on the same start states."""

from pathlib import Path

import numpy as np
import pytest

from soo_marl import metrics
from soo_marl.rollout import rollout, start_uniforms
from soo_marl.rundir import load_model

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"
SETS = sorted(p for p in MODELS.iterdir() if p.is_dir()) if MODELS.exists() else []


def test_models_are_committed():
    assert SETS, f"no baseline weights under {MODELS}"


@pytest.mark.parametrize("model_set", SETS, ids=[p.name for p in SETS])
def test_committed_baselines_load_and_behave(model_set):
    uniforms = start_uniforms([155], 40)
    trap, goal = {}, {}
    for baseline in ("deceptive", "honest"):
        loaded = load_model(model_set / baseline)
        assert loaded.config.env.baseline == baseline
        assert loaded.path.name == "final_model.pt"
        cfg = loaded.config.env
        traj = rollout(cfg, uniforms, loaded.model, loaded.model)
        trap[baseline] = metrics.trap_rate(traj["trapped"])
        goal[baseline] = metrics.goal_reach_rate(
            cfg, traj["blue_pos"], traj["landmarks"], traj["goal_index"]
        )
    assert np.median(goal["honest"]) >= 0.9, goal["honest"]
    assert trap["deceptive"].mean() > trap["honest"].mean(), trap
