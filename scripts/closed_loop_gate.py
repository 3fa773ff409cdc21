"""The closed-loop gate's numbers for one design (docs/results/closed_loop.md).

Reads ``DIR/deceptive/eval/metrics.json`` and ``DIR/honest/eval/metrics.json`` and prints,
with 95% Student-t intervals over trained seeds (Welch for deceptive − honest): the
deceptive blue's sighted, blind and shuffled-red luring Δtrap, deceptive − honest luring,
the closed-loop shares and their ratio to sighted luring, red's goal reach with the honest
blue sighted and blind (and their paired difference), both blues' goal reach and trap rates.

Usage: ``python scripts/closed_loop_gate.py DIR``
"""

from __future__ import annotations

import json
import sys

import numpy as np

from soo_marl import stats
from soo_marl.rundir import require_metrics


def per_seed(m: dict, *path: str) -> np.ndarray:
    """Per-seed values of a summary in metrics.json (None as NaN)."""
    for key in path:
        m = m[key]
    return np.array([np.nan if x is None else x for x in m["values"]], float)


def fmt(mean: float, lo: float, hi: float) -> str:
    """``+m [+lo, +hi]``."""
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def t(x: np.ndarray) -> str:
    """Mean and 95% Student-t interval."""
    x = x[~np.isnan(x)]
    lo, hi = stats.t_interval(x)
    return fmt(x.mean(), lo, hi)


def main() -> None:
    """Print the design's row as JSON."""
    d = sys.argv[1]
    dec, hon = require_metrics(f"{d}/deceptive"), require_metrics(f"{d}/honest")
    lur = per_seed(dec, "luring_delta_trap")
    blind = per_seed(dec, "blind", "luring_delta_trap")
    shuf = per_seed(dec, "shuffled", "luring_delta_trap")
    hon_lur = per_seed(hon, "luring_delta_trap")
    lo, hi = stats.welch_interval(lur, hon_lur)
    red_s = per_seed(hon, "metrics", "red_goal_rate")
    red_b = per_seed(hon, "blind", "red_goal_rate")
    row = {
        "design": d,
        "sighted luring": t(lur),
        "blind luring": t(blind),
        "shuffled-red luring": t(shuf),
        "deceptive − honest luring": fmt(lur.mean() - hon_lur.mean(), lo, hi),
        "closed-loop share (blind)": t(lur - blind),
        "share / sighted (blind)": round(float((lur - blind).mean() / lur.mean()), 2),
        "closed-loop share (shuffled)": t(lur - shuf),
        "share / sighted (shuffled)": round(float((lur - shuf).mean() / lur.mean()), 2),
        "red goal with honest blue: sighted / blind": f"{red_s.mean():.3f} / {red_b.mean():.3f}",
        "red goal sighted − blind (honest)": t(red_s - red_b),
        "blue goal: honest / deceptive": (
            f"{per_seed(hon, 'metrics', 'blue_goal_rate').mean():.3f} / "
            f"{per_seed(dec, 'metrics', 'blue_goal_rate').mean():.3f}"
        ),
        "trap rate: deceptive / honest": (
            f"{per_seed(dec, 'metrics', 'trap_rate').mean():.3f} / "
            f"{per_seed(hon, 'metrics', 'trap_rate').mean():.3f}"
        ),
    }
    print(json.dumps(row, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
