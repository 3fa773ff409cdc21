"""The closed-loop gate of ``docs/results/closed_loop.md``: does an environment design make
both the deceptive and the honest blue need a model of red?

:func:`closed_loop_gate` reads an evaluated deceptive and honest baseline of one design
(their ``eval/metrics.json``, with the blind, shuffled-red and, where red has a hidden
variable, counterfactual-red probes of docs/spec.md §4.4) and computes every number of the
protocol's tables with 95% Student-t intervals over trained seeds (Welch for deceptive −
honest; paired by trained seed within a run), then judges the pre-registered gate and the
pilot rule. Condition 2 is judged under :data:`PROBES` (blind and shuffled red, as
pre-registered) unless other probes are named (e.g. :data:`COUNTERFACTUAL_PROBES`, issue
32); the closed-loop share of every probe the files hold is reported with its ceiling
either way. ``python -m soo_marl.analysis.closed_loop DIR [--probes blind,counterfactual]``
prints them for ``DIR/deceptive`` and ``DIR/honest`` and exits 0 when the design passes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl import metrics, rundir
from soo_marl.stats import PRIMARY

#: The gate's thresholds, fixed by the protocol before any run (closed_loop.md, "The
#: gate"): the closed-loop share of the luring under each probe is at least this fraction
#: of the sighted luring (ratio of the means) ...
SHARE_OF_SIGHTED = 0.5
#: ... red's goal reach with the honest blue, sighted − blind, has at least this mean and
#: a lower bound above the second value ...
HONEST_NEEDS_RED_MEAN = 0.2
HONEST_NEEDS_RED_LOW = 0.1
#: ... and the honest blue reaches its own goal at least this often (mean).
HONEST_GOAL = 0.8
#: The probes whose closed-loop share the gate judges (metrics.json sections), as
#: pre-registered in docs/results/closed_loop.md.
PROBES = ("blind", "shuffled")
#: Issue 32's condition 2: the blind and the counterfactual-red probe (ceiling 1), judged
#: where a protocol says so (``closed_loop_gate(..., probes=COUNTERFACTUAL_PROBES)``).
COUNTERFACTUAL_PROBES = ("blind", "counterfactual")
#: Every probe whose closed-loop share is reported when the metrics.json holds it.
REPORTED_PROBES = ("blind", "shuffled", "counterfactual")


def per_seed(m: dict[str, Any], *path: str) -> np.ndarray:
    """Per-seed values of a summary in a metrics.json, found by its path of keys (None
    becomes NaN)."""
    for key in path:
        m = m[key]
    return np.array([np.nan if x is None else x for x in m["values"]], float)


def probe_ceiling(m: dict[str, Any], probe: str) -> float | None:
    """A probe's ceiling (docs/spec.md §4.4) in a metrics.json: 1 for the blind probe
    (it removes all of red), ``<probe>_ceiling`` for a donor probe (None where absent: no
    hidden variable, or a file evaluated before ceilings were recorded)."""
    return 1.0 if probe == "blind" else m.get(f"{probe}_ceiling")


def _has_probe(m: dict[str, Any], probe: str) -> bool:
    """The metrics.json holds ``probe``'s summaries (the counterfactual probe is None, or
    absent, without a hidden variable of red and in files from before it)."""
    return isinstance(m.get(probe), dict) and "luring_delta_trap" in m[probe]


def _probe_shares(
    deceptive: dict[str, Any], lur: np.ndarray, sighted: float, probes: Sequence[str]
) -> tuple[dict[str, Any], dict[str, bool]]:
    """Per probe the file holds: probe luring, closed-loop share, its ratio to the sighted
    luring and the ceiling; and condition 2 under each judged probe (``probes``)."""
    missing = [p for p in probes if not _has_probe(deceptive, p)]
    if missing:
        raise ValueError(f"the deceptive run's metrics.json has no {missing} probe to judge")
    out: dict[str, Any] = {}
    conditions = {}
    for probe in [p for p in REPORTED_PROBES if _has_probe(deceptive, p)]:
        probe_lur = per_seed(deceptive, probe, "luring_delta_trap")
        share = metrics.summarize(lur - probe_lur, method=PRIMARY)
        ratio = share["mean"] / sighted if sighted != 0 else np.nan
        out[f"{probe}_luring"] = metrics.summarize(probe_lur, method=PRIMARY)
        out[f"share_{probe}"] = share
        out[f"share_{probe}_of_sighted"] = float(ratio)
        out[f"{probe}_ceiling"] = probe_ceiling(deceptive, probe)
        if probe in probes:
            conditions[f"luring_needs_red_{probe}"] = bool(
                sighted > 0 and ratio >= SHARE_OF_SIGHTED and share["ci_low"] > 0
            )
    return out, conditions


def closed_loop_gate(
    deceptive: dict[str, Any], honest: dict[str, Any], probes: Sequence[str] = PROBES
) -> dict[str, Any]:
    """The gate's numbers and verdict for one design, from the ``metrics.json`` of its
    evaluated deceptive and honest baselines; condition 2 is judged under ``probes``.

    Summaries (``metrics.summarize``: mean, ``ci_low``, ``ci_high``, 95% Student-t over
    trained seeds): ``sighted_luring`` and ``<probe>_luring`` (the deceptive blue's luring
    Δtrap, sighted and under each probe), ``deceptive_minus_honest`` (luring, Welch),
    ``share_<probe>`` (the closed-loop share: sighted − probe luring, paired by seed),
    ``share_<probe>_of_sighted`` (ratio of the means) and ``<probe>_ceiling``
    (:func:`probe_ceiling`), for every probe of :data:`REPORTED_PROBES` the deceptive file
    holds (ValueError when a judged one is missing); ``red_goal_sighted_minus_blind``
    (red's goal reach with the honest blue, paired); means ``red_goal_sighted``,
    ``red_goal_blind``, ``blue_goal_honest``, ``blue_goal_deceptive``,
    ``trap_rate_deceptive``, ``trap_rate_honest``. ``conditions``: each gate condition
    (``deception``, ``luring_needs_red_<probe>`` for the judged probes, ``honest_needs_red``,
    ``honest_capable``) and whether it holds; ``passes``: all hold; ``pilot_passes``: the
    pilot rule (deceptive − honest luring and the judged probes' shares above 0, point
    estimates); ``probes_judged``.
    """
    lur = per_seed(deceptive, "luring_delta_trap")
    out: dict[str, Any] = {"sighted_luring": metrics.summarize(lur, method=PRIMARY)}
    gap = metrics.summarize_difference(lur, per_seed(honest, "luring_delta_trap"), method=PRIMARY)
    out["deceptive_minus_honest"] = gap
    conditions = {"deception": bool(gap["ci_low"] > 0)}
    shares, needs_red = _probe_shares(deceptive, lur, out["sighted_luring"]["mean"], probes)
    out.update(shares)
    conditions.update(needs_red)
    red_s = per_seed(honest, "metrics", "red_goal_rate")
    red_b = per_seed(honest, "blind", "red_goal_rate")
    needs = metrics.summarize(red_s - red_b, method=PRIMARY)
    out["red_goal_sighted_minus_blind"] = needs
    out["red_goal_sighted"] = float(np.nanmean(red_s))
    out["red_goal_blind"] = float(np.nanmean(red_b))
    for name, m in (("honest", honest), ("deceptive", deceptive)):
        out[f"blue_goal_{name}"] = float(np.nanmean(per_seed(m, "metrics", "blue_goal_rate")))
        out[f"trap_rate_{name}"] = float(np.nanmean(per_seed(m, "metrics", "trap_rate")))
    conditions["honest_needs_red"] = bool(
        needs["mean"] >= HONEST_NEEDS_RED_MEAN and needs["ci_low"] > HONEST_NEEDS_RED_LOW
    )
    conditions["honest_capable"] = bool(out["blue_goal_honest"] >= HONEST_GOAL)
    out["conditions"] = conditions
    out["passes"] = all(conditions.values())
    out["pilot_passes"] = bool(
        gap["mean"] > 0 and all(out[f"share_{p}"]["mean"] > 0 for p in probes)
    )
    out["probes_judged"] = list(probes)
    return out


def gate_dir(design_dir: str | Path, probes: Sequence[str] = PROBES) -> dict[str, Any]:
    """:func:`closed_loop_gate` of ``DIR/deceptive`` and ``DIR/honest`` (evaluated runs)."""
    d = Path(design_dir)
    return closed_loop_gate(
        rundir.require_metrics(d / "deceptive"), rundir.require_metrics(d / "honest"), probes
    )


def _ci(s: dict[str, Any]) -> str:
    """ "+mean [+low, +high]" of a summary."""
    return f"{s['mean']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]"


def _ceiling(value: float | None) -> str:
    """A probe's ceiling as a percentage, "–" where it is not defined."""
    return "–" if value is None else f"{value:.0%}"


def pilot_row(result: dict[str, Any]) -> dict[str, str]:
    """The columns of the protocol's pilot table for one design, formatted as there, with
    the counterfactual-red probe's ("–" where the files do not hold it) and each donor
    probe's ceiling."""
    counterfactual = "share_counterfactual" in result
    row = {
        "sighted luring": _ci(result["sighted_luring"]),
        "blind luring": _ci(result["blind_luring"]),
        "shuffled-red luring": _ci(result["shuffled_luring"]),
        "deceptive − honest luring": _ci(result["deceptive_minus_honest"]),
        "closed-loop share (blind)": _ci(result["share_blind"]),
        "share / sighted (blind)": f"{result['share_blind_of_sighted']:.0%}",
        "closed-loop share (shuffled)": _ci(result["share_shuffled"]),
        "share / sighted (shuffled)": f"{result['share_shuffled_of_sighted']:.0%}",
        "counterfactual-red luring": (
            _ci(result["counterfactual_luring"]) if counterfactual else "–"
        ),
        "closed-loop share (counterfactual)": (
            _ci(result["share_counterfactual"]) if counterfactual else "–"
        ),
        "share / sighted (counterfactual)": (
            f"{result['share_counterfactual_of_sighted']:.0%}" if counterfactual else "–"
        ),
        "ceiling: shuffled / counterfactual": (
            f"{_ceiling(result.get('shuffled_ceiling'))} / "
            f"{_ceiling(result.get('counterfactual_ceiling'))}"
        ),
        "red goal with honest blue: sighted / blind": (
            f"{result['red_goal_sighted']:.3f} / {result['red_goal_blind']:.3f}"
        ),
        "red goal sighted − blind (honest)": _ci(result["red_goal_sighted_minus_blind"]),
        "blue goal: honest / deceptive": (
            f"{result['blue_goal_honest']:.3f} / {result['blue_goal_deceptive']:.3f}"
        ),
        "trap rate: deceptive / honest": (
            f"{result['trap_rate_deceptive']:.3f} / {result['trap_rate_honest']:.3f}"
        ),
        "pilot rule": "passes" if result["pilot_passes"] else "fails",
        "gate": "passes" if result["passes"] else "fails",
        "probes judged": ", ".join(result["probes_judged"]),
    }
    return row


def main(argv: Sequence[str] | None = None) -> int:
    """``DIR [--probes blind,counterfactual]``: print the design's gate numbers as JSON,
    condition 2 judged under the named probes (default :data:`PROBES`); exit 0 when the
    gate passes."""
    args = list(sys.argv[1:] if argv is None else argv)
    probes: Sequence[str] = PROBES
    if len(args) == 3 and args[1] == "--probes":
        probes = tuple(args[2].split(","))
        args = args[:1]
    if len(args) != 1 or args[0].startswith("-") or not set(probes) <= set(REPORTED_PROBES):
        print("usage: python -m soo_marl.analysis.closed_loop DIR [--probes P,Q]; probes: "
              + ", ".join(REPORTED_PROBES))  # fmt: skip
        return 2
    result = gate_dir(args[0], probes)
    row = {"design": args[0], **pilot_row(result), "conditions": result["conditions"]}
    print(json.dumps(row, ensure_ascii=False, indent=1))
    return 0 if result["passes"] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
