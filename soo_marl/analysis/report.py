"""``report.md`` of a reproduction: the paper's claims as measured, the tables, the figures,
and how the numbers were made."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from soo_marl import rundir
from soo_marl.analysis import tables
from soo_marl.analysis.compare import RULE, behavioural_differences, interval_name

#: Pairs of conditions whose behavioural difference a report shows.
PAIRS = (
    (rundir.SOO, "honest"),
    (rundir.SOO, "deceptive"),
    (rundir.NO_SOO, "honest"),
    (rundir.NO_SOO, "deceptive"),
    ("honest", "deceptive"),
)
#: Grid kinds of the behavioural differences, with their column titles.
GRID_COLUMNS = (("freq_noguard", "no guard (paper)"), ("freq_guard", "guard 0.01"))


def condition_grids(runs: Mapping[str, Path], kind: str) -> dict[str, np.ndarray]:
    """One kind of (S, 100, 100) threshold grid per condition, for the runs that have it."""
    out = {}
    for name, run in runs.items():
        grids = rundir.read_grids(run)
        if grids is not None and kind in grids:
            out[name] = grids[kind]
    return out


def behaviour(runs: Mapping[str, Path]) -> dict[str, dict[tuple[str, str], dict]]:
    """Behavioural differences of :data:`PAIRS` per grid kind (pairs whose grids are
    missing or have different seeds are left out)."""
    out = {}
    for kind, title in GRID_COLUMNS:
        grids = condition_grids(runs, kind)
        pairs = [
            (a, b)
            for a, b in PAIRS
            if a in grids and b in grids and grids[a].shape == grids[b].shape
        ]
        out[title] = behavioural_differences(grids, pairs)
    return out


def write_report(
    out: Path,
    runs: Mapping[str, Path],
    classifier: Mapping[str, Any],
    title: str,
    scale: str,
    command: str,
    provenance: Mapping[str, str],
    revision: str,
    timings: Mapping[str, float],
    figures: Path | None = None,
    path: Path | None = None,
) -> Path:
    """Write ``report.md`` for the conditions ``runs`` (deceptive, honest, soo, no-soo →
    evaluated run directories), linking the PNG figures of ``figures`` (default
    ``out/figures``); ``path`` defaults to ``out/report.md``."""
    path = Path(path) if path is not None else Path(out) / "report.md"
    figures = Path(figures) if figures is not None else Path(out) / "figures"
    ms = {name: rundir.require_metrics(run) for name, run in runs.items()}
    figs = sorted(figures.glob("*.png"))
    rel = os.path.relpath(figures, path.parent)
    beh = behaviour(runs)
    lines = [
        f"# {title}",
        "",
        scale,
        "",
        *_claims_sections(ms, beh, classifier),
        *_probe_sections(list(ms.values())),
        *_representation_sections(list(ms.values())),
        *_closing_sections(classifier, figs, rel, command, provenance, revision, timings),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _claims_sections(
    ms: Mapping[str, dict],
    beh: Mapping[str, Mapping[tuple[str, str], dict]],
    classifier: Mapping[str, Any],
) -> list[str]:
    """Report lines: the paper's claims, the results table and the behavioural differences."""
    return [
        "## The paper's claims, as measured here",
        "",
        f"Differences with a 95% {interval_name(RULE)} over trained seeds (verdict rule "
        f"{RULE}, docs/spec.md §4.11; no family of claims is declared, so no Holm "
        "adjustment); the verdict words are defined under *Terms* at the end.",
        "",
        tables.claims_table(ms, beh["no guard (paper)"], classifier),
        "",
        "## Results (mean [95% bootstrap CI] over trained seeds)",
        "",
        tables.results_table(list(ms.values())),
        "",
        tables.few_seeds_note(list(ms.values())),
        "",
        "## Behavioural differences (docs/spec.md §4.7; mean over the grid of squared differences)",
        "",
        tables.behaviour_table(beh),
        "",
    ]


def _probe_sections(ms: list[dict]) -> list[str]:
    """Report lines: the probes and cross-play table, and the blind-blue probe table."""
    return [
        "## Probes and cross-play (trap rate of each red with …)",
        "",
        tables.probe_table(ms),
        "",
        "## Does blue's luring need to see red? (blind-blue probe, docs/spec.md §4.4)",
        "",
        "The same blue, red and start states, with blue's red slots forced to 0 at every "
        'step (blind: the input blue learned as "red out of sight"), or replaced by '
        "those of another episode of the same batch (shuffled red: a plausible red that "
        "is not the real one), or of an episode whose red differs in its hidden variable "
        "(counterfactual red: the other type, or a distant speed; where red has one); "
        "closed-loop share = luring Δtrap − blind (or shuffled-red, or counterfactual-red) "
        "luring Δtrap. A donor probe's ceiling is the share of its donors whose red "
        "differs in the hidden variable.",
        "",
        tables.blind_table(ms),
        "",
    ]


def _representation_sections(ms: list[dict]) -> list[str]:
    """Report lines: what blue knows about red, and the SOO value by trap state."""
    return [
        "## What blue knows about red (docs/spec.md §4.3, §4.10, §4.15, §4.16)",
        "",
        "Trapped steps per episode; red decodability D (probe v2: cross-validated R² of a "
        "ridge probe of red's true offset from blue's hidden layers on in-sight states, "
        "floored at 0; with and without red's slots); the "
        "norm of blue's first-layer weights on red's slots; actor saturation.",
        "",
        tables.representation_table(ms),
        "",
        "## SOO value by trap state (docs/spec.md §4.8)",
        "",
        "Mean over trained seeds of each seed's mean SOO value over the given out-of-sight "
        'steps; "flag kept": the other observation keeps the trap flag.',
        "",
        tables.soo_state_table(ms),
        "",
    ]


def _closing_sections(
    classifier: Mapping[str, Any],
    figs: list[Path],
    rel: str,
    command: str,
    provenance: Mapping[str, str],
    revision: str,
    timings: Mapping[str, float],
) -> list[str]:
    """Report lines: the classifier table, the figure links, provenance and the glossary."""
    return [
        "## SOO classifier (trained seeds, evaluation seeds pooled)",
        "",
        tables.classifier_table(classifier),
        "",
        "## Figures",
        "",
        *[f"![{f.stem}]({rel}/{f.name})" for f in figs],
        "",
        "## How this was made",
        "",
        tables.provenance_block(command, provenance, revision, timings),
        "",
        "## Terms",
        "",
        "Definitions in full, with formulas: `docs/spec.md` §4.3–§4.11 of the soo-marl repository.",
        "",
        tables.glossary(),
    ]


def write_report_files(
    path: Path,
    runs: Mapping[str, Path],
    classifier_json: Path,
    figures: Path,
    title: str,
    scale: str = "",
    command: str = "",
) -> Path:
    """:func:`write_report` from files: the classifier JSON, and, from the report's folder
    (a study's output folder), ``provenance.json``, ``timings.json`` and ``command.txt``."""
    from soo_marl.provenance import PROVENANCE, provenance, revision

    path = Path(path)
    folder = path.parent

    def read(name: str) -> Any:
        f = folder / name
        return json.loads(f.read_text()) if f.exists() else None

    if not command and (folder / "command.txt").exists():
        command = (folder / "command.txt").read_text().strip()
    return write_report(
        folder,
        runs,
        json.loads(Path(classifier_json).read_text()),
        title=title,
        scale=scale,
        command=command,
        provenance=read(PROVENANCE) or provenance(),
        revision=revision(),
        timings=read("timings.json") or {},
        figures=figures,
        path=path,
    )
