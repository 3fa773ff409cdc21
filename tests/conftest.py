"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.config import RunConfig, TrainConfig
from soo_marl.envs import core
from soo_marl.train import train


@pytest.fixture(scope="session")
def tiny_r05_root(tmp_path_factory):
    """A directory holding ``deceptive``: a tiny deceptive baseline at sight radius 0.5
    (2 seeds × 60 episodes, replay batches of 64), trained once per test session."""
    root = tmp_path_factory.mktemp("tiny_r05")
    cfg = TrainConfig(
        env=core.EnvConfig(baseline="deceptive", sight_radius=0.5),
        maddpg=MADDPGConfig(batch_size=64, buffer_size=5000),
        run=RunConfig(seeds=(0, 1), episodes=60, log_every=20),
    )
    train(cfg, root / "deceptive", progress=False)
    return root
