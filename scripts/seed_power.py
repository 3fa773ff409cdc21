"""How often would a preset of n trained seeds show the deceptive − honest luring?

Reads the per-seed luring Δtrap of an evaluated deceptive and honest run and, for each n,
simulates ``--draws`` presets of n deceptive and n honest seeds: drawn from normals with the
observed means and SDs, and resampled from the observed per-seed values. A draw "shows"
the luring when its Welch 95% interval (``soo_marl.stats.welch_interval``) lies above 0.
Both estimates judge the seeds they were fitted on, so they lean optimistic.

Usage: ``python scripts/seed_power.py --deceptive RUN --honest RUN --n 8 16 24``
"""

from __future__ import annotations

import argparse

import numpy as np

from soo_marl import stats
from soo_marl.analysis.compare import values
from soo_marl.rundir import require_metrics


def main() -> None:
    """Print one Markdown row per n."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deceptive", required=True)
    ap.add_argument("--honest", required=True)
    ap.add_argument("--n", type=int, nargs="+", default=[8, 12, 16, 24])
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d = values(require_metrics(args.deceptive), "luring_delta_trap")
    h = values(require_metrics(args.honest), "luring_delta_trap")
    (md, sd), (mh, sh) = (d.mean(), d.std(ddof=1)), (h.mean(), h.std(ddof=1))
    print(f"deceptive {md:.3f} ± {sd:.3f}, honest {mh:.3f} ± {sh:.3f} "
          f"({len(d)} and {len(h)} seeds)")  # fmt: skip
    rng = np.random.default_rng(args.seed)
    print("| seeds n | shown (normal draws) | shown (resampled seeds) |")
    print("|---|---|---|")
    for n in args.n:
        normal = resampled = 0
        for _ in range(args.draws):
            normal += stats.welch_interval(rng.normal(md, sd, n), rng.normal(mh, sh, n))[0] > 0
            resampled += stats.welch_interval(rng.choice(d, n), rng.choice(h, n))[0] > 0
        print(f"| {n} | {normal / args.draws:.0%} | {resampled / args.draws:.0%} |")


if __name__ == "__main__":
    main()
