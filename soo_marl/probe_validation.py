"""``soo-marl probe-validate``: the validation of red-decodability probe v2 before any
verdict uses it (docs/results/probe_v2.md, whose protocol fixes every rule here).

On the parents it chooses the ridge penalty per layer, measures test–retest at four
evaluation budgets (two disjoint sets of evaluation seeds), derives the non-inferiority
margin and the episode budget from it by a power check, and then runs the checks: a
surgically blinded blue reads at its context-only floor, the positive control is not read
as blind, and a blue with red's slots doubled reads at least as high as its parent.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from soo_marl import probes
from soo_marl.envs import core
from soo_marl.rollout import DEFAULT_EVAL_SEEDS, rollout, start_uniforms
from soo_marl.rundir import LoadedModel, load_model
from soo_marl.stats import hodges_lehmann, signed_rank_p

#: Set B of the test–retest: 8 evaluation seeds disjoint from the default set A.
EVAL_SEEDS_B = (3, 1001, 2025, 4242, 5150, 6174, 7777, 9001)
#: Episode budgets per trained seed of the test–retest (spread evenly over 8 eval seeds:
#: 13, 25, 50, 100 each; the protocol's 100 is not a multiple of 8, 104 is the nearest above).
BUDGETS = (104, 200, 400, 800)
#: One-sided level of the rank tests (rule v2's 95% interval, one side).
LEVEL = 0.025
#: Simulated studies of the power check, and the seeds per simulated study.
SIMULATIONS = 10_000
POWER_SEEDS = 32
#: The budget needs a margin at most this and power at least POWER_GOAL.
MAX_MARGIN = 0.05
POWER_GOAL = 0.9
#: The margin is never below this.
MIN_MARGIN = 0.02


# ------------------------------------------------------------------ statistics


def noninferior_p(d: np.ndarray, margin: float) -> float:
    """One-sided signed-rank p-value of "the per-seed differences ``d`` (arm − reference)
    are shifted above −``margin``" (non-inferiority; small p: non-inferior)."""
    return signed_rank_p(d, -margin, 1)


def lower_p(d: np.ndarray) -> float:
    """One-sided signed-rank p-value of "``d`` is shifted below 0"."""
    return signed_rank_p(d, 0.0, -1)


def retest(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Test–retest of one measure taken twice per seed (``a``, ``b``): the SD of the
    per-seed differences, the one-way intraclass correlation ICC(1,1) and the margin
    1.96 × SD rounded up to the next 0.01, at least :data:`MIN_MARGIN`."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    sd = float(np.std(a - b, ddof=1))
    msb = 2 * np.var((a + b) / 2, ddof=1)
    msw = ((a - b) ** 2).sum() / (2 * n)
    icc = float((msb - msw) / (msb + msw)) if msb + msw > 0 else float("nan")
    margin = max(MIN_MARGIN, math.ceil(round(1.96 * sd * 100, 9)) / 100)
    return {"sd": sd, "icc": icc, "margin": margin, "mean_diff": float(np.mean(a - b))}


def power(
    diffs: np.ndarray, margin: float, n: int = POWER_SEEDS, sims: int = SIMULATIONS, seed: int = 0
) -> float:
    """Share of ``sims`` simulated studies of ``n`` seeds in which the non-inferiority test
    passes at ``margin`` when the true shift is 0: each seed's difference is one of the
    retest differences ``diffs`` drawn with replacement and given a random sign (A − B and
    B − A are equally likely: the retest's null)."""
    rng = np.random.default_rng(seed)
    d = np.asarray(diffs, np.float64)
    draws = rng.choice(d, (sims, n)) * rng.choice([-1.0, 1.0], (sims, n))
    p = stats.wilcoxon(draws + margin, alternative="greater", axis=1).pvalue
    return float(np.mean(p < LEVEL))


# ------------------------------------------------------------------ measurements


def _play(lm: LoadedModel, eval_seeds: Sequence[int], episodes: int) -> dict[str, np.ndarray]:
    """The run's own rollout (its red, its blue) on ``episodes`` per evaluation seed."""
    cfg = lm.config.env
    uniforms = start_uniforms(eval_seeds, episodes, core.reset_draws(cfg))
    traj = rollout(cfg, uniforms, lm.model, lm.model, device=lm.model.device)
    traj.pop("obs_blue")
    return traj


def _first(traj: dict[str, np.ndarray], per_seed: int, of: int) -> dict[str, np.ndarray]:
    """The first ``per_seed`` episodes of each evaluation seed's block of ``of``: equal to
    a rollout of ``per_seed`` episodes per evaluation seed (the start draws are a prefix)."""
    n = np.asarray(traj["red_pos"]).shape[1]
    keep = (np.arange(n) % of) < per_seed
    return {k: np.asarray(v)[:, keep] for k, v in traj.items()}


def _measure(lm: LoadedModel, traj: dict[str, np.ndarray], alpha: Sequence[float]) -> dict:
    d = probes.red_decodability_per_seed(lm.model, lm.config.env, traj, alpha)
    return {k: v.tolist() for k, v in d.items()}


def _pairs(d: np.ndarray, margin: float) -> dict[str, float]:
    return {
        "hodges_lehmann": hodges_lehmann(d),
        "mean": float(np.mean(d)),
        "noninferior_p": noninferior_p(d, margin),
        "lower_p": lower_p(d),
        "negative_seeds": int((d < 0).sum()),
    }


def regeneration(new: str | Path, committed: str | Path) -> dict[str, dict[str, Any]]:
    """How far the arms of a regenerated study's ``arms.json`` (``new``) are from the
    committed one's, per stage both hold and per paired measure (luring, goal reach):
    seeds compared, seeds bit-identical, the largest per-seed difference and both means."""
    old = {r["stage"]: r for r in json.loads(Path(committed).read_text())}
    out: dict[str, dict[str, Any]] = {}
    for r in json.loads(Path(new).read_text()):
        if r["stage"] not in old:
            continue
        out[r["stage"]] = {}
        for m in ("luring", "goal"):
            a = np.array(r[m]["values"], np.float64)
            b = np.array(old[r["stage"]][m]["values"], np.float64)
            if a.shape != b.shape:
                raise ValueError(f"{r['stage']}: {len(a)} seeds against {len(b)} committed")
            out[r["stage"]][m] = {
                "n": len(a),
                "identical": int((a == b).sum()),
                "max_abs_diff": float(np.abs(a - b).max()),
                "mean_new": float(a.mean()),
                "mean_committed": float(b.mean()),
            }
    return out


def choose_alpha(lm: LoadedModel, traj: dict[str, np.ndarray]) -> tuple[list[float], np.ndarray]:
    """Per layer, the grid α with the highest median D over the parents' seeds on
    ``traj`` (ties: the larger α), and the medians (layers, alphas)."""
    grid = probes.decodability_grid(lm.model, lm.config.env, traj)
    medians = np.median(probes.bounded(grid), axis=0)
    alpha = [probes.ALPHA_GRID[np.flatnonzero(row == row.max())[-1]] for row in medians]
    return alpha, medians


def budget_entry(
    lm: LoadedModel, sets: dict[str, dict[str, np.ndarray]], alpha: Sequence[float], sims: int
) -> dict[str, Any]:
    """Test–retest at one budget: D per seed on sets A and B (and v1's R²), each measure's
    :func:`retest`, the power at D's margin and whether the budget meets the protocol."""
    cfg = lm.config.env
    m = {s: _measure(lm, t, alpha) for s, t in sets.items()}
    v1 = {
        s: probes.red_decodability_v1_per_seed(lm.model, cfg, t).tolist() for s, t in sets.items()
    }
    entry: dict[str, Any] = {"A": m["A"], "B": m["B"], "v1": v1, "retest": {}}
    for key in m["A"]:
        entry["retest"][key] = retest(np.array(m["A"][key]), np.array(m["B"][key]))
    entry["retest"]["v1"] = retest(np.array(v1["A"]), np.array(v1["B"]))
    r = entry["retest"]["red_decodability"]
    diffs = np.array(m["A"]["red_decodability"]) - np.array(m["B"]["red_decodability"])
    entry["power"] = power(diffs, r["margin"], sims=sims)
    entry["meets"] = bool(r["margin"] <= MAX_MARGIN and entry["power"] >= POWER_GOAL)
    return entry


def checks(arms: dict[str, dict], margin: float) -> dict[str, dict[str, Any]]:
    """The protocol's checks on per-seed D (``arms``: parents, control, pos, blind,
    doubled): the blinded blue at its floor and below the parents, the positive control
    non-inferior to the control, red's slots doubled non-inferior to the parents."""

    def d(a: str, b: str) -> np.ndarray:
        return np.array(arms[a]["red_decodability"]) - np.array(arms[b]["red_decodability"])

    b = arms["blind"]
    gap = np.abs(np.array(b["red_decodability"]) - np.array(b["red_decodability_context"]))
    floor = {**_pairs(d("blind", "parents"), margin), "max_gap_to_context": float(gap.max())}
    floor["pass"] = bool(floor["max_gap_to_context"] <= 1e-9 and floor["lower_p"] < LEVEL)
    out = {"blinded_at_floor": floor}
    for name, (a, ref) in {
        "positive_control": ("pos", "control"),
        "doubled": ("doubled", "parents"),
    }.items():
        c = _pairs(d(a, ref), margin)
        out[name] = {**c, "pass": c["noninferior_p"] < LEVEL}
    return out


def measure_arms(
    runs: dict[str, str | Path], episodes: int, alpha: Sequence[float], log: Callable[[str], None]
) -> dict[str, dict[str, list]]:
    """Probe v2's per-seed values (and v1's R²) of each run, on its own rollout of
    ``episodes`` per default evaluation seed."""
    out = {}
    for name, run in runs.items():
        log(f"arm {name}: rollout of {episodes} episodes per evaluation seed")
        arm = load_model(run)
        played = _play(arm, DEFAULT_EVAL_SEEDS, episodes)
        out[name] = _measure(arm, played, alpha)
        v1 = probes.red_decodability_v1_per_seed(arm.model, arm.config.env, played)
        out[name]["red_decodability_v1"] = v1.tolist()
    return out


def validate(
    parents: str | Path,
    control: str | Path,
    pos: str | Path,
    blind: str | Path,
    out: str | Path,
    budgets: Sequence[int] = BUDGETS,
    sims: int = SIMULATIONS,
    log: Callable[[str], None] = print,
    compare: tuple[str | Path, str | Path] | None = None,
) -> dict[str, Any]:
    """Run docs/results/probe_v2.md's protocol on the parents and the three regenerated
    arms (run directories); write ``probe_v2.json`` (every per-seed value, each table's
    numbers and each check's verdict) and ``probe_v2.md`` (:func:`report`) into ``out``
    and return the result. ``compare``: (the regenerated arms' ``arms.json``, the
    committed one) for :func:`regeneration`."""
    n_eval = len(DEFAULT_EVAL_SEEDS)
    if any(b % n_eval for b in budgets):
        raise ValueError(f"every budget must be a multiple of {n_eval}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    top = max(budgets) // n_eval
    lm = load_model(parents)
    log(f"parents: {lm.model.n_seeds} seeds, rollouts of {max(budgets)} episodes on sets A and B")
    traj = {"A": _play(lm, DEFAULT_EVAL_SEEDS, top), "B": _play(lm, EVAL_SEEDS_B, top)}
    alpha, medians = choose_alpha(lm, traj["A"])
    log(f"alpha per layer: {alpha} (frozen in probes.PROBE_ALPHA: {list(probes.PROBE_ALPHA)})")
    result: dict[str, Any] = {
        "protocol": "docs/results/probe_v2.md",
        "seeds": [int(s) for s in lm.model.seeds],
        "eval_seeds": {"A": list(DEFAULT_EVAL_SEEDS), "B": list(EVAL_SEEDS_B)},
        "alpha_grid": list(probes.ALPHA_GRID),
        "alpha_median_d": medians.tolist(),
        "alpha": alpha,
        "alpha_frozen": list(probes.PROBE_ALPHA),
        "budgets": {},
    }
    for b in budgets:
        log(f"test-retest at {b} episodes per seed")
        sets = {s: _first(t, b // n_eval, top) for s, t in traj.items()}
        result["budgets"][str(b)] = budget_entry(lm, sets, alpha, sims)
    met = [b for b in budgets if result["budgets"][str(b)]["meets"]]
    chosen = met[0] if met else max(budgets)
    at_budget = result["budgets"][str(chosen)]
    margin = at_budget["retest"]["red_decodability"]["margin"]
    result.update(budget_met=bool(met), budget=chosen, margin=margin)
    log(f"budget {chosen} episodes per seed, margin {margin}")
    arms = {"parents": {**at_budget["A"], "red_decodability_v1": at_budget["v1"]["A"]}}
    runs = {"control": control, "pos": pos, "blind": blind}
    arms.update(measure_arms(runs, chosen // n_eval, alpha, log))
    slots = core.stacked_red_slots(lm.config.env)
    doubled = dataclasses.replace(lm, model=probes.scale_red_slots(lm.model, 2.0, slots))
    arms["doubled"] = _measure(doubled, _first(traj["A"], chosen // n_eval, top), alpha)
    result.update(arms=arms, checks=checks(arms, margin))
    if compare is not None:
        result["regeneration"] = regeneration(*compare)
    (out / "probe_v2.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "probe_v2.md").write_text(report(result))
    log(json.dumps({k: v["pass"] for k, v in result["checks"].items()}))
    return result


# ------------------------------------------------------------------ report


def _q(values: Sequence[float]) -> str:
    """ "median [25%, 75%]" of per-seed values."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return "–"
    lo, med, hi = np.percentile(v, [25, 50, 75])
    return f"{med:.3f} [{lo:.3f}, {hi:.3f}]"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Markdown table lines."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return out + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def report(result: dict[str, Any]) -> str:
    """The validation's tables (markdown) from a :func:`validate` result: α per layer,
    test–retest per budget, the arms' per-seed D, the checks and the regeneration."""
    lines = ["# Probe v2 validation", "", "## α per layer (median D over the parents, set A)", ""]
    grid = result["alpha_grid"]
    lines += _table(
        ["layer", *(f"α {a:g}" for a in grid), "chosen"],
        [
            [f"h{k + 1}", *(f"{v:.3f}" for v in row), f"{result['alpha'][k]:g}"]
            for k, row in enumerate(result["alpha_median_d"])
        ],
    )
    lines += ["", "## Test–retest (sets A and B) per budget", ""]
    rows = []
    for b, entry in result["budgets"].items():
        for key, r in entry["retest"].items():
            pw = f"{entry['power']:.3f}" if key == "red_decodability" else ""
            rows.append([b, key, f"{r['sd']:.4g}", f"{r['icc']:.3f}", f"{r['margin']:.4g}", pw])
    head = ["episodes per seed", "measure", "SD of A − B", "ICC", "margin 1.96 SD", "power"]
    lines += _table(head, rows)
    met = "met" if result["budget_met"] else "not met by any budget: the largest is used"
    lines += [
        "",
        f"Budget: {result['budget']} episodes per seed ({met}); margin {result['margin']}.",
        "",
        "## Per-seed D (median [quartiles] over seeds)",
        "",
    ]
    rows = []
    for name, arm in result["arms"].items():
        keys = ("", "_h1", "_h2", "_context", "_v1")
        rows.append([name, *(_q(arm.get(f"red_decodability{k}") or []) for k in keys)])
    lines += _table(["blue", "D", "D h1", "D h2", "D without red's slots", "v1 R²"], rows)
    lines += ["", "## Checks (paired by seed; signed-rank, one-sided 2.5%)", ""]
    rows = [
        [
            name, f"{c['hodges_lehmann']:+.3f}", f"{c['mean']:+.3f}", c["negative_seeds"],
            f"{c['noninferior_p']:.3g}", f"{c['lower_p']:.3g}", "yes" if c["pass"] else "no",
        ]
        for name, c in result["checks"].items()
    ]  # fmt: skip
    head = ["check", "Hodges–Lehmann shift", "mean", "seeds < 0", "p non-inferior", "p lower"]
    lines += _table([*head, "passes"], rows)
    if "regeneration" in result:
        lines += ["", "## Regenerated arms against the committed arms.json (per seed)", ""]
        rows = [
            [
                stage, m, f"{r['identical']} of {r['n']}", f"{r['max_abs_diff']:.4g}",
                f"{r['mean_new']:+.4f}", f"{r['mean_committed']:+.4f}",
            ]
            for stage, ms in result["regeneration"].items()
            for m, r in ms.items()
        ]  # fmt: skip
        head = ["arm", "measure", "seeds identical", "largest difference", "mean new", "committed"]
        lines += _table(head, rows)
    return "\n".join(lines) + "\n"
