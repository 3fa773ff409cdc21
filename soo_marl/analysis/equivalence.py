"""Equivalence of two arms' paired luring differences (TOST), as the protocol of
``docs/results/soo_study2_equivalence.md`` fixes it (issue 31, item 3).

Each arm of a study's ``arms.json`` holds per-seed paired differences against the same
control, so per seed the difference between two arms is (X − control) − (Y − control) =
X − Y (:func:`arm_difference`). :func:`equivalence` runs TOST
(:func:`soo_marl.stats.tost`: two one-sided t tests) and the two-sided t test of each
comparison, each with Holm's step-down over the comparisons, and names what the outcome
licenses (:func:`words`). Beside it, for sensitivity only, the same intervals with the
bootstrap-t (rule v3's method).

``python -m soo_marl.analysis.equivalence --arms-json docs/results/soo_study2/arms.json
--out docs/results/soo_study2`` writes ``equivalence.json`` and ``equivalence.md``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl import stats
from soo_marl.provenance import cpu_model

#: SOO study 2's comparisons: name → (arm, title) of X and of Y in X − Y.
STUDY2 = {
    "sham − 2a": (("2b", "sham SOO (trap-flag slot 9 flipped)"),
                  ("1", "replication: 2a (W 1, h1h2, pre-trap, log)")),
    "blinding − 2a": (("2a", "surgical blinding (no SOO)"),
                      ("1", "replication: 2a (W 1, h1h2, pre-trap, log)")),
}  # fmt: skip
MARGIN = 0.03
ALPHA = 0.05


def arm_difference(
    arms: Sequence[Mapping[str, Any]],
    x: tuple[str, str],
    y: tuple[str, str],
    measure: str = "luring",
) -> np.ndarray:
    """Per seed, arm x's paired difference minus arm y's (arms matched by (arm, title));
    NaN where either is missing. Both arms must hold the same number of seeds."""
    by = {(r["arm"], r["title"]): r for r in arms}
    vx, vy = (np.array(by[k][measure]["values"], dtype=float) for k in (x, y))
    if vx.shape != vy.shape:
        raise ValueError(f"{x} and {y} hold different numbers of seeds")
    return vx - vy


def words(equivalent: bool, different: bool, beyond: bool, margin: float) -> str:
    """What the protocol licenses from TOST (``equivalent``), the difference test
    (``different``) and whether the difference's interval lies entirely beyond ±margin."""
    if equivalent:
        if different:
            return f"shown different, but by less than {margin:g}"
        return f"shown equivalent within ±{margin:g}"
    if different:
        if beyond:
            return f"shown different by more than {margin:g}"
        return "shown different; not shown equivalent"
    return "not shown equivalent and not shown different"


def equivalence(
    diffs: Mapping[str, np.ndarray], margin: float = MARGIN, alpha: float = ALPHA
) -> list[dict[str, Any]]:
    """TOST and the difference test of each comparison (name → per-seed differences),
    Holm over the comparisons for each; per comparison the TOST result at its Holm α,
    the (1 − 2α) t interval, the difference's p-value and t interval at its Holm level,
    the words, and the bootstrap-t intervals at the same levels (sensitivity)."""
    names = list(diffs)
    clean = {k: v[~np.isnan(v)] for k, v in diffs.items()}
    tost = {k: stats.tost(clean[k], margin=margin, alpha=alpha) for k in names}
    p_diff = [
        min(stats.t_pvalue(clean[k], 0.0, 1), stats.t_pvalue(clean[k], 0.0, -1)) for k in names
    ]
    lv_tost = stats.holm_levels([float(tost[k]["p"]) for k in names], alpha)
    lv_diff = stats.holm_levels(p_diff, alpha)
    out = []
    for k, lt, pd, ld in zip(names, lv_tost, p_diff, lv_diff, strict=True):
        d, a = clean[k], 1.0 - lt  # the TOST's Holm α
        eq_ci = stats.t_interval(d, 1.0 - 2.0 * a)
        diff_ci = stats.t_interval(d, ld)
        equivalent = bool(tost[k]["p"] < a)
        different = bool(pd < 1.0 - ld)
        beyond = bool(diff_ci[0] > margin or diff_ci[1] < -margin)
        out.append({
            "comparison": k, "n": int(d.size), "mean": float(d.mean()),
            "sd": float(d.std(ddof=1)), "seeds_below_0": int((d < 0).sum()),
            "margin": margin, "alpha": alpha, "tost": tost[k], "tost_alpha": a,
            "tost_interval": list(eq_ci), "equivalent": equivalent,
            "p_difference": float(pd), "difference_level": ld,
            "difference_interval": list(diff_ci), "different": different, "beyond": beyond,
            "words": words(equivalent, different, beyond, margin),
            "boot_t": {"tost_interval": list(stats.bootstrap_t_interval(d, 1.0 - 2.0 * a)),
                       "difference_interval": list(stats.bootstrap_t_interval(d, ld))},
        })  # fmt: skip
    return out


def _ci(v: Sequence[float]) -> str:
    return f"[{v[0]:+.4f}, {v[1]:+.4f}]"


def markdown(results: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table (TOST, difference, words, bootstrap-t beside)."""
    lines = [
        "| comparison (per seed, X − 2a) | n | mean (SD) | TOST p (lower, upper) | Holm α "
        "| TOST interval | difference p | difference interval (Holm level) | licensed words "
        "| bootstrap-t: TOST interval; difference interval |",
        "|---" * 10 + "|",
    ]
    for r in results:
        t = r["tost"]
        lines.append(
            f"| {r['comparison']} | {r['n']} | {r['mean']:+.4f} ({r['sd']:.4f}) | "
            f"{t['p']:.4f} ({t['p_lower']:.2g}, {t['p_upper']:.4f}) | {r['tost_alpha']:.3f} | "
            f"{_ci(r['tost_interval'])} ({100 * (1 - 2 * r['tost_alpha']):.0f}%) | "
            f"{r['p_difference']:.4f} | {_ci(r['difference_interval'])} "
            f"({100 * r['difference_level']:.1f}%) | **{r['words']}** | "
            f"{_ci(r['boot_t']['tost_interval'])}; {_ci(r['boot_t']['difference_interval'])} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the protocol's comparisons on an arms.json; write equivalence.json and .md."""
    ap = argparse.ArgumentParser(prog="python -m soo_marl.analysis.equivalence")
    ap.add_argument("--arms-json", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--margin", type=float, default=MARGIN)
    args = ap.parse_args(argv)
    arms = json.loads(args.arms_json.read_text())
    diffs = {k: arm_difference(arms, x, y) for k, (x, y) in STUDY2.items()}
    results = equivalence(diffs, args.margin)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"arms_json": str(args.arms_json), "cpu": cpu_model(), "comparisons": STUDY2}
    (args.out / "equivalence.json").write_text(json.dumps({**meta, "results": results}, indent=1))
    text = "# Equivalence of SOO study 2's arms (generated by soo_marl.analysis.equivalence)\n\n"
    (args.out / "equivalence.md").write_text(text + markdown(results) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
