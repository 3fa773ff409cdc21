"""Markdown tables of evaluation results (from each run's ``eval/metrics.json``).

Column meanings are defined in docs/spec.md §4.3–§4.11; every cell is "mean [95% CI]" over trained
seeds unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from soo_marl.analysis.compare import (
    RULE,
    SHOWN,
    difference,
    difference_pvalue,
    holm_levels,
    verdict,
)
from soo_marl.analysis.runs import summary
from soo_marl.rundir import NO_SOO, SOO

#: (key in metrics.json, column title).
MAIN_COLUMNS = (
    ("trap_rate", "trap rate"),
    ("luring_delta_trap", "luring Δtrap"),
    ("deceivability", "deceivability"),
    ("blue_at_fake", "blue at fake"),
    ("blue_goal_rate", "blue goal"),
    ("red_goal_rate", "red goal"),
    ("return_blue", "return blue"),
    ("return_red", "return red"),
    ("headline_guard", "headline (guard 0.01)"),
    ("headline_noguard", "headline (guard 0)"),
    ("soo_value", "SOO value"),
)


def fmt(s: dict | None, digits: int = 3) -> str:
    """ "mean [ci_low, ci_high]" of a summary, or "–"."""
    if not s or s.get("n", 0) == 0:
        return "–"
    return f"{s['mean']:.{digits}f} [{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def results_table(
    metrics: Sequence[dict], columns: Sequence[tuple[str, str]] = MAIN_COLUMNS
) -> str:
    """One row per run, one column per metric: mean [95% bootstrap CI] over seeds."""
    head = "| condition | seeds | " + " | ".join(t for _, t in columns) + " |"
    sep = "|" + "---|" * (len(columns) + 2)
    rows = [head, sep]
    for m in metrics:
        cells = [fmt(summary(m, k), 2 if k.startswith("return") else 3) for k, _ in columns]
        rows.append(f"| {m['label']} | {len(m['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def probe_table(metrics: Sequence[dict]) -> str:
    """Each learned red with scripted blues and with the other runs' blues (cross-play)."""
    rows = [
        "| condition (red from) | own blue | to_goal blue | to_fake blue | still blue | "
        "cross-play: this blue with … red |",
        "|---|---|---|---|---|---|",
    ]
    for m in metrics:
        cross = "; ".join(f"{k}: {fmt(v['trap_rate'])}" for k, v in m["cross_play"].items())
        rows.append(
            f"| {m['label']} | {fmt(m['metrics']['trap_rate'])} | "
            + " | ".join(fmt(m["probes"][p]["trap_rate"]) for p in ("to_goal", "to_fake", "still"))
            + f" | {cross or '–'} |"
        )
    return "\n".join(rows)


#: Columns of :func:`blind_table`: (path in metrics.json, title).
BLIND_COLUMNS = (
    (("luring_delta_trap",), "luring Δtrap"),
    (("blind", "luring_delta_trap"), "blind luring Δtrap"),
    (("closed_loop_share",), "closed-loop share"),
    (("shuffled", "luring_delta_trap"), "shuffled-red luring Δtrap"),
    (("closed_loop_share_shuffled",), "closed-loop share (shuffled red)"),
    (("counterfactual", "luring_delta_trap"), "counterfactual-red luring Δtrap"),
    (("closed_loop_share_counterfactual",), "closed-loop share (counterfactual red)"),
    (("blind", "trap_rate"), "blind trap rate"),
    (("shuffled", "trap_rate"), "shuffled-red trap rate"),
    (("blind", "blue_at_fake"), "blind blue at fake"),
    (("blind", "blue_goal_rate"), "blind blue goal"),
    (("shuffled", "blue_goal_rate"), "shuffled-red blue goal"),
)
#: Columns of :func:`representation_table` with a summary: (path in metrics.json, title).
REPRESENTATION_COLUMNS = (
    (("metrics", "trapped_steps"), "trapped steps"),
    (("shuffled", "trapped_steps"), "trapped steps (shuffled red)"),
    (("red_decodability",), "red decodability D"),
    (("red_decodability_context",), "D without red's slots"),
    (("red_slot_norm",), "red-slot weight norm"),
    (("other_slot_norm",), "other-slot weight norm"),
)
#: Columns of :func:`soo_state_table`: (key under "metrics", title).
SOO_STATE_COLUMNS = (
    ("soo_value", "all out-of-sight steps"),
    ("soo_value_pre_trap", "pre-trap"),
    ("soo_value_post_trap", "post-trap"),
    ("soo_value_flag_kept", "flag kept"),
    ("post_trap_fraction", "post-trap share of out-of-sight steps"),
)


def _at(m: dict, path: tuple[str, ...]) -> dict | None:
    for key in path:
        if not isinstance(m, dict) or key not in m:
            return None
        m = m[key]
    return m


#: Title of :func:`blind_table`'s last column, the donor probes' ceilings (§4.4).
CEILING_TITLE = "ceiling (shuffled / counterfactual red)"


def ceiling_cell(m: Mapping[str, Any]) -> str:
    """The shuffled-red and counterfactual-red probes' ceilings of one condition, "a / b"
    (shares of donors that differ in red's hidden variable, docs/spec.md §4.4; "–" where
    red has none or the file predates them)."""
    values = [m.get(k) for k in ("shuffled_ceiling", "counterfactual_ceiling")]
    if all(v is None for v in values):
        return "–"
    return " / ".join("–" if v is None else f"{v:.3f}" for v in values)


def blind_table(metrics: Sequence[dict]) -> str:
    """Does blue's luring need to see red? Its own blue against the same blue blinded to
    red (red slots forced to 0), shown another episode's red (shuffled red) and shown the
    red of an episode that differs in red's hidden variable (counterfactual red, "–"
    without one), with the same red and start states, and the donor probes' ceilings
    (docs/spec.md §4.4)."""
    titles = [t for _, t in BLIND_COLUMNS] + [CEILING_TITLE]
    head = "| condition | " + " | ".join(titles) + " |"
    rows = [head, "|" + "---|" * (len(titles) + 1)]
    for m in metrics:
        cells = [fmt(_at(m, path)) for path, _ in BLIND_COLUMNS] + [ceiling_cell(m)]
        rows.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def saturation_cells(m: dict) -> list[str]:
    """Actor saturation (docs/spec.md §4.10) of one condition as three table cells:
    saturated actors on evaluation observations ("k/n"), on a replay batch ("k/n" or
    "–"), and blue's fraction of saturated outputs on evaluation observations (mean over
    seeds, with the largest seed's in brackets)."""
    cells = []
    for key in ("saturation", "saturation_replay"):
        s = m.get(key)
        cells.append(f"{s['saturated_actors']}/{s['actors']}" if s else "–")
    s = m.get("saturation")
    if s:
        blue = [seed[-1] for seed in s["fraction_of_outputs"]]
        cells.append(f"{np.mean(blue):.3f} (max {max(blue):.3f})")
    else:
        cells.append("–")
    return cells


#: Titles of the saturation columns of :func:`representation_table`.
SATURATION_TITLES = (
    "saturated actors (eval obs)",
    "saturated actors (replay)",
    "blue's saturated outputs (eval obs)",
)


def representation_table(metrics: Sequence[dict]) -> str:
    """Probes that do not rely on the learned "out of sight" code (docs/spec.md §4.3,
    §4.10, §4.15, §4.16): how long red stays trapped, how well red's true offset can be
    read off blue's hidden activations (and without red's slots), the weight blue's first
    layer puts on red's slots, and actor saturation, per condition."""
    titles = [t for _, t in REPRESENTATION_COLUMNS] + list(SATURATION_TITLES)
    rows = ["| condition | " + " | ".join(titles) + " |", "|" + "---|" * (len(titles) + 1)]
    for m in metrics:
        cells = [
            fmt(_at(m, path), 2 if "norm" in t or "steps" in t else 3)
            for path, t in REPRESENTATION_COLUMNS
        ]
        rows.append(f"| {m['label']} | " + " | ".join(cells + saturation_cells(m)) + " |")
    return "\n".join(rows)


def soo_state_table(metrics: Sequence[dict]) -> str:
    """Mean SOO value by trap state and trap-flag treatment, and how many out-of-sight
    steps come after the trap (docs/spec.md §4.8)."""
    head = "| condition | " + " | ".join(t for _, t in SOO_STATE_COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(SOO_STATE_COLUMNS) + 1)]
    for m in metrics:
        cells = [fmt(m["metrics"].get(k)) for k, _ in SOO_STATE_COLUMNS]
        rows.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def behaviour_table(diffs: Mapping[str, Mapping[tuple[str, str], dict]]) -> str:
    """Rows: pairs of conditions; columns: grid kinds (mean [95% CI] over seeds)."""
    kinds = list(diffs)
    pairs = list(dict.fromkeys(p for d in diffs.values() for p in d))
    rows = ["| pair | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
    for a, b in pairs:
        cells = [fmt(diffs[k].get((a, b)), 3) for k in kinds]
        rows.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _d(diff: dict, digits: int = 3) -> str:
    m, lo, hi = diff["mean"], diff["ci_low"], diff["ci_high"]
    text = f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    level = diff.get("level")
    if level is not None and abs(level - 0.95) > 1e-12:
        text += f" ({100 * level:.1f}% CI, Holm)"
    return text


#: The claims of the claims table: id, text, the two conditions, metric, paired, expected
#: sign. The ids are what a family of claims names (``claims_table(families=…)``).
CLAIMS = (
    ("trap_rate", "deceptive baseline traps red more often than honest", "deceptive",
     "honest", "trap_rate", False, +1),
    ("luring", "…because blue lures (blue-side: luring Δtrap, deceptive − honest)",
     "deceptive", "honest", "luring_delta_trap", False, +1),
    ("blue_at_fake", "deceptive blue visits the fake landmark more", "deceptive", "honest",
     "blue_at_fake", False, +1),
    *(
        (f"soo_{key}", f"SOO fine-tuning lowers {name} below the `--no-soo` control (paired "
         "by parent seed)", SOO, NO_SOO, key, True, -1)
        for key, name in (
            ("trap_rate", "trap rate"),
            ("luring_delta_trap", "luring Δtrap"),
            ("blue_at_fake", "blue at fake"),
            ("headline_noguard", "headline count"),
        )
    ),
)  # fmt: skip
#: The behavioural claim (a paired difference of per-seed behavioural differences).
BEHAVIOUR_CLAIM = (
    "soo_behaviour",
    "SOO behaviour closer to honest than to deceptive (behavioural difference, "
    "SOO–honest minus SOO–deceptive)",
)


def _claim_inputs(
    ms: Mapping[str, dict], behaviour: Mapping[tuple[str, str], dict]
) -> dict[str, tuple[str, dict, dict, str, bool, int]]:
    """Each measurable claim: id → (text, a, b, metric, paired, expected sign)."""
    out: dict[str, tuple[str, dict, dict, str, bool, int]] = {}
    for cid, text, a, b, key, paired, sign in CLAIMS:
        if a in ms and b in ms:
            out[cid] = (text, ms[a], ms[b], key, paired, sign)
    soo_hon, soo_dec = behaviour.get((SOO, "honest")), behaviour.get((SOO, "deceptive"))
    if soo_hon and soo_dec:
        per_seed = np.asarray(soo_hon["values"], float) - np.asarray(soo_dec["values"], float)
        seeds = list(range(per_seed.size))
        diff = {"seeds": seeds, "metrics": {"bd": {"values": list(per_seed)}}}
        zero = {"seeds": seeds, "metrics": {"bd": {"values": [0.0] * per_seed.size}}}
        out[BEHAVIOUR_CLAIM[0]] = (BEHAVIOUR_CLAIM[1], diff, zero, "bd", True, -1)
    return out


def claims_table(
    ms: Mapping[str, dict],
    behaviour: Mapping[tuple[str, str], dict],
    classifier: Mapping[str, Any] | None,
    rule: str = RULE,
    families: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The paper's claims, each with what this run measured and whether it shows.

    ``ms`` maps "deceptive", "honest", "soo", "no-soo" to metrics.json contents;
    ``behaviour`` holds behavioural differences keyed by pairs of those names. Under
    ``rule`` v2 (default) each difference has the primary interval (Student-t; Welch for
    the independent baselines) and, inside a family of claim ids (:data:`CLAIMS`) given
    in ``families``, the level of Holm's step-down procedure; v1: 95% percentile bootstrap.
    """
    rows = [
        "| claim | measured (difference, 95% CI) | shown? |",
        "|---|---|---|",
    ]
    inputs = _claim_inputs(ms, behaviour)
    levels = {cid: 0.95 for cid in inputs}
    if rule != "v1" and families:
        pvalues = {
            cid: difference_pvalue(a, b, key, paired, sign)
            for cid, (_, a, b, key, paired, sign) in inputs.items()
        }
        levels = holm_levels(pvalues, families)
    for cid, (text, a, b, key, paired, sign) in inputs.items():
        d = {**difference(a, b, key, paired, rule, levels[cid]), "level": levels[cid]}
        what = "trap rate " if cid == "trap_rate" else ""
        rows.append(f"| {text} | {what}{_d(d)} | {verdict(d, sign)} |")
    if classifier is not None:
        acc = list(classifier["accuracy"])
        ns = list(classifier["n_episodes"])
        full = [n for n, a in zip(ns, acc, strict=True) if a >= 1.0]
        where = f"100% from {full[0]} episodes" if full else f"best {max(acc):.3f} (N ≤ {ns[-1]})"
        rows.append(
            f"| SOO classifier separates honest from deceptive with 100% accuracy | {where} | "
            f"{SHOWN if full else '**no**'} |"
        )
    return "\n".join(rows)


#: The report's glossary: term → definition (docs/spec.md §4.3–§4.11 have the formulas).
GLOSSARY = (
    ("trap rate", "fraction of episodes that end with red trapped at the fake landmark"),
    (
        "luring Δtrap",
        "trap rate with the run's own blue minus the trap rate of the same red "
        "with a `to_goal` blue (straight to the goal): the traps blue's behaviour adds",
    ),
    (
        "deceivability",
        "trap rate of the run's red with a `to_fake` blue: does this red follow blue at all?",
    ),
    ("blue at fake", "fraction of episodes in which blue comes within 0.16 of the fake landmark"),
    (
        "blind luring Δtrap",
        "luring Δtrap of the same blue with its red slots forced to 0 "
        "at every step; closed-loop share = luring Δtrap − blind luring Δtrap",
    ),
    (
        "shuffled-red luring Δtrap",
        "luring Δtrap of the same blue shown, at every step, the red slots of another "
        "episode of the same evaluation batch (a plausible red that is not the real one, "
        "in or out of sight as in that episode); closed-loop share (shuffled red) = "
        "luring Δtrap − shuffled-red luring Δtrap",
    ),
    (
        "counterfactual-red luring Δtrap",
        "luring Δtrap of the same blue shown, at every step, the red slots of an episode "
        "of the same batch whose red differs in its hidden variable (the other type of a "
        "scripted red; a speed in the other half of red's speed range); not defined, "
        '"–", where red has no hidden variable; closed-loop share (counterfactual red) = '
        "luring Δtrap − counterfactual-red luring Δtrap",
    ),
    (
        "ceiling",
        "of a donor probe (shuffled or counterfactual red): the share of episodes whose "
        "donor red differs in the hidden variable, the most of a luring that depends on "
        "that variable the probe can remove (1 for the counterfactual probe; about "
        "2p(1 − p) for the shuffled probe with a contrarian probability p)",
    ),
    (
        "trapped steps",
        "mean number of steps per episode (trapped or not) that end with red trapped",
    ),
    (
        "red decodability D",
        "probe v2 (docs/spec.md §4.15): out-of-fold R² of a ridge probe predicting red's "
        "true offset (red − blue position) from one hidden layer of blue on in-sight "
        "states, 5 folds grouped by episode, floored at 0; the larger of h1 and h2. "
        "Without red's slots: the same with slots 6–7 set to 0 (what the rest of blue's "
        "observation reveals)",
    ),
    (
        "red-slot weight norm",
        "Frobenius norm of blue's first-layer actor weights on red's observation slots "
        "(6–7, normalised input); other-slot norm: on its other eight slots, for scale",
    ),
    (
        "pn, c; headline",
        "a deceptive-action record is a step in which blue moved more "
        "toward the fake landmark than toward the goal: pn = projection of its movement on the "
        "direction to the fake, c = cosine between the directions to goal and fake; headline = "
        "visible records per episode with pn > 0.7 and c < 0.6; guard 0.01 skips steps in "
        "which blue moved less than 0.01, guard 0 is the paper's counter",
    ),
    (
        "SOO value",
        "log(MSE + 1e-25) between blue's hidden activations on its observation and "
        "on the same observation with a fictitious red in sight (trap flag zeroed, as the "
        "paper); lower = more self-other overlap; the tables give the mean over trained seeds "
        "of each seed's mean over its out-of-sight steps, the classifier figure the mean over "
        "all out-of-sight steps of all seeds pooled (hence different numbers)",
    ),
    (
        "SOO classifier",
        "a unit (trained seed, evaluation seeds pooled) is classified "
        "correctly when the honest model's mean SOO value over its first N episodes is lower "
        "than the deceptive model's; undecided = units without an out-of-sight step on a side "
        "in those episodes, counted as wrong (so accuracy can fall below chance at small N)",
    ),
    (
        "saturated",
        "an actor whose |pre-tanh output| exceeds 5 on more than 90% of the "
        "evaluation (or replay) observations: it no longer responds to its input",
    ),
    (
        "verdicts",
        "**yes**: the CI of the difference lies on the claimed side of 0; "
        "**not shown**: the CI includes 0; **no** (opposite sign): the CI lies on the other "
        "side. Verdict rule v2: the CI is the 95% Student-t interval (Welch for independent "
        "runs), at Holm's adjusted level inside a declared family of claims; rule v1 used "
        "the 95% percentile bootstrap",
    ),
)


def glossary() -> str:
    """The glossary as a Markdown list."""
    return "\n".join(f"- **{term}**: {text}" for term, text in GLOSSARY)


def few_seeds_note(metrics: Sequence[dict], few: int = 5) -> str:
    """A warning line when a run has fewer than ``few`` trained seeds, else ""."""
    small = [m["label"] for m in metrics if len(m["seeds"]) < few]
    if not small:
        return ""
    return (
        f"*Fewer than {few} trained seeds behind {', '.join(small)}: bootstrap CIs over so "
        "few seeds are too narrow to trust.*"
    )


def classifier_table(classifier: Mapping[str, Any]) -> str:
    """The SOO classifier's accuracy (and undecided share) per number of episodes, with
    the note on how undecided units count."""
    ns = classifier["n_episodes"]
    rows = [
        "| episodes N | " + " | ".join(str(n) for n in ns) + " |",
        "|---|" + "---|" * len(ns),
        "| accuracy | " + " | ".join(f"{a:.3f}" for a in classifier["accuracy"]) + " |",
    ]
    if "undecided" in classifier:
        rows.append(
            "| undecided | " + " | ".join(f"{u:.3f}" for u in classifier["undecided"]) + " |"
        )
    note = (
        "Undecided units (no out-of-sight step on a side in their first N episodes) count as "
        "wrong, which is why accuracy can be below 0.5 at N = 1."
    )
    return "\n".join(rows) + "\n\n" + note


def provenance_block(
    command: str, provenance: Mapping[str, str], revision: str, timings: Mapping[str, float]
) -> str:
    """A report's "How this was made": the command, the provenance table, the code
    revision and the wall time per stage."""
    lines = [
        "```bash",
        command,
        "```",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in provenance.items()],
        "",
        f"Recorded when the first stage ran; this report was written at code revision {revision}.",
        "",
        "Wall time per stage (the run that did it; a stage skipped later keeps its time):",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in timings.items()],
        f"| **total** | **{sum(timings.values()):.0f}** |",
    ]
    return "\n".join(lines)
