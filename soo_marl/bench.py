"""Speed benchmarks of the environment (``soo-marl bench env``).

Every figure is env-steps per second: the median over ``repeats`` timed repeats, after
one untimed warm-up repeat. A repeat plays whole 50-step episodes (resets included) with
uniformly random actions drawn before the clock starts, until at least ``steps`` env
steps have been taken; for a batch of B worlds one batched step counts as B env steps.

The PettingZoo env and mpe2 are measured side by side: their timed repeats alternate
(ours, mpe2, ours, mpe2, …) in one process, so a slow spell of the machine falls on both
and the per-pair ratios see the same conditions (issue 34 item 7).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from soo_marl.envs import core
from soo_marl.envs.physical_deception_v0 import parallel_env

#: Batch sizes at which the batched core is measured.
BATCH_SIZES = (1, 64, 1024, 4096)
#: Episode length used by every benchmark (docs/spec.md §1.8).
EPISODE_STEPS = 50


def _rate(run_once: Callable[[], int]) -> float:
    """Env-steps/s of one timed call of ``run_once`` (which returns the env steps it took)."""
    start = time.perf_counter()
    n = run_once()
    return n / (time.perf_counter() - start)


def _median_rate(run_once: Callable[[], int], repeats: int) -> float:
    """Median env-steps/s of ``repeats`` timed calls of ``run_once`` (which returns the
    number of env steps it took), after one untimed warm-up call."""
    run_once()
    return float(statistics.median(_rate(run_once) for _ in range(repeats)))


def _interleaved_rates(runners: Sequence[Callable[[], int]], repeats: int) -> list[list[float]]:
    """Env-steps/s of each runner in ``repeats`` rounds; each round times every runner once,
    in the order given, after one untimed warm-up call of each. ``rates[i][j]`` is runner
    i in round j, so ``rates[0][j]`` and ``rates[1][j]`` are a pair timed back to back."""
    for run_once in runners:
        run_once()
    rates: list[list[float]] = [[] for _ in runners]
    for _ in range(repeats):
        for i, run_once in enumerate(runners):
            rates[i].append(_rate(run_once))
    return rates


def _episodes_for(steps: int, batch_size: int = 1) -> int:
    """Whole episodes needed for at least ``steps`` env steps with ``batch_size`` worlds."""
    return max(1, math.ceil(steps / (EPISODE_STEPS * batch_size)))


def _parallel_env_runner(env: Any, actions: np.ndarray) -> Callable[[], int]:
    """One repeat of the PettingZoo ParallelEnv ``env`` playing the pre-drawn ``actions``
    ((episodes × 50, 2 agents, action dim)); one reset per episode. Returns the env steps."""
    env.reset(seed=0)
    agents = list(env.possible_agents)
    # the per-step action dicts are built inside the timed loop, as any caller would
    rows = [list(a) for a in actions]

    def run_once() -> int:
        n = 0
        while n < len(rows):
            env.reset()
            while env.agents:
                row = rows[n]
                env.step({agent: row[i] for i, agent in enumerate(agents)})
                n += 1
        return n

    return run_once


def _batched_rate(batch_size: int, steps: int, repeats: int, rng: np.random.Generator) -> float:
    """Env-steps/s of :class:`core.BatchedEnv` with ``batch_size`` worlds."""
    episodes = _episodes_for(steps, batch_size)
    env = core.BatchedEnv(core.EnvConfig(max_cycles=EPISODE_STEPS), batch_size)
    actions = rng.uniform(-1.0, 1.0, (EPISODE_STEPS, 2, batch_size, core.ACTION_DIM))
    reset_rng = np.random.default_rng(1)

    def run_once() -> int:
        for _ in range(episodes):
            env.reset(reset_rng)
            for t in range(EPISODE_STEPS):
                # validate=False: the actions are known to be finite, in range and of the
                # right shape, so this times the core itself (as the trainer steps it),
                # not the input checks
                env.step(actions[t, 0], actions[t, 1], validate=False)
        return episodes * EPISODE_STEPS * batch_size

    return _median_rate(run_once, repeats)


def _mpe2_module() -> Any | None:
    """``mpe2.simple_adversary_v3`` if mpe2 is installed, else None."""
    try:
        from mpe2 import simple_adversary_v3
    except ImportError:
        return None
    return simple_adversary_v3


def _version(module_name: str) -> str | None:
    """Installed version of a distribution, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module_name)
    except PackageNotFoundError:
        return None


def bench_env(repeats: int = 5, steps: int = 20000) -> dict[str, Any]:
    """Measure env-steps/s of the PettingZoo env, the batched core (B = 1, 64, 1024, 4096)
    and, when installed, mpe2's ``simple_adversary_v3`` (N=1, continuous actions).

    The PettingZoo env and mpe2 alternate repeat by repeat (ours, mpe2, ours, …) in this
    process; without mpe2 the PettingZoo env is timed alone.

    Returns the JSON-ready dict printed by ``soo-marl bench env --json``: keys
    ``pettingzoo_env`` (median steps/s), ``batched`` (str(B) → steps/s), ``mpe2`` (median,
    or None), ``ratio_vs_mpe2`` (pettingzoo_env / mpe2: the ratio of the medians, or None),
    ``ratio_vs_mpe2_paired`` (the median over repeats of the ratio of the two repeats timed
    back to back, or None), ``pettingzoo_env_rates`` and ``mpe2_rates`` (steps/s of every
    repeat in timing order, the pairs at equal positions; ``mpe2_rates`` None without mpe2)
    and ``meta``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    pz_rates, mpe2_rates = _pettingzoo_and_mpe2_rates(steps, repeats)
    pz_rate = float(statistics.median(pz_rates))
    mpe2_rate = ratio = paired = None
    if mpe2_rates is not None:
        mpe2_rate = float(statistics.median(mpe2_rates))
        ratio = pz_rate / mpe2_rate
        paired = float(statistics.median(p / m for p, m in zip(pz_rates, mpe2_rates, strict=True)))

    batched = {
        str(b): _batched_rate(b, steps, repeats, np.random.default_rng(b)) for b in BATCH_SIZES
    }

    return {
        "pettingzoo_env": pz_rate,
        "batched": batched,
        "mpe2": mpe2_rate,
        "ratio_vs_mpe2": ratio,
        "ratio_vs_mpe2_paired": paired,
        "pettingzoo_env_rates": pz_rates,
        "mpe2_rates": mpe2_rates,
        "meta": _env_meta(repeats, steps),
    }


def format_env_report(result: dict[str, Any]) -> str:
    """A short human-readable table of a :func:`bench_env` result."""
    meta = result.get("meta", {})
    rows = [("PettingZoo env (parallel_env, B=1)", result["pettingzoo_env"])]
    rows += [(f"batched core B={b}", rate) for b, rate in result["batched"].items()]
    rows.append(("mpe2 simple_adversary_v3 (N=1)", result["mpe2"]))
    width = max(len(name) for name, _ in rows)
    lines = [
        f"env steps/s, median of {meta.get('repeats', '?')} repeats "
        f"(>= {meta.get('steps_per_repeat', '?')} steps each, resets included, random actions)",
        f"{'setting'.ljust(width)}  {'steps/s':>12}",
        f"{'-' * width}  {'-' * 12}",
    ]
    for name, rate in rows:
        value = "not installed" if rate is None else f"{rate:,.0f}"
        lines.append(f"{name.ljust(width)}  {value:>12}")
    ratio = result.get("ratio_vs_mpe2")
    if ratio is not None:
        lines.append(f"{'PettingZoo env / mpe2'.ljust(width)}  {ratio:>11.2f}x")
    paired = result.get("ratio_vs_mpe2_paired")
    if paired is not None:
        lines.append(f"{'  median of per-pair ratios'.ljust(width)}  {paired:>11.2f}x")
    lines.append(
        f"python {meta.get('python', '?')}, numpy {meta.get('numpy', '?')}, "
        f"{meta.get('cpu_count', '?')} CPUs; batched core stepped with validate=False; "
        "PettingZoo env and mpe2 timed in alternating repeats"
    )
    return "\n".join(lines)


def _pettingzoo_and_mpe2_rates(steps: int, repeats: int) -> tuple[list[float], list[float] | None]:
    """Steps/s of every repeat of the PettingZoo env and of mpe2 (None without it), timed
    alternately in this process so the pairs at equal positions ran back to back."""
    rng = np.random.default_rng(0)
    n_single = _episodes_for(steps) * EPISODE_STEPS
    envs = [parallel_env(max_cycles=EPISODE_STEPS)]
    actions: list[np.ndarray] = [rng.uniform(-1.0, 1.0, (n_single, 2, core.ACTION_DIM))]
    adversary = _mpe2_module()
    if adversary is not None:
        envs.append(adversary.parallel_env(N=1, continuous_actions=True, max_cycles=EPISODE_STEPS))
        # mpe2's continuous action spaces are Box(0, 1, (5,), float32)
        actions.append(rng.random((n_single, 2, 5), dtype=np.float32))
    runners = [_parallel_env_runner(e, a) for e, a in zip(envs, actions, strict=True)]
    rates = _interleaved_rates(runners, repeats)
    for e in envs:
        e.close()
    return rates[0], (rates[1] if adversary is not None else None)


def _env_meta(repeats: int, steps: int) -> dict[str, Any]:
    """The ``meta`` entry of :func:`bench_env`: settings, versions and the machine."""
    usable_cpus: int | None
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable_cpus = os.cpu_count()
    return {
        "unit": "env steps per second (median of repeats, resets included)",
        "repeats": repeats,
        "steps_per_repeat": steps,
        "episode_steps": EPISODE_STEPS,
        "batched_validate": False,
        "mpe2_interleaved": True,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pettingzoo": _version("pettingzoo"),
        "mpe2": _version("mpe2"),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "machine": platform.machine(),
    }
