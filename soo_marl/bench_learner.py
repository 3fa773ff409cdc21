"""Benchmark of one MADDPG update round, stacked over seeds vs a per-seed loop
(``soo-marl bench learner``), and the peak memory of a learner with a full replay buffer
(``soo-marl bench memory``)."""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG, MADDPGConfig
from soo_marl.allocator import peak_rss_mb, reset_peak_rss, tune_allocator
from soo_marl.envs import core
from soo_marl.provenance import cpu_model
from soo_marl.rundir import CHECKPOINT, atomic_torch_save

#: The learner's agents (red, blue): observation and action widths.
OBS_DIMS = (core.OBS_DIM_RED, core.OBS_DIM_BLUE)
ACT_DIMS = (core.ACTION_DIM, core.ACTION_DIM)

#: Operators counted as matrix products in the profile share.
GEMM_OPS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm", "aten::matmul")


def round_products(
    cfg: MADDPGConfig, obs_dims: Sequence[int], act_dims: Sequence[int]
) -> list[tuple[str, int, int, int]]:
    """The matrix products of one update round for one member (one agent of one seed), as
    (what, rows, inner, cols): a product of a (rows × inner) by an (inner × cols) matrix.

    Counted from the layer shapes the stacked networks really compute (actor inputs
    zero-padded to the widest observation, outputs to the widest action), for a batch of
    ``cfg.batch_size``. Per layer a forward pass is one product; a backward pass one for
    the weight gradient where the weights are trained and one for the input gradient
    where something below needs it (docs/performance.md, "FLOPs per seed-update").
    """
    b = cfg.batch_size
    actor = [max(obs_dims), *cfg.hidden, max(act_dims)]
    critic = [sum(obs_dims) + sum(act_dims), *cfg.hidden, 1]

    def fwd(name: str, w: list[int]) -> list[tuple[str, int, int, int]]:
        return [(f"{name} forward", b, i, o) for i, o in zip(w[:-1], w[1:], strict=True)]

    def wgrad(name: str, w: list[int]) -> list[tuple[str, int, int, int]]:
        return [(f"{name} weight gradient", i, b, o) for i, o in zip(w[:-1], w[1:], strict=True)]

    def igrad(name: str, w: list[int], first: bool) -> list[tuple[str, int, int, int]]:
        layers = list(zip(w[:-1], w[1:], strict=True))[0 if first else 1 :]
        return [(f"{name} input gradient", b, o, i) for i, o in layers]

    return [
        *fwd("target actor", actor),
        *fwd("target critic", critic),
        # critic step: TD loss, gradients for the critic's weights
        *fwd("critic", critic),
        *wgrad("critic", critic),
        *igrad("critic", critic, first=False),
        # actor step: −Q through the critic down to the actions, then the actor's weights
        *fwd("actor", actor),
        *fwd("critic", critic),
        *igrad("critic", critic, first=True),
        *wgrad("actor", actor),
        *igrad("actor", actor, first=False),
    ]


def flops_per_seed_update(
    cfg: MADDPGConfig | None = None,
    obs_dims: Sequence[int] = OBS_DIMS,
    act_dims: Sequence[int] = ACT_DIMS,
) -> int:
    """Floating-point operations of the matrix products of one update round of one seed
    (2 per multiply-add, summed over the seed's agents)."""
    cfg = cfg or MADDPGConfig()
    per_member = sum(2 * r * k * c for _, r, k, c in round_products(cfg, obs_dims, act_dims))
    return per_member * len(obs_dims)


def bmm_peak(
    members: int,
    device: torch.device,
    cfg: MADDPGConfig | None = None,
    repeats: int = 5,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Float32 batched-product speed (GFLOP/s) at the learner's own shapes, for a stack of
    ``members``: ``peak`` is the fastest of the round's distinct product shapes (in
    practice the hidden-by-hidden forward product), ``round_products`` the speed of all
    the round's products run back to back, each as one ``bmm``."""
    cfg = cfg or MADDPGConfig()
    prods = round_products(cfg, OBS_DIMS, ACT_DIMS)
    g = torch.Generator().manual_seed(0)
    shapes = sorted({(r, k, c) for _, r, k, c in prods})
    mats = {
        s: (
            torch.randn(members, s[0], s[1], generator=g).to(device),
            torch.randn(members, s[1], s[2], generator=g).to(device),
        )
        for s in shapes
    }
    out = {s: torch.empty(members, s[0], s[2], device=device) for s in shapes}
    speed: dict[tuple[int, int, int], float] = {}
    for s in shapes:
        a, b = mats[s]
        reps = max(1, int(2e8 // (2 * members * s[0] * s[1] * s[2])))
        t = _timed(functools.partial(torch.bmm, a, b, out=out[s]), reps, repeats, sync)
        speed[s] = 2 * members * s[0] * s[1] * s[2] / t / 1e9

    def all_products() -> None:
        for _, r, k, c in prods:
            a, b = mats[(r, k, c)]
            torch.bmm(a, b, out=out[(r, k, c)])

    t_all = _timed(all_products, 5, repeats, sync)
    flops = sum(2 * members * r * k * c for _, r, k, c in prods)
    best = max(speed, key=speed.__getitem__)
    return {
        "peak": speed[best],
        "peak_shape": [members, *best],
        "round_products": flops / t_all / 1e9,
    }


#: The matrix products :func:`gemm_limit` times, as (members, rows, inner, cols): large
#: square products, and the learner's hidden-layer products (batch 1024, width 64; forward
#: and weight gradient) stacked for 8, 24 and 32 seeds.
LIMIT_SHAPES = (
    (1, 256, 256, 256),
    (1, 512, 512, 512),
    (1, 1024, 1024, 1024),
    (16, 1024, 64, 64),
    (48, 1024, 64, 64),
    (64, 1024, 64, 64),
    (48, 64, 1024, 64),
)


@functools.cache
def gemm_limit(threads: int, repeats: int = 3) -> dict[str, Any]:
    """The machine's best float32 matrix-product rate (GFLOP/s) at ``threads`` torch
    threads on CPU: the fastest of :data:`LIMIT_SHAPES` (median of ``repeats`` blocks of
    about 0.05 s each). Computed once per process and thread count (about a second);
    ``shape`` names the fastest."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        best = (0.0, "")
        for m, r, k, c in LIMIT_SHAPES:
            a, b = torch.randn(m, r, k, generator=g), torch.randn(m, k, c, generator=g)
            o = torch.empty(m, r, c)
            flop = 2 * m * r * k * c
            reps = max(1, int(3e9 // flop))
            t = _timed(functools.partial(torch.bmm, a, b, out=o), reps, repeats, lambda: None)
            best = max(best, (flop / t / 1e9, f"{m}x({r}x{k} @ {k}x{c})"))
    finally:
        torch.set_num_threads(old)
    return {"gflops": best[0], "shape": best[1], "threads": threads}


def filled_buffer(
    seeds: int, device: torch.device, capacity: int = 20_000, chunk: int = 1_000
) -> StackedReplayBuffer:
    """A ``seeds``-seed replay buffer of the learner's widths filled to ``capacity``
    transitions per seed with random rows (``chunk`` at a time, generator seed 0): what the
    benchmarks sample from."""
    obs, act, n = sum(OBS_DIMS), sum(ACT_DIMS), len(OBS_DIMS)
    buf = StackedReplayBuffer(seeds, capacity, obs, act, n, device)
    g = torch.Generator().manual_seed(0)
    for start in range(0, capacity, chunk):
        rows = min(chunk, capacity - start)
        buf.add(
            torch.randn(seeds, rows, obs, generator=g).to(device),
            (torch.rand(seeds, rows, act, generator=g) * 2 - 1).to(device),
            torch.randn(seeds, rows, n, generator=g).to(device),
            torch.randn(seeds, rows, obs, generator=g).to(device),
        )
    return buf


def _timed(fn: Callable[[], object], rounds: int, repeats: int, sync: Callable[[], None]) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timed blocks of ``rounds`` calls."""
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(rounds):
            fn()
        sync()
        times.append((time.perf_counter() - t) / rounds)
    return float(np.median(times))


def round_fn(
    seeds: int, device: torch.device, kernels: str = MADDPGConfig.kernels
) -> Callable[[], object]:
    """One full update round (sampling included) of a fresh ``seeds``-seed learner."""
    cfg = MADDPGConfig(kernels=kernels)
    model = MADDPG(cfg, list(range(seeds)), OBS_DIMS, ACT_DIMS).to(device)
    buf = filled_buffer(seeds, device)
    rngs = [np.random.default_rng(i) for i in range(seeds)]
    return lambda: model.update(buf.sample(rngs, cfg.batch_size, True))


def gemm_share(fn: Callable[[], object], rounds: int = 10) -> dict[str, float]:
    """Share of the rounds' CPU time spent in matrix products (torch profiler, self time of
    the product operators plus what they call, over the total self time)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(rounds):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.cpu_time_total for e in events if e.key in GEMM_OPS)
    return {"gemm": gemm / total, "rest": 1.0 - gemm / total, "rounds": rounds}


def bench_learner(
    seed_counts: Sequence[int] | None = None,
    loop_seeds: int = 8,
    rounds: int = 10,
    repeats: int = 5,
    device: str = "cpu",
    profile: bool = True,
    reference: bool = True,
) -> dict:
    """Seed-updates/s of full update rounds (sampling, both agents' critic + actor,
    targets), and how close they come to the matrix-product peak.

    ``stacked[S]``: S seeds in one stacked learner (default S = 1, 8, 32; on CUDA 1, 8,
    64, 256); ``reference[S]``: the same with ``kernels="reference"`` (the slower
    numerics of earlier results), measured in the same run; ``peak[S]``: float32 ``bmm``
    GFLOP/s at the learner's shapes for 2·S members (:func:`bmm_peak`), measured in the
    same run; ``efficiency[S]`` = stacked[S] × ``flops_per_seed_update`` / peak[S];
    ``gemm_limit``: the machine's best float32 product rate at this thread count
    (:func:`gemm_limit`, CPU only) and ``efficiency_vs_gemm_limit[S]`` = stacked[S] ×
    ``flops_per_seed_update`` / that rate, the honest measure;
    ``loop_8``: ``loop_seeds`` separate one-seed learners updated one after another;
    ``ratio`` = stacked[loop_seeds] / loop; ``profile``: the share of an 8-seed round's
    time in matrix products (CPU only).
    """
    tune_allocator()
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if seed_counts is None:
        seed_counts = (1, 8, 64, 256) if dev.type == "cuda" else (1, 8, 32)
    flops = flops_per_seed_update()
    limit = gemm_limit(torch.get_num_threads(), repeats) if dev.type == "cpu" else None
    per_count = _per_seed_count(seed_counts, dev, flops, limit, rounds, repeats, sync, reference)
    stacked = per_count["stacked"]
    loop_rate = _loop_rate(loop_seeds, dev, rounds, repeats, sync)
    key = str(loop_seeds)
    if key not in stacked:
        stacked[key] = loop_seeds / _timed(round_fn(loop_seeds, dev), rounds, repeats, sync)
    result = {
        "stacked": stacked,
        "reference": per_count["reference"],
        "peak": per_count["peak"],
        "efficiency": per_count["efficiency"],
        "gemm_limit": limit,
        "efficiency_vs_gemm_limit": per_count["efficiency_vs_gemm_limit"],
        "flops_per_seed_update": flops,
        f"loop_{loop_seeds}": loop_rate,
        "ratio": stacked[key] / loop_rate,
    }
    if profile and dev.type == "cpu":
        result["profile"] = gemm_share(round_fn(loop_seeds, dev))
    result["meta"] = _learner_meta(dev, repeats, rounds)
    return result


def _per_seed_count(
    seed_counts: Sequence[int],
    dev: torch.device,
    flops: int,
    limit: dict[str, Any] | None,
    rounds: int,
    repeats: int,
    sync: Callable[[], None],
    reference: bool,
) -> dict[str, dict[str, Any]]:
    """The per-S entries of :func:`bench_learner` (rates, peaks, efficiencies), by str(S)."""
    stacked, ref, peak, efficiency, vs_limit = {}, {}, {}, {}, {}
    for s in seed_counts:
        key = str(s)
        stacked[key] = s / _timed(round_fn(s, dev), rounds, repeats, sync)
        if reference:
            ref[key] = s / _timed(round_fn(s, dev, "reference"), rounds, repeats, sync)
        peak[key] = bmm_peak(2 * s, dev, repeats=repeats, sync=sync)
        efficiency[key] = stacked[key] * flops / 1e9 / peak[key]["peak"]
        if limit is not None:
            vs_limit[key] = stacked[key] * flops / 1e9 / limit["gflops"]
    return {
        "stacked": stacked,
        "reference": ref,
        "peak": peak,
        "efficiency": efficiency,
        "efficiency_vs_gemm_limit": vs_limit,
    }


def _loop_rate(
    loop_seeds: int, dev: torch.device, rounds: int, repeats: int, sync: Callable[[], None]
) -> float:
    """Seed-updates/s of ``loop_seeds`` one-seed learners updated one after another."""
    singles = [round_fn(1, dev) for _ in range(loop_seeds)]

    def loop() -> None:
        for f in singles:
            f()

    return loop_seeds / _timed(loop, max(1, rounds // 2), repeats, sync)


def _learner_meta(dev: torch.device, repeats: int, rounds: int) -> dict[str, Any]:
    """The ``meta`` entry of :func:`bench_learner`: settings, versions and machine."""
    return {
        "device": str(dev),
        "batch_size": MADDPGConfig().batch_size,
        "repeats": repeats,
        "rounds_per_repeat": rounds,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
    }


def format_learner_report(result: dict) -> str:
    """Human-readable table of :func:`bench_learner` output."""
    lines = [
        f"MADDPG update rounds (batch {result['meta']['batch_size']}, {result['meta']['device']}, "
        f"{result['meta']['threads']} threads, {result['meta'].get('cpu')})",
        f"  matrix products per seed-update: {result['flops_per_seed_update'] / 1e9:.3f} GFLOP",
    ]
    for s, v in result["stacked"].items():
        ref = result.get("reference", {}).get(s)
        extra = f"   (reference kernels: {ref:8.1f})" if ref else ""
        lines.append(f"  stacked S={s:>3}: {v:9.1f} seed-updates/s{extra}")
        if s in result.get("efficiency", {}):
            pk = result["peak"][s]
            lines.append(
                f"        {v * result['flops_per_seed_update'] / 1e9:6.1f} GFLOP/s of a "
                f"{pk['peak']:.1f} GFLOP/s bmm peak at {tuple(pk['peak_shape'])}: "
                f"efficiency {100 * result['efficiency'][s]:.0f}%"
            )
        if s in result.get("efficiency_vs_gemm_limit", {}):
            lim = result["gemm_limit"]
            lines.append(
                f"        against the machine's float32 limit ({lim['gflops']:.1f} GFLOP/s at "
                f"{lim['shape']}): {100 * result['efficiency_vs_gemm_limit'][s]:.0f}%"
            )
    loop_key = next(k for k in result if k.startswith("loop_"))
    lines.append(f"  per-seed loop ({loop_key[5:]} seeds): {result[loop_key]:9.1f} seed-updates/s")
    lines.append(f"  ratio stacked/loop: {result['ratio']:.2f}")
    if "profile" in result:
        lines.append(
            f"  share of an 8-seed round in matrix products: {100 * result['profile']['gemm']:.0f}%"
        )
    return "\n".join(lines)


def memory_harness(
    out: str | Path,
    seeds: int = 32,
    capacity: int = MADDPGConfig.buffer_size,
    rounds: int = 10,
) -> dict[str, Any]:
    """Peak resident memory of an S-seed learner with a full replay buffer
    (docs/performance.md, "32 seeds"; ``soo-marl bench memory``).

    Builds a ``seeds``-seed MADDPG learner (default config), fills its replay buffer to
    ``capacity`` transitions per seed with random rows (:func:`filled_buffer`), runs
    ``rounds`` update rounds and writes a checkpoint holding the networks and the buffer
    to ``OUT/checkpoint.pt``. Returns ``peak_mb``: the process's peak resident memory
    (VmHWM, MB) after each phase, ``"start"`` (when the harness began: the peak is reset
    there where Linux allows, ``peak_reset``), ``"filled"``, ``"updates"`` and
    ``"checkpoint"`` (None where /proc is not available); ``buffer_mb``, the buffer's own
    size; ``seconds``, the harness's wall time; and the arguments. Run it in a fresh
    process for a figure of the learner alone.
    """
    tune_allocator()
    peak_reset = reset_peak_rss()
    t0 = time.perf_counter()
    peak: dict[str, float | None] = {"start": peak_rss_mb()}
    cfg = MADDPGConfig()
    model = MADDPG(cfg, list(range(seeds)), OBS_DIMS, ACT_DIMS)
    buf = filled_buffer(seeds, torch.device("cpu"), capacity, chunk=10_000)
    peak["filled"] = peak_rss_mb()
    rngs = [np.random.default_rng(i) for i in range(seeds)]
    for _ in range(rounds):
        model.update(buf.sample(rngs, cfg.batch_size, True))
    peak["updates"] = peak_rss_mb()
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / CHECKPOINT
    atomic_torch_save({"model": model.state_dict(), "buffer": buf.state_dict()}, path)
    peak["checkpoint"] = peak_rss_mb()
    row = StackedReplayBuffer.row_bytes(sum(OBS_DIMS), sum(ACT_DIMS), len(OBS_DIMS))
    return {
        "seeds": seeds,
        "capacity": capacity,
        "rounds": rounds,
        "checkpoint": str(path),
        "buffer_mb": seeds * capacity * row / 2**20,
        "peak_mb": peak,
        "peak_reset": peak_reset,
        "seconds": time.perf_counter() - t0,
    }


def format_memory_report(result: dict[str, Any]) -> str:
    """The phases of :func:`memory_harness` and their peaks, one line each."""
    s, cap = result["seeds"], result["capacity"]

    def mb(value: float | None) -> str:
        return "unknown" if value is None else f"{value:,.0f} MB"

    peak = result["peak_mb"]
    return "\n".join(
        [
            f"{s} seeds × {cap:,} transitions (buffer {result['buffer_mb']:,.0f} MB)",
            f"start: peak {mb(peak['start'])}",
            f"filled: peak {mb(peak['filled'])}",
            f"{result['rounds']} update rounds: peak {mb(peak['updates'])}",
            f"checkpoint: peak {mb(peak['checkpoint'])} ({result['seconds']:.0f} s)",
        ]
    )
