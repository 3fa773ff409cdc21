"""``soo-marl reproduce``: the whole pipeline (train, fine-tune, evaluate, classify, plot,
report) in one resumable command. Finished stages are skipped on a second invocation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from soo_marl import rundir
from soo_marl.agents.maddpg import MADDPGConfig
from soo_marl.allocator import peak_rss_mb, reset_peak_rss
from soo_marl.config import RunConfig, TrainConfig, load_yaml, save_yaml
from soo_marl.envs.core import EnvConfig
from soo_marl.finetune import FinetuneConfig, finetune
from soo_marl.train import train


@dataclass(frozen=True)
class Preset:
    """Scale of a reproduction."""

    seeds: int
    episodes: int
    finetune_episodes: int
    eval_episodes: int
    #: Default ``--sight-radius`` of the preset.
    sight_radius: float = 0.125
    maddpg: dict = field(default_factory=dict)
    envs_per_seed: int = 10


#: ``paper`` is SPEC scale (8 seeds, 40k + 10k episodes, the paper's sight radius 0.125).
#: ``quick`` is the laptop default, chosen by measurement (README, docs/results/quick): at
#: sight radius 0.5, where the deceptive/honest gap is largest, 4 seeds × 14k episodes with
#: the noise decay shortened in proportion (25k of 40k → 8,750 of 14k). At 8k episodes the
#: honest blue had not learned to reach the goal yet (76%) and the trap-rate CIs touched.
#: ``test`` only checks the plumbing.
PRESETS = {
    "paper": Preset(seeds=8, episodes=40_000, finetune_episodes=10_000, eval_episodes=500),
    "quick": Preset(
        seeds=4,
        episodes=14_000,
        finetune_episodes=2_000,
        eval_episodes=50,
        sight_radius=0.5,
        maddpg={"noise_decay_episodes": 8_750},
    ),
    "test": Preset(
        seeds=2,
        episodes=20,
        finetune_episodes=20,
        eval_episodes=3,
        maddpg={"batch_size": 64, "buffer_size": 5_000},
    ),
}
#: Conditions of a reproduction and their run directories under ``--out``.
RUN_DIRS = {"deceptive": "deceptive", "honest": "honest", "soo": "soo", "no-soo": "nosoo"}
#: Versions, machine and code revision when the first stage ran (``provenance()``).
PROVENANCE = "provenance.json"


def reproduce(
    out: str | Path = "runs/reproduce",
    preset: str = "quick",
    seeds: int | None = None,
    sight_radius: float | None = None,
    device: str = "auto",
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Run every stage into ``out`` (skipping finished ones); returns ``out/report.md``.

    ``seeds`` and ``sight_radius`` default to the preset's. Raises ValueError for an unknown
    preset, a non-positive seed count or radius, and when ``out`` holds a reproduction
    with other settings.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    n_seeds = p.seeds if seeds is None else seeds
    if n_seeds <= 0:
        raise ValueError("--seeds must be positive")
    sight_radius = p.sight_radius if sight_radius is None else float(sight_radius)
    if sight_radius <= 0:
        raise ValueError("--sight-radius must be positive")
    out = Path(out)
    settings = {"preset": preset, "seeds": n_seeds, "sight_radius": sight_radius}
    _check_settings(out / "reproduce.yaml", settings)
    out.mkdir(parents=True, exist_ok=True)
    runs = {c: out / d for c, d in RUN_DIRS.items()}
    save_yaml({**settings, "device": device}, out / "reproduce.yaml")
    timings: dict[str, float] = _load_timings(out)
    stages: list[tuple[str, Callable[[], None], Callable[[], bool]]] = []

    def base(baseline: str) -> TrainConfig:
        return TrainConfig(
            env=EnvConfig(baseline=baseline, sight_radius=sight_radius),
            maddpg=MADDPGConfig(**p.maddpg),
            run=RunConfig(
                seeds=tuple(range(n_seeds)),
                episodes=p.episodes,
                envs_per_seed=p.envs_per_seed,
                device=device,
                log_every=max(
                    p.envs_per_seed, p.episodes // 50 // p.envs_per_seed * p.envs_per_seed
                ),
            ),
        )

    for b in ("deceptive", "honest"):
        stages.append(
            (
                f"train {b}",
                lambda b=b: train(
                    base(b),
                    runs[b],
                    resume=(runs[b] / rundir.CHECKPOINT).exists(),
                    progress=progress,
                ),
                lambda b=b: rundir.has_model(runs[b]),
            )
        )
    for cond, weight in ((rundir.SOO, 1.0), (rundir.NO_SOO, 0.0)):
        ft = FinetuneConfig(episodes=p.finetune_episodes, soo_weight=weight)
        stages.append(
            (
                f"finetune {cond}",
                lambda cond=cond, ft=ft: finetune(
                    runs["deceptive"],
                    ft,
                    runs[cond],
                    resume=(runs[cond] / rundir.CHECKPOINT).exists(),
                    progress=progress,
                    device=device,
                ),
                lambda cond=cond: rundir.has_model(runs[cond]),
            )
        )
    stages.append(("evaluate", lambda: _evaluate(runs, p, progress), lambda: _evaluated(runs)))
    stages.append(("classify", lambda: _classify(runs, out), lambda: _classifier(out).exists()))
    stages.append(("plot", lambda: _plot(runs, out, log), lambda: (out / "figures").exists()))
    t_start = time.perf_counter()
    for i, (name, run, done) in enumerate(stages, 1):
        if done():
            log(f"[{i}/{len(stages)}] {name}: done earlier, skipped")
            continue
        remaining = estimate_remaining(timings, [s[0] for s in stages[i - 1 :]], p)
        log(
            f"[{i}/{len(stages)}] {name} … (elapsed {_fmt(time.perf_counter() - t_start)}"
            + (f", about {_fmt(remaining)} left)" if remaining else ")")
        )
        if not (out / PROVENANCE).exists():
            (out / PROVENANCE).write_text(json.dumps(provenance(device), indent=1))
        reset_peak_rss()
        t0 = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - t0
        (out / "timings.json").write_text(json.dumps(timings, indent=1))
        memory = _load_json(out / "memory.json")
        memory[name] = peak_rss_mb()
        (out / "memory.json").write_text(json.dumps(memory, indent=1))
    report = _write_report(out, runs, timings, preset, n_seeds, sight_radius, device)
    log(f"report: {report} (total {_fmt(time.perf_counter() - t_start)})")
    return report


def _check_settings(path: Path, settings: dict) -> None:
    """Refuse to mix two reproductions with different settings in one directory."""
    if not path.exists():
        return
    old = load_yaml(path)
    diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
    if diff:
        what = ", ".join(f"{k} {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(
            f"{path.parent} holds a reproduction with other settings ({what}); "
            "use another --out or the same settings"
        )


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _load_timings(out: Path) -> dict[str, float]:
    return _load_json(out / "timings.json")


#: Fine-tuning time per episode relative to baseline training (SOO forwards; measured
#: 1.6× for the quick preset on 2 CPU cores).
FINETUNE_COST = 1.6


def estimate_remaining(timings: dict[str, float], names: list[str], preset: Preset) -> float:
    """Seconds the stages ``names`` will probably take: their recorded time, else that of
    their sibling stage (the other baseline / the other fine-tuning), else, for fine-tuning,
    the baseline time scaled by episodes; evaluation and later stages count only when
    recorded (they are short). 0 when nothing is known yet."""
    train = [v for k, v in timings.items() if k.startswith("train ")]
    tune = [v for k, v in timings.items() if k.startswith("finetune ")]
    total = 0.0
    for name in names:
        if name in timings:
            total += timings[name]
        elif name.startswith("train ") and train:
            total += train[0]
        elif name.startswith("finetune ") and tune:
            total += tune[0]
        elif name.startswith("finetune ") and train:
            total += train[0] * preset.finetune_episodes / preset.episodes * FINETUNE_COST
    return total


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def _evaluated(runs: dict[str, Path]) -> bool:
    return all(rundir.read_metrics(r) is not None for r in runs.values())


def _evaluate(runs: dict[str, Path], p: Preset, progress: bool) -> None:
    from soo_marl.evaluate import evaluate_runs

    evaluate_runs(list(runs.values()), episodes=p.eval_episodes, progress=progress)


def _classifier(out: Path) -> Path:
    return out / "classifier" / "classifier_pooled.json"


def _classify(runs: dict[str, Path], out: Path) -> None:
    from soo_marl.analysis.classify import classify, write_result

    res = classify(runs["deceptive"], runs["honest"], pool_eval_seeds=True)
    write_result(res, out / "classifier")


def _plot(runs: dict[str, Path], out: Path, log: Callable[[str], None]) -> None:
    from soo_marl.analysis.plots import make_all

    make_all(list(runs.values()), out / "figures", _classifier(out), log=log)


def provenance(device: str = "auto") -> dict[str, str]:
    """Package versions, machine and code revision, for the report."""
    import os
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    import torch

    info = {"python": platform.python_version()}
    for pkg in ("soo-marl", "torch", "numpy", "pettingzoo", "gymnasium", "matplotlib"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    info["git revision"] = rev
    info["machine"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    info["processor"] = _cpu_model() or platform.processor() or "unknown"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    info["device"] = f"{device} (CUDA GPU: {gpu})"
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _write_report(
    out: Path,
    runs: dict[str, Path],
    timings: dict[str, float],
    preset: str,
    seeds: int,
    sight_radius: float,
    device: str,
) -> Path:
    from soo_marl.analysis.report import write_report

    p = PRESETS[preset]
    now = provenance(device)
    prov_path = out / PROVENANCE
    ran_with = json.loads(prov_path.read_text()) if prov_path.exists() else now
    command = (
        f"soo-marl reproduce --preset {preset} --seeds {seeds} --sight-radius {sight_radius:g} "
        f"--out {out} --device {device}"
    )
    title = f"soo-marl reproduction (preset {preset}, {seeds} seeds, sight radius {sight_radius:g})"
    scale = (
        f"Baselines {p.episodes:,} episodes, fine-tuning {p.finetune_episodes:,} episodes "
        f"(`--soo`: SOO weight 1, anchor 1; `--no-soo`: anchor only), evaluation "
        f"{p.eval_episodes} episodes × 8 evaluation seeds per trained seed."
    )
    return write_report(
        out,
        runs,
        json.loads(_classifier(out).read_text()),
        title=title,
        scale=scale,
        command=command,
        provenance=ran_with,
        revision=now["git revision"],
        timings=timings,
    )
