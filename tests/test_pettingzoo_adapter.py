"""The same MADDPG trains on another PettingZoo env (mpe2 simple_spread) through the adapter."""

import numpy as np
import pytest
import torch

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.rundir import load_model
from soo_marl.train import train
from soo_marl.vecenv import PettingZooVecEnv, mean_policy_return

simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")


def make_env():
    return simple_spread_v3.parallel_env(N=2, continuous_actions=True, max_cycles=25)


@pytest.mark.slow
def test_maddpg_beats_random_on_simple_spread(tmp_path):
    cfg = TrainConfig(
        maddpg=MADDPGConfig(
            batch_size=256, buffer_size=50_000, noise_decay_episodes=600, steps_per_update=10
        ),
        run=RunConfig(seeds=(0,), episodes=800, envs_per_seed=8, log_every=200),
    )
    train(
        cfg,
        tmp_path / "spread",
        progress=False,
        env_factory=lambda s, e: PettingZooVecEnv(make_env, s, e),
    )
    model = load_model(tmp_path / "spread").model
    assert model.obs_dims == [12, 12] and model.act_dims == [5, 5]
    eval_env = PettingZooVecEnv(make_env, 1, 20)
    rng = lambda: [np.random.default_rng(123)]  # noqa: E731 - same start states for both
    learned = mean_policy_return(
        eval_env, lambda o: model.act(torch.from_numpy(o)).numpy(), rng(), rounds=2
    )
    g = np.random.default_rng(0)
    random = mean_policy_return(
        eval_env, lambda o: g.uniform(-1, 1, (o.shape[0], o.shape[1], 10)), rng(), rounds=2
    )
    # the agents share the team reward; learned must beat random by a clear margin
    assert learned.mean() > random.mean() + 0.25 * abs(random.mean()), (learned, random)
