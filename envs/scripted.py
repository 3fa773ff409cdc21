"""Scripted policies (installed as ``soo_marl.envs.scripted``): the scripted blues of the
blue-centric probes (docs/spec.md §4.4) and the scripted red with a hidden type (§1.13).

The scripted red is an environment rule (``EnvConfig.red_policy``: :func:`core.step`
replaces red's action by it), so its one copy lives in :mod:`core` and is re-exported
here; this module imports core and core never imports it (no import circle).
"""

from __future__ import annotations

import numpy as np

from soo_marl.envs import core
from soo_marl.envs.core import RED_POLICIES, scripted_red_action

__all__ = ["RED_POLICIES", "SCRIPTED_BLUES", "scripted_blue_action", "scripted_red_action"]

#: Scripted blue policies of the blue-centric probes (docs/spec.md §4.4).
SCRIPTED_BLUES = ("to_goal", "to_fake", "still")


def scripted_blue_action(cfg: core.EnvConfig, state: core.State, policy: str) -> np.ndarray:
    """(B, 2) action of a scripted blue: full force at the goal, at the fake, or none."""
    if policy == "still":
        return np.zeros((state.batch_size, 2))
    target = state.goal if policy == "to_goal" else state.fake
    d = target - state.pos[:, core.BLUE]
    return core.unit(d)
