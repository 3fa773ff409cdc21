"""SOO classifier (docs/spec.md §4.9): does the mean SOO value tell the honest model from the
deceptive one, given N evaluation episodes?

Both runs must have been evaluated (``soo-marl evaluate``) with the same trained seeds,
evaluation seeds and episodes per evaluation seed. A *unit* is one (trained seed,
evaluation seed) pair; it holds n = ``episodes_per_eval_seed`` episodes, and for each N the
honest model of the unit is classified correctly when the mean over its first N
per-episode SOO means is lower than the deceptive model's
(:func:`soo_marl.metrics.classifier_accuracy`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl import metrics, rundir

#: Default numbers of episodes N (clipped to the episodes available per unit).
DEFAULT_N_EPISODES: tuple[int, ...] = (1, *range(100, 1501, 100))
RESULT_NAME = "classifier"
#: The classifier variants of :func:`classify_variants`: (rows, keep_trap_flag). On pre-trap
#: rows the flag is 0 in both observations, so keeping it changes nothing there.
VARIANTS = (("all", False), ("pre-trap", False), ("all", True))
_BOOKKEEPING = ("seeds", "eval_seeds", "episodes_per_eval_seed")


def variant_name(rows: str, keep_trap_flag: bool) -> str:
    """E.g. "all rows, flag zeroed" (the paper's) or "pre-trap rows, flag kept"."""
    return f"{rows} rows, flag {'kept' if keep_trap_flag else 'zeroed'}"


def load_soo(
    run_dir: str | Path, rows: str = "all", keep_trap_flag: bool = False
) -> dict[str, np.ndarray]:
    """The per-step SOO values (of the chosen variant, NaN outside the chosen rows) and
    seed bookkeeping of a run's ``eval/trajectories.npz``.

    Raises FileNotFoundError (no evaluation) or ValueError (a file without SOO values).
    """
    array = "soo_value_flag_kept" if keep_trap_flag else "soo_value"
    fields = (array, "trapped", *_BOOKKEEPING)
    arrays = rundir.read_trajectories(run_dir, fields, required=True)
    missing = [k for k in fields if k not in arrays]
    if missing:
        raise ValueError(
            f"{run_dir}: {rundir.TRAJECTORIES} lacks {', '.join(missing)} "
            "(evaluate it again with this version)"
        )
    arrays["soo_value"] = metrics.soo_rows(arrays.pop(array), arrays.pop("trapped"), rows)
    return arrays


def _label(run_dir: Path) -> str:
    m = rundir.read_metrics(run_dir)
    return str(m.get("label", run_dir.name)) if m else run_dir.name


def clip_episodes(n_episodes: Iterable[int], available: int) -> list[int]:
    """The requested numbers of episodes clipped to 1..``available``, sorted, unique."""
    out = sorted({min(max(int(n), 1), available) for n in n_episodes})
    if not out:
        raise ValueError("no numbers of episodes given")
    return out


def units(
    soo_value: np.ndarray, n_eval_seeds: int, per_seed: int, pool: bool = False
) -> np.ndarray:
    """Per-episode SOO means (S, K·n, T+1) → (S·K, n) units of trained × evaluation seed
    (episode j of a trained seed belongs to evaluation seed j // n), or with ``pool`` →
    (S, K·n) units of trained seeds whose episodes cycle through the evaluation seeds."""
    means = metrics.episode_soo_means(soo_value)  # (S, M)
    s, m = means.shape
    if m != n_eval_seeds * per_seed:
        raise ValueError(f"{m} episodes per seed is not {n_eval_seeds} eval seeds × {per_seed}")
    if pool:
        return means.reshape(s, n_eval_seeds, per_seed).transpose(0, 2, 1).reshape(s, m)
    return means.reshape(s * n_eval_seeds, per_seed)


Runs = str | Path | Sequence[str | Path]


def _pair(dec_dir: Path, hon_dir: Path, rows: str, keep: bool) -> tuple[dict, dict]:
    dec = load_soo(dec_dir, rows, keep)
    hon = load_soo(hon_dir, rows, keep)
    for key in ("seeds", "eval_seeds", "episodes_per_eval_seed"):
        if not np.array_equal(dec[key], hon[key]):
            raise ValueError(
                f"{key} differ: {dec_dir} has {dec[key].tolist()}, {hon_dir} has "
                f"{hon[key].tolist()} (evaluate both with the same seeds and --episodes)"
            )
    if dec["soo_value"].shape != hon["soo_value"].shape:
        raise ValueError(
            f"soo_value shapes differ: {dec['soo_value'].shape} vs {hon['soo_value'].shape}"
        )
    return dec, hon


def _dirs(runs: Runs) -> list[Path]:
    return [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]


def classify(
    deceptive_dir: Runs,
    honest_dir: Runs,
    n_episodes: Iterable[int] = DEFAULT_N_EPISODES,
    pool_eval_seeds: bool = False,
    rows: str = "all",
    keep_trap_flag: bool = False,
    allow_unfinished: bool = False,
) -> dict[str, Any]:
    """SOO classifier accuracy vs number of evaluation episodes for evaluated runs.

    ``deceptive_dir`` and ``honest_dir`` are one run each, or equally long lists of runs
    paired in order (e.g. groups of seeds trained separately); the units of every pair
    are pooled. ``rows`` ("all" out-of-sight steps, or "pre-trap" ones) and
    ``keep_trap_flag`` (the SOO value whose other observation keeps the trap flag) choose
    the variant; the paper's is all rows with the flag zeroed.

    Returns a JSON-ready dict: ``n_episodes`` and ``accuracy`` (same length), ``units``
    (trained seeds × evaluation seeds), ``episodes_per_unit``, ``mean_soo`` (mean SOO value
    of each model over all out-of-sight steps), ``correct`` (per N, per unit), the seeds,
    and the runs' paths and labels. Raises ValueError when paired runs were not evaluated
    on the same seeds and episodes. With ``pool_eval_seeds`` a unit is a trained seed and
    its episodes from all evaluation seeds (up to K·n episodes per unit). An unfinished
    run (no final model, :func:`rundir.require_finished`) is refused unless
    ``allow_unfinished``.
    """
    dec_dirs, hon_dirs = _dirs(deceptive_dir), _dirs(honest_dir)
    pairs = _load_pairs(dec_dirs, hon_dirs, rows, keep_trap_flag, allow_unfinished)
    eval_seeds, per_seed = _shared_eval_seeds(pairs)
    k = len(eval_seeds)
    u_dec = np.concatenate([units(d["soo_value"], k, per_seed, pool_eval_seeds) for d, _ in pairs])
    u_hon = np.concatenate([units(h["soo_value"], k, per_seed, pool_eval_seeds) for _, h in pairs])
    per_unit = u_dec.shape[1]
    ns = clip_episodes(n_episodes, per_unit)
    res = metrics.classifier_accuracy(u_hon, u_dec, ns)
    seeds = [int(x) for d, _ in pairs for x in d["seeds"]]
    return {
        "variant": variant_name(rows, keep_trap_flag),
        "rows": rows,
        "keep_trap_flag": keep_trap_flag,
        "n_episodes": ns,
        "accuracy": [res.accuracy[x] for x in ns],
        "undecided": _undecided(u_hon, u_dec, ns),
        "units": int(u_dec.shape[0]),
        "episodes_per_unit": per_unit,
        "pooled_eval_seeds": pool_eval_seeds,
        "mean_soo": {"deceptive": _pooled_mean(pairs, 0), "honest": _pooled_mean(pairs, 1)},
        "correct": {str(x): res.correct[x].astype(int).tolist() for x in ns},
        "unit_seeds": (
            [[s] for s in seeds] if pool_eval_seeds else [[s, e] for s in seeds for e in eval_seeds]
        ),
        "seeds": seeds,
        "eval_seeds": eval_seeds,
        "deceptive": _who(dec_dirs),
        "honest": _who(hon_dirs),
    }


def _load_pairs(
    dec_dirs: list[Path], hon_dirs: list[Path], rows: str, keep: bool, allow_unfinished: bool
) -> list[tuple[dict, dict]]:
    """The (deceptive, honest) SOO arrays of each pair of finished runs, checked to match."""
    if len(dec_dirs) != len(hon_dirs) or not dec_dirs:
        raise ValueError("give as many deceptive runs as honest runs (at least one)")
    for d in (*dec_dirs, *hon_dirs):
        rundir.require_finished(d, allow_unfinished)
    return [_pair(d, h, rows, keep) for d, h in zip(dec_dirs, hon_dirs, strict=True)]


def _shared_eval_seeds(pairs: Sequence[tuple[dict, dict]]) -> tuple[list[int], int]:
    """The evaluation seeds and episodes per evaluation seed, which every pair must share."""
    eval_seeds = [int(x) for x in pairs[0][0]["eval_seeds"]]
    per_seed = int(pairs[0][0]["episodes_per_eval_seed"])
    for dec, _ in pairs[1:]:
        if [int(x) for x in dec["eval_seeds"]] != eval_seeds or int(
            dec["episodes_per_eval_seed"]
        ) != per_seed:
            raise ValueError("every pair must be evaluated on the same evaluation seeds")
    return eval_seeds, per_seed


def _undecided(u_hon: np.ndarray, u_dec: np.ndarray, ns: Sequence[int]) -> list[float]:
    """Per N, the share of units without an out-of-sight step on a side in N episodes."""
    return [
        float(np.mean(np.isnan(u_hon[:, :x]).all(axis=1) | np.isnan(u_dec[:, :x]).all(axis=1)))
        for x in ns
    ]


def _pooled_mean(pairs: Sequence[tuple[dict, dict]], side: int) -> float:
    """Mean SOO value of one side (0 deceptive, 1 honest) over all steps of all pairs."""
    values = np.concatenate([p[side]["soo_value"].ravel() for p in pairs])
    return metrics.mean_soo_value(values, keep_axis=None)


def _who(dirs: list[Path]) -> dict[str, Any]:
    """The run (first of ``dirs``), its label, and every run when there are several."""
    out: dict[str, Any] = {"run": str(dirs[0]), "label": _label(dirs[0])}
    if len(dirs) > 1:
        out["runs"] = [str(d) for d in dirs]
    return out


def classify_variants(
    deceptive_dir: Runs,
    honest_dir: Runs,
    n_episodes: Iterable[int] = DEFAULT_N_EPISODES,
    pool_eval_seeds: bool = False,
    allow_unfinished: bool = False,
) -> list[dict[str, Any]]:
    """:func:`classify` for every variant of :data:`VARIANTS` (rows × trap flag)."""
    return [
        classify(
            deceptive_dir, honest_dir, n_episodes, pool_eval_seeds, rows, keep, allow_unfinished
        )
        for rows, keep in VARIANTS
    ]


def format_table(result: Mapping[str, Any]) -> str:
    """Accuracy per N as a small text table, with the models' mean SOO values."""
    lines = [
        f"SOO classifier ({result.get('variant', variant_name('all', False))}): honest "
        f"{result['honest']['label']!r} vs deceptive {result['deceptive']['label']!r}, "
        f"{result['units']} units",
        "mean SOO value over all their out-of-sight steps: "
        + ", ".join(f"{k} {v:.4g}" for k, v in result["mean_soo"].items()),
        f"{'episodes N':>10}  accuracy  undecided",
    ]
    undecided = result.get("undecided", [float("nan")] * len(result["n_episodes"]))
    for n, acc, und in zip(result["n_episodes"], result["accuracy"], undecided, strict=True):
        lines.append(f"{n:>10}  {acc:8.3f}  {und:9.3f}")
    lines.append("(undecided: units without an out-of-sight step on a side; they count as wrong)")
    return "\n".join(lines)


def result_name(result: Mapping[str, Any]) -> str:
    """File stem of a result: ``classifier[_pooled]`` plus the variant when not the paper's."""
    name = RESULT_NAME + ("_pooled" if result.get("pooled_eval_seeds") else "")
    if result.get("rows", "all") != "all":
        name += "_" + result["rows"]
    if result.get("keep_trap_flag"):
        name += "_flag-kept"
    return name


def write_result(
    result: Mapping[str, Any] | Sequence[Mapping[str, Any]], out_dir: str | Path
) -> list[Path]:
    """Write a result as JSON with its accuracy curve (PNG and PDF): ``classifier.json``
    for one variant, or ``classifier_variants.json`` and one figure for several."""
    from soo_marl.analysis.figures import fig_classifier
    from soo_marl.analysis.plots import save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(result, Mapping):
        name = result_name(result)
    else:
        name = RESULT_NAME + "_variants" + ("_pooled" if result[0].get("pooled_eval_seeds") else "")
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=1))
    return [path, *save_figure(fig_classifier(result), out / name)]
