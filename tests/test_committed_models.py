"""The baseline weights committed under docs/results/models load (as `finetune --from` and
`evaluate` load them) and still behave as reported: honest blues reach the goal, and the
deceptive pairs trap red more often than the honest pairs on the same start states; sets of
fine-tuned arms (``*_arms*``) give the trap rates their seed_values.json record."""

from pathlib import Path

import numpy as np
import pytest

from soo_marl import metrics, seed_values
from soo_marl.envs import core
from soo_marl.rollout import rollout, start_uniforms
from soo_marl.rundir import load_model

MODELS = Path(__file__).resolve().parents[1] / "docs" / "results" / "models"
SETS = sorted(p for p in MODELS.iterdir() if p.is_dir()) if MODELS.exists() else []


def test_models_are_committed():
    assert SETS, f"no baseline weights under {MODELS}"


#: Sets checked against the trap rates their seed_values.json record rather than by the
#: baselines' rule: fine-tuned arms (one folder per arm), and the closed-loop second
#: attempt's designs, some of which did not learn to lure (docs/results/closed_loop.md).
ARM_SETS = [p for p in SETS if "_arms" in p.name or p.name.startswith("closed_loop2_")]


@pytest.mark.parametrize("model_set", ARM_SETS, ids=[p.name for p in ARM_SETS])
def test_committed_arms_load_and_behave_as_recorded(model_set):
    """Each arm's own rollout on its recorded evaluation (seeds, episodes) gives the
    per-seed trap rates its seed_values.json records, within a tolerance (float32 may
    differ in the last bits between CPUs)."""
    arms = sorted(p for p in model_set.iterdir() if (p / "final_model.pt").exists())
    assert arms, f"{model_set} holds no arm"
    for arm in arms:
        rec = seed_values.read_seed_values(arm / seed_values.FILE)
        loaded = load_model(arm)
        assert [int(x) for x in loaded.model.seeds] == rec["seeds"]
        ev = rec["evaluation"]
        cfg = loaded.config.env
        n = ev["episodes_per_eval_seed"]
        uniforms = start_uniforms(ev["eval_seeds"], n, core.reset_draws(cfg))
        traj = rollout(cfg, uniforms, loaded.model, loaded.model)
        again = metrics.trap_rate(traj["trapped"])
        np.testing.assert_allclose(again, rec["measures"]["metrics.trap_rate"], atol=0.02)


BASELINE_SETS = [p for p in SETS if p not in ARM_SETS]


@pytest.mark.parametrize("model_set", BASELINE_SETS, ids=[p.name for p in BASELINE_SETS])
def test_committed_baselines_load_and_behave(model_set):
    present = [b for b in ("deceptive", "honest") if (model_set / b).is_dir()]
    assert present, f"{model_set} holds neither a deceptive nor an honest baseline"
    trap, goal = {}, {}
    for baseline in present:
        loaded = load_model(model_set / baseline)
        assert loaded.config.env.baseline == baseline
        assert loaded.path.name == "final_model.pt"
        cfg = loaded.config.env
        uniforms = start_uniforms([155], 40, core.reset_draws(cfg))
        traj = rollout(cfg, uniforms, loaded.model, loaded.model)
        trap[baseline] = metrics.trap_rate(traj["trapped"])
        goal[baseline] = metrics.goal_reach_rate(
            cfg, traj["blue_pos"], traj["landmarks"], traj["goal_index"]
        )
    # with the guide reward or the scripted red (docs/spec.md §1.12, §1.13) the honest blue
    # is paid for bringing red to the goal and may stay off its own goal to do so
    guided = cfg.guide_reward > 0 or cfg.scripted_red
    if "honest" in goal and not guided:
        # the quick preset's 6,000-episode honest blues reach the goal 0.885 [0.849, 0.916]
        # of the time over 24 seeds (docs/results/quick/report.md); longer runs reach ≥ 0.9
        short = loaded.config.run.episodes < 10_000
        assert np.median(goal["honest"]) >= (0.8 if short else 0.9), goal["honest"]
    if len(present) == 2:
        assert trap["deceptive"].mean() > trap["honest"].mean(), trap
    else:  # a deceptive pair alone (the 10,000-episode "published artefact"): a trained
        # blue (an untrained one stands still) and a red trapped more often than the honest
        # baselines' (0.13-0.25 at these radii)
        assert np.median(goal["deceptive"]) >= 0.3, goal["deceptive"]
        assert trap["deceptive"].mean() > 0.3, trap


def test_every_committed_set_is_described():
    readme = (MODELS / "README.md").read_text()
    for model_set in SETS:
        assert f"`{model_set.name}/`" in readme, f"{model_set.name} missing from models/README.md"
