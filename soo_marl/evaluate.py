"""``soo-marl evaluate``: deterministic evaluation, blue-centric probes and exports.

For each run: every trained seed plays the same start states (fixed evaluation seeds)
with its own red and blue; then its red plays with scripted blues (``to_goal``,
``to_fake``, ``still``) and with the blues of the other evaluated runs (cross-play, matched
by seed index). Trajectories go to ``eval/trajectories.npz``; all metrics are computed
from those arrays by the pure functions of :mod:`soo_marl.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soo_marl import metrics, rundir, soo
from soo_marl.agents.buffer import StackedReplayBuffer
from soo_marl.agents.maddpg import MADDPG
from soo_marl.envs import core
from soo_marl.probes import model_red_slot_norms, red_decodability_per_seed
from soo_marl.probes import settings as probe_settings
from soo_marl.rollout import (
    DEFAULT_EVAL_EPISODES,
    DEFAULT_EVAL_SEEDS,
    SCRIPTED_BLUES,
    counterfactual_donors,
    donor_ceiling,
    probe_hidden_variable,
    rollout,
    shuffle_derangement,
    start_uniforms,
)
from soo_marl.rundir import LoadedModel, load_model
from soo_marl.seed_values import write_seed_values

#: |pre-tanh| above which an actor output counts as saturated.
SATURATION_THRESHOLD = 5.0
#: An actor is "saturated" when more than this fraction of its outputs are.
SATURATED_ACTOR_FRACTION = 0.9
#: With fewer trained seeds than this, a percentile-bootstrap CI is too narrow to trust.
FEW_SEEDS = 5
#: Rows per seed whose SOO activations are computed at once (bounds evaluation memory).
SOO_CHUNK = 16_384
#: Seed of the fictitious-red draws of the SOO value.
SOO_DRAW_SEED = 20241216
GUARDS = {"guard": metrics.MIN_DISPLACEMENT, "noguard": 0.0}
TRAJECTORY_KEYS = (
    "red_pos", "blue_pos", "landmarks", "goal_index", "trapped", "red_visible",
    "actions_red", "actions_blue", "rewards", "soo_value", "soo_value_flag_kept",
)  # fmt: skip
#: SOO-value variants of metrics.json: (key, trajectory array, rows).
SOO_VARIANTS = (
    ("soo_value", "soo_value", "all"),
    ("soo_value_pre_trap", "soo_value", "pre-trap"),
    ("soo_value_post_trap", "soo_value", "post-trap"),
    ("soo_value_flag_kept", "soo_value_flag_kept", "all"),
)  # (flag kept on pre-trap steps is the pre-trap value: the flag is 0 there in both)


@dataclass
class Evaluated:
    """One run's evaluation in memory."""

    label: str
    loaded: LoadedModel
    traj: dict[str, np.ndarray]
    records: dict[str, metrics.DeceptiveRecords]
    #: The start draws every rollout of this run uses.
    uniforms: np.ndarray
    #: Per-seed behaviour of its red with each scripted blue (:func:`behaviour_metrics`).
    probes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def soo_draw_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator of fictitious red offsets per trained seed, from that seed alone
    (the same draws on any device)."""
    gens = []
    for seed in seeds:
        state = np.random.SeedSequence([SOO_DRAW_SEED, int(seed)]).generate_state(1)[0]
        gens.append(torch.Generator().manual_seed(int(state)))
    return gens


@torch.no_grad()
def blue_soo_values(
    model: MADDPG,
    obs_blue: np.ndarray,
    radius: float,
    keep_trap_flag: bool = False,
    history: int = core.EnvConfig.history,
) -> np.ndarray:
    """Blue's SOO value per step, (S, N, T+1); NaN where red is in sight (docs/spec.md §4.8).

    The other observation's fictitious red is drawn within ``radius``; its trap flag is
    zeroed, or kept with ``keep_trap_flag``. The draws depend only on each trained seed,
    so both variants see the same fictitious reds. ``obs_blue`` (S, N, T+1, w) holds
    single frames; with ``history`` > 1 blue's stacked observations are rebuilt from them
    (``core.stack_episode``) and the SOO functions work frame by frame (§1.6, §3.3).
    """
    obs_blue = core.stack_episode(obs_blue, history, axis=2)
    s, n, t1, d = obs_blue.shape
    obs = torch.from_numpy(obs_blue.reshape(s, n * t1, d)).to(model.device)
    mask = soo.self_mask(obs, history=history)
    gens = soo_draw_generators(model.seeds)
    other = soo.other_observation(obs, gens, radius, keep_trap_flag, history)
    value = torch.empty(s, n * t1, device=model.device)
    for i in range(0, n * t1, SOO_CHUNK):  # in chunks: activations of 100k+ rows are GBs
        rows = slice(i, i + SOO_CHUNK)
        h_self = soo.blue_activations(model, obs[:, rows])
        h_other = soo.blue_activations(model, other[:, rows])
        value[:, rows] = soo.soo_value(h_self, h_other)
    value = torch.where(mask, value, torch.full_like(value, float("nan")))
    return value.view(s, n, t1).cpu().numpy()


@torch.no_grad()
def saturation(model: MADDPG, joint_obs: torch.Tensor) -> dict[str, np.ndarray]:
    """Per seed and agent: fraction of |pre-tanh| > 5 outputs, and saturated-actor flags."""
    model.actor.eval()
    pre, _ = model.actor(model.actor_input(joint_obs))
    mask = model.act_mask.view(model.n_agents, 1, -1).repeat(model.n_seeds, 1, 1)
    frac = ((pre.abs() > SATURATION_THRESHOLD) * mask).sum((1, 2)) / (
        pre.shape[1] * mask.sum((1, 2))
    )
    frac = frac.view(model.n_seeds, model.n_agents).cpu().numpy()
    return {"fraction": frac, "saturated": frac > SATURATED_ACTOR_FRACTION}


def replay_saturation(model: MADDPG, run_dir: Path, batch: int = 1024) -> dict | None:
    """Saturation on a replay batch of each seed's buffer (None without a checkpoint)."""
    path = Path(run_dir) / rundir.CHECKPOINT
    if not path.exists():
        return None
    saved = rundir.load_checkpoint(path, mmap=True).get("buffer")
    if saved is None or "stride" in saved:  # pruned, or history > 1 (frames to stack)
        return None
    obs = StackedReplayBuffer.saved_field(saved, "obs")
    if obs.shape[1] == 0:
        return None
    rng = np.random.default_rng(0)
    idx = torch.from_numpy(rng.integers(0, obs.shape[1], (obs.shape[0], batch)))
    sample = obs[torch.arange(obs.shape[0])[:, None], idx].to(model.device)
    return _saturation_entry(saturation(model, sample))


def play(
    loaded: LoadedModel,
    uniforms: np.ndarray,
    blue: MADDPG | str | None = None,
    blind_blue: bool = False,
    shuffle_red: bool = False,
    counterfactual_red: bool = False,
) -> dict[str, np.ndarray]:
    """Rollout of ``loaded``'s red with its own blue (default), another blue or a script;
    ``blind_blue`` blinds blue to red, ``shuffle_red`` shows blue another episode's red,
    ``counterfactual_red`` the red of an episode that differs in red's hidden variable
    (docs/spec.md §4.4)."""
    return rollout(
        loaded.config.env,
        uniforms,
        loaded.model,
        loaded.model if blue is None else blue,
        device=loaded.model.device,
        blind_blue=blind_blue,
        shuffle_red=shuffle_red,
        counterfactual_red=counterfactual_red,
    )


def _records(traj: dict[str, np.ndarray]) -> dict[str, metrics.DeceptiveRecords]:
    return {
        g: metrics.deceptive_records(
            traj["blue_pos"], traj["landmarks"], traj["goal_index"], traj["red_visible"], v
        )
        for g, v in GUARDS.items()
    }


def _summary(values: np.ndarray) -> dict[str, Any]:
    return metrics.summarize(np.asarray(values, dtype=float))


def base_metrics(
    cfg: core.EnvConfig,
    traj: dict[str, np.ndarray],
    records: dict[str, metrics.DeceptiveRecords],
) -> dict:
    """Per-seed arrays of the standard metrics of one trajectory set."""
    ret = metrics.mean_episode_return(traj["rewards"])
    out: dict[str, float | np.ndarray] = {
        "trap_rate": metrics.trap_rate(traj["trapped"]),
        "red_goal_rate": metrics.goal_reach_rate(
            cfg, traj["red_pos"], traj["landmarks"], traj["goal_index"]
        ),
        "blue_goal_rate": metrics.goal_reach_rate(
            cfg, traj["blue_pos"], traj["landmarks"], traj["goal_index"]
        ),
        "blue_at_fake": metrics.landmark_visit_rate(
            cfg, traj["blue_pos"], traj["landmarks"], traj["goal_index"]
        ),
        "return_red": ret[..., 0],
        "return_blue": ret[..., 1],
        "trapped_steps": metrics.trapped_steps(traj["trapped"]),
    }
    for g, rec in records.items():
        out[f"headline_{g}"] = metrics.headline_count(*rec, keep_axis=0)
    for key, array, rows in SOO_VARIANTS:
        if array in traj:
            values = metrics.soo_rows(traj[array], traj["trapped"], rows)
            out[key] = metrics.mean_soo_value(values, keep_axis=0)
    if "soo_value" in traj:
        out["post_trap_fraction"] = metrics.post_trap_fraction(
            traj["soo_value"], traj["trapped"], keep_axis=0
        )
    return out


def behaviour_metrics(cfg: core.EnvConfig, traj: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-seed trap, blue-at-fake, blue and red goal-reach rates of a probe or cross-play
    (red's goal reach under the blind probe tells whether an honest blue guides red by
    seeing it, docs/spec.md §4.4)."""
    pos = (traj["landmarks"], traj["goal_index"])
    return {
        "trap_rate": metrics.trap_rate(traj["trapped"]),
        "blue_at_fake": metrics.landmark_visit_rate(cfg, traj["blue_pos"], *pos),
        "blue_goal_rate": metrics.goal_reach_rate(cfg, traj["blue_pos"], *pos),
        "red_goal_rate": metrics.goal_reach_rate(cfg, traj["red_pos"], *pos),
    }


def evaluate_runs(
    run_dirs: Sequence[str | Path],
    episodes: int = DEFAULT_EVAL_EPISODES,
    eval_seeds: Sequence[int] = DEFAULT_EVAL_SEEDS,
    device: str = "cpu",
    progress: bool = True,
    cross_with: Sequence[str | Path] | None = None,
    allow_unfinished: bool = False,
) -> dict[str, dict]:
    """Evaluate every run, write its ``eval/`` files, return metrics by run label.

    An unfinished run (no final model) is refused before anything is evaluated, unless
    ``allow_unfinished``: its checkpoint is then evaluated and its ``metrics.json`` meta
    records ``unfinished`` with the episodes it had (``episodes_trained``) and was started
    for (``episodes_planned``).

    Every run plays the same start states with its own agents, then its red plays with the
    scripted blues, with its own blue blinded (red slots forced to 0), shown another
    episode's red (shuffled red) and, where red has a hidden variable, shown the red of an
    episode that differs in it (counterfactual red), and each run's blue
    plays with the reds of the other runs of the same physics (cross-play, matched by seed
    index) — of all of them, or only of the runs in ``cross_with`` (which must be among
    ``run_dirs``).
    """
    from tqdm.auto import tqdm

    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    if not eval_seeds:
        raise ValueError("at least one evaluation seed is required")
    unfinished = [rundir.require_finished(d, allow_unfinished) for d in run_dirs]
    evaluated: list[Evaluated] = []
    for d, stopped in zip(
        tqdm(run_dirs, desc="evaluate", disable=not progress), unfinished, strict=True
    ):
        evaluated.append(_load_and_play(d, stopped, device, eval_seeds, episodes))
    labels = rundir.unique_labels([e.label for e in evaluated], run_dirs)
    for e, label in zip(evaluated, labels, strict=True):
        e.label = label
    partners = _cross_partners(evaluated, cross_with)
    # the paper-style truncation: every condition cut to the same number of visible records
    trunc_n = {
        g: metrics.common_truncation(*(e.records[g] for e in evaluated), keep_axis=0)
        for g in GUARDS
    }
    results = {}
    for e in tqdm(evaluated, desc="probes", disable=not progress):
        results[e.label] = _evaluate_one(e, partners, trunc_n, eval_seeds, episodes)
    return results


def _load_and_play(
    run_dir: str | Path,
    stopped: rundir.Unfinished | None,
    device: str,
    eval_seeds: Sequence[int],
    episodes: int,
) -> Evaluated:
    """Load one run and play its own rollout (with SOO values) and its scripted-blue probes."""
    lm = load_model(run_dir, device)
    if stopped is not None:
        lm.meta.update(unfinished=True, episodes_planned=stopped.episodes_planned)
    uniforms = start_uniforms(eval_seeds, episodes, core.reset_draws(lm.config.env))
    traj = play(lm, uniforms)
    obs_blue = traj.pop("obs_blue")
    radius = lm.config.env.blue_sight  # SOO's fictitious red: in blue's sight
    k = lm.config.env.history
    traj["soo_value"] = blue_soo_values(lm.model, obs_blue, radius, history=k)
    traj["soo_value_flag_kept"] = blue_soo_values(lm.model, obs_blue, radius, True, k)
    e = Evaluated(lm.label, lm, traj, _records(traj), uniforms)
    cfg = lm.config.env
    e.probes = {p: behaviour_metrics(cfg, play(lm, uniforms, p)) for p in SCRIPTED_BLUES}
    return e


def _cross_partners(
    evaluated: list[Evaluated], cross_with: Sequence[str | Path] | None
) -> list[Evaluated]:
    """The runs whose reds each evaluated blue plays with: all, or those of ``cross_with``."""
    if cross_with is None:
        return evaluated
    wanted = {Path(p).resolve() for p in cross_with}
    partners = [e for e in evaluated if e.loaded.run_dir.resolve() in wanted]
    if len(partners) != len(wanted):
        raise ValueError("--cross-with names a run that is not among the evaluated runs")
    return partners


def _summaries(values: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {k: _summary(v) for k, v in values.items()}


def _evaluate_one(
    e: Evaluated,
    partners: list[Evaluated],
    trunc_n: dict[str, int],
    eval_seeds: Sequence[int],
    episodes: int,
) -> dict:
    """One run's metrics.json (measures, probes, cross-play), written with its eval/ arrays."""
    cfg = e.loaded.config.env
    model = e.loaded.model
    per_seed = base_metrics(cfg, e.traj, e.records)
    obs = torch.from_numpy(_joint_obs_sample(cfg, e.traj)).to(model.device)
    sat = saturation(model, obs)
    to_goal = e.probes["to_goal"]["trap_rate"]
    probes = {
        p: _summaries({k: v for k, v in m.items() if k != "blue_goal_rate"})
        for p, m in e.probes.items()
    }
    luring = per_seed["trap_rate"] - to_goal
    decodability = red_decodability_per_seed(model, cfg, e.traj)
    red_norm, other_norm = model_red_slot_norms(model, cfg)
    cross = _cross_play(e, partners)
    grids = _write_eval_arrays(e, trunc_n, eval_seeds, episodes)
    run_dir = e.loaded.run_dir
    result = {
        **_run_header(e, eval_seeds, episodes),
        "metrics": _summaries(per_seed),
        "saturation": _saturation_entry(sat),
        "saturation_replay": replay_saturation(model, run_dir),
        "probes": probes,
        "luring_delta_trap": _summary(luring),
        "deceivability": probes["to_fake"]["trap_rate"],
        "blue_at_fake": _summary(per_seed["blue_at_fake"]),
        **_probe_entries(e, luring, to_goal),
        **_summaries(decodability),
        "red_slot_norm": _summary(red_norm),
        "other_slot_norm": _summary(other_norm),
        "cross_play": cross,
        "truncation_records": trunc_n,
        "grids_mean": {k: v.mean(axis=0).round(6).tolist() for k, v in grids.items()},
    }
    rundir.write_metrics(run_dir, result)
    write_seed_values(run_dir)
    return result


def _probe_entries(e: Evaluated, luring: np.ndarray, to_goal: np.ndarray) -> dict[str, Any]:
    """The metrics.json entries of the blind, shuffled-red and counterfactual-red probes
    (docs/spec.md §4.4, §4.13): each probe's summaries, its closed-loop share and, for the
    donor probes, the hidden variable their ceilings count and each one's ceiling. Without
    a hidden variable the counterfactual probe is not played and its entries, like the
    ceilings, are None."""
    cfg = e.loaded.config.env
    blind = behaviour_metrics(cfg, play(e.loaded, e.uniforms, blind_blue=True))
    blind["luring_delta_trap"] = blind["trap_rate"] - to_goal
    shuffled = _donor_probe(e, to_goal, shuffle_red=True)
    out: dict[str, Any] = {
        "blind": _summaries(blind),
        "closed_loop_share": _summary(luring - blind["luring_delta_trap"]),
        "shuffled": _summaries(shuffled),
        "closed_loop_share_shuffled": _summary(luring - shuffled["luring_delta_trap"]),
    }
    donors = counterfactual_donors(cfg, e.uniforms)
    shuffled_donors = shuffle_derangement(e.uniforms.shape[0])
    counterfactual = None
    if donors is not None:
        counterfactual = _donor_probe(e, to_goal, counterfactual_red=True)
    out["hidden_variable"] = probe_hidden_variable(cfg)
    out["shuffled_ceiling"] = donor_ceiling(cfg, e.uniforms, shuffled_donors)
    out["counterfactual"] = None if counterfactual is None else _summaries(counterfactual)
    out["closed_loop_share_counterfactual"] = (
        None if counterfactual is None else _summary(luring - counterfactual["luring_delta_trap"])
    )
    out["counterfactual_ceiling"] = donor_ceiling(cfg, e.uniforms, donors)
    return out


def _donor_probe(
    e: Evaluated, to_goal: np.ndarray, shuffle_red: bool = False, counterfactual_red: bool = False
) -> dict[str, np.ndarray]:
    """Per-seed behaviour of the run's blue shown a donor's red (shuffled or
    counterfactual), with its luring Δtrap and trapped steps."""
    cfg = e.loaded.config.env
    played = play(
        e.loaded, e.uniforms, shuffle_red=shuffle_red, counterfactual_red=counterfactual_red
    )
    probe = behaviour_metrics(cfg, played)
    probe["luring_delta_trap"] = probe["trap_rate"] - to_goal
    probe["trapped_steps"] = metrics.trapped_steps(played["trapped"])
    return probe


def _cross_play(e: Evaluated, partners: list[Evaluated]) -> dict[str, dict[str, dict]]:
    """Summaries of this run's blue with each comparable partner's red, by partner label."""
    cfg = e.loaded.config.env
    model = e.loaded.model
    cross = {}
    for other in partners:
        if other is e or other.loaded.model.n_seeds != model.n_seeds:
            continue
        if other.loaded.config.env != cfg.with_(baseline=other.loaded.config.env.baseline):
            continue  # different physics (e.g. sight radius): not comparable
        # this blue with the other run's red
        played = behaviour_metrics(cfg, play(other.loaded, e.uniforms, blue=model))
        played["luring_delta_trap"] = played["trap_rate"] - other.probes["to_goal"]["trap_rate"]
        cross[other.label] = _summaries(played)
    return cross


def _write_eval_arrays(
    e: Evaluated, trunc_n: dict[str, int], eval_seeds: Sequence[int], episodes: int
) -> dict[str, np.ndarray]:
    """Write the run's trajectories.npz and grids.npz; return its per-seed grids."""
    grids = {}
    for g, rec in e.records.items():
        grids[f"freq_{g}"] = metrics.threshold_frequency(*rec, keep_axis=0)
        grids[f"trunc_{g}"] = metrics.truncated_grid(*rec, trunc_n[g], keep_axis=0)
    run_dir = e.loaded.run_dir
    save_trajectories(run_dir, e.traj, e.loaded.model.seeds, eval_seeds, episodes)
    rundir.write_npz(
        rundir.eval_dir(run_dir) / rundir.GRIDS,
        **grids,
        truncation=np.array(list(trunc_n.values())),
    )
    return grids


def _run_header(e: Evaluated, eval_seeds: Sequence[int], episodes: int) -> dict[str, Any]:
    """The first entries of metrics.json: which run, its meta, seeds and evaluation size."""
    cfg = e.loaded.config.env
    return {
        "run": str(e.loaded.run_dir),
        "label": e.label,
        "meta": {
            **e.loaded.meta,
            "sight_radius": cfg.sight_radius,
            "episodes_trained": e.loaded.meta.get("episode"),
        },
        "seeds": e.loaded.model.seeds,
        "eval_seeds": list(map(int, eval_seeds)),
        "episodes_per_eval_seed": episodes,
        "soo_radius": cfg.blue_sight,
        "decodability_probe": probe_settings(),
    }


def _saturation_entry(sat: dict[str, np.ndarray]) -> dict[str, Any]:
    """A :func:`saturation` result as metrics.json records it."""
    return {
        "fraction_of_outputs": sat["fraction"].tolist(),
        "saturated_actors": int(sat["saturated"].sum()),
        "actors": int(sat["saturated"].size),
    }


def _joint_obs_sample(cfg: core.EnvConfig, traj: dict[str, np.ndarray]) -> np.ndarray:
    """Joint observations (S, N, 16) at every 5th state of the evaluation episodes (the
    velocities of the §1.6 velocity slots, when observed, derived from the positions;
    with ``history`` > 1 each agent's stacked frames, :func:`core.stack_episode`)."""
    full = np.stack([traj["red_pos"], traj["blue_pos"]], axis=-2)
    if cfg.history > 1:
        return _stacked_joint_obs_sample(cfg, traj, full)
    pos = full[:, :, ::5]
    n_states = pos.shape[2]
    vel = np.zeros((1, 2, 2))
    if cfg.red_sees_velocity or cfg.blue_sees_velocity:
        vel = core.velocities_from_positions(cfg, full, axis=2)[:, :, ::5].reshape(-1, 2, 2)
    state = core.State(
        pos=pos.reshape(-1, 2, 2),
        vel=vel,
        landmarks=np.repeat(traj["landmarks"][:, :, None], n_states, axis=2).reshape(-1, 2, 2),
        goal_index=np.repeat(traj["goal_index"][:, :, None], n_states, axis=2).reshape(-1),
        trapped=traj["trapped"][:, :, ::5].reshape(-1),
        t=0,
    )
    o_red, o_blue = core.observe(cfg, state)
    s = traj["red_pos"].shape[0]
    return np.concatenate([o_red, o_blue], axis=1).reshape(s, -1, o_red.shape[1] + o_blue.shape[1])


def _stacked_joint_obs_sample(
    cfg: core.EnvConfig, traj: dict[str, np.ndarray], full: np.ndarray
) -> np.ndarray:
    """:func:`_joint_obs_sample` with ``history`` > 1: every state's frames, stacked per
    agent along the episode, then every 5th state."""
    s, n, t1 = full.shape[:3]
    vel = np.zeros((1, 2, 2))
    if cfg.red_sees_velocity or cfg.blue_sees_velocity:
        vel = core.velocities_from_positions(cfg, full, axis=2).reshape(-1, 2, 2)
    state = core.State(
        pos=full.reshape(-1, 2, 2),
        vel=vel,
        landmarks=np.repeat(traj["landmarks"][:, :, None], t1, axis=2).reshape(-1, 2, 2),
        goal_index=np.repeat(traj["goal_index"][:, :, None], t1, axis=2).reshape(-1),
        trapped=np.asarray(traj["trapped"]).reshape(-1),
        t=0,
    )
    frames = core.observe(cfg, state)
    red, blue = (core.stack_episode(o.reshape(s, n, t1, -1), cfg.history, 2) for o in frames)
    joint = np.concatenate([red, blue], axis=-1)[:, :, ::5]
    return joint.reshape(s, -1, joint.shape[-1])


def save_trajectories(
    run_dir: Path,
    traj: dict[str, np.ndarray],
    seeds: Sequence[int],
    eval_seeds: Sequence[int],
    episodes: int,
) -> Path:
    """Write a run's ``eval/trajectories.npz`` (float32 positions/actions; docs/spec.md §4.2)."""
    arrays = {}
    for k in TRAJECTORY_KEYS:
        v = traj[k]
        arrays[k] = v.astype(np.float32) if v.dtype == np.float64 else v
    arrays["goal_index"] = traj["goal_index"].astype(np.int8)
    return rundir.write_npz(
        rundir.eval_dir(run_dir) / rundir.TRAJECTORIES,
        **arrays,
        seeds=np.asarray(seeds),
        eval_seeds=np.asarray(eval_seeds),
        episodes_per_eval_seed=np.asarray(episodes),
    )


def format_summary(results: dict[str, dict]) -> str:
    """A compact text table of the main evaluation numbers (mean [95% CI] over seeds)."""

    def f(s: dict) -> str:
        return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"

    rows = []
    for label, r in results.items():
        m = r["metrics"]
        meta = r.get("meta", {})
        stopped = (
            f"; unfinished: {meta.get('episodes_trained')} of {meta.get('episodes_planned')} "
            "episodes per seed"
            if meta.get("unfinished")
            else ""
        )
        rows.append(f"{label}  ({len(r['seeds'])} seeds{stopped})")
        if len(r["seeds"]) < FEW_SEEDS:
            rows.append(f"  (fewer than {FEW_SEEDS} trained seeds: the bootstrap CIs understate "
                        "the uncertainty)")  # fmt: skip
        for k in ("trap_rate", "blue_goal_rate", "red_goal_rate", "return_blue", "return_red"):
            rows.append(f"  {k:<22}{f(m[k])}")
        rows.append(f"  {'luring Δtrap':<22}{f(r['luring_delta_trap'])}")
        rows.append(f"  {'deceivability':<22}{f(r['deceivability'])}")
        rows.append(f"  {'blue at fake':<22}{f(r['blue_at_fake'])}")
        rows.append(f"  {'trapped steps':<22}{f(m['trapped_steps'])}")
        rows.append(f"  {'blind luring Δtrap':<22}{f(r['blind']['luring_delta_trap'])}")
        rows.append(f"  {'shuffled luring Δtrap':<22}{f(r['shuffled']['luring_delta_trap'])}")
        if r.get("counterfactual"):
            cf = r["counterfactual"]["luring_delta_trap"]
            rows.append(f"  {'counterfactual luring':<22}{f(cf)}")
            ceilings = f"{r['shuffled_ceiling']:.3f} / {r['counterfactual_ceiling']:.3f}"
            rows.append(f"  {'ceiling shuf. / cf.':<22}{ceilings}")
        rows.append(f"  {'red decodability D':<22}{f(r['red_decodability'])}")
        rows.append(f"  {'red-slot weight norm':<22}{f(r['red_slot_norm'])}")
        rows.append(f"  {'headline (guard)':<22}{f(m['headline_guard'])}")
        rows.append(f"  {'headline (no guard)':<22}{f(m['headline_noguard'])}")
        rows.append(f"  {'SOO value':<22}{f(m['soo_value'])}")
        for key, name in (("saturation", "eval obs"), ("saturation_replay", "replay batch")):
            sat = r.get(key)
            if sat:
                rows.append(
                    f"  {'saturated (' + name + ')':<28}{sat['saturated_actors']}/{sat['actors']}"
                )
        for other, c in r["cross_play"].items():
            rows.append(f"  trap with {other} red: {f(c['trap_rate'])}")
    return "\n".join(rows)
