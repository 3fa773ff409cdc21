"""The per-seed values of an evaluated run, in one small JSON beside its weights
(``seed_values.json``, docs/spec.md §4.13): every interval a document quotes can be
recomputed from the committed model folder without the run's evaluation files.

Schema ``soo-marl seed values 1``: ``label``, ``seeds`` (the trained seeds, in the order
of every list below), ``evaluation`` (episodes per evaluation seed, the evaluation seeds,
the cross-play partners, the probes and, from evaluations that record them, red's hidden
variable and the donor probes' ceilings), ``meta`` (the run's kind, baseline, episodes),
``provenance`` (package versions, CPU, git revision of the evaluating code) and
``measures``: the dotted path of each per-seed measure of ``eval/metrics.json`` (e.g.
``luring_delta_trap``, ``metrics.trap_rate``, ``cross_play.honest r0.5.luring_delta_trap``)
→ its values, one per seed (None where a seed has no value).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from soo_marl import metrics, rundir

SCHEMA = "soo-marl seed values 1"
FILE = "seed_values.json"
#: metrics.json entries kept under ``evaluation`` where present: red's hidden variable and
#: the donor probes' ceilings (docs/spec.md §4.4, §4.13).
CEILING_KEYS = ("hidden_variable", "shuffled_ceiling", "counterfactual_ceiling")


def _summaries(x: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, list]]:
    """(dotted path, per-seed values) of every per-seed summary in ``x``."""
    if not isinstance(x, Mapping):
        return
    if "values" in x and "mean" in x:
        yield ".".join(path), list(x["values"])
        return
    for key, value in x.items():
        yield from _summaries(value, (*path, str(key)))


def seed_values(result: Mapping[str, Any], provenance: Mapping[str, str]) -> dict[str, Any]:
    """The seed-values record of an evaluation result (``eval/metrics.json``)."""
    measures = dict(_summaries({k: v for k, v in result.items() if k != "grids_mean"}))
    evaluation = {
        "episodes_per_eval_seed": result["episodes_per_eval_seed"],
        "eval_seeds": list(result["eval_seeds"]),
        "cross_play": sorted(result.get("cross_play") or {}),
        "probes": sorted(result.get("probes") or {}),
        "decodability_probe": result.get("decodability_probe") or {"version": 1},
    }
    for key in CEILING_KEYS:  # one number per run, not per seed (docs/spec.md §4.4)
        if key in result:
            evaluation[key] = result[key]
    return {
        "schema": SCHEMA,
        "label": result["label"],
        "seeds": list(result["seeds"]),
        "evaluation": evaluation,
        "meta": dict(result.get("meta") or {}),
        "provenance": dict(provenance),
        "measures": measures,
    }


def write_seed_values(run_dir: str | Path, dest: str | Path | None = None) -> Path:
    """Write the seed values of an evaluated run to ``dest`` (a folder; default the run's
    ``eval/``) and return the file; provenance is this process's (the evaluating code)."""
    from soo_marl.provenance import provenance

    record = seed_values(rundir.require_metrics(run_dir), provenance("cpu"))
    path = Path(dest if dest is not None else rundir.eval_dir(run_dir)) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def read_seed_values(path: str | Path) -> dict[str, Any]:
    """A ``seed_values.json`` (a folder holding one, or the file); ValueError if it is not
    one of this schema."""
    path = Path(path)
    path = path / FILE if path.is_dir() else path
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a {SCHEMA!r} file")
    return data


def summary(record: Mapping[str, Any], measure: str, method: str = "t") -> dict[str, Any]:
    """A measure's mean, SD and interval over seeds, recomputed from a seed-values record
    (``method`` as :func:`soo_marl.metrics.summarize`; "t", the verdicts' primary)."""
    if measure not in record["measures"]:
        raise KeyError(f"{record['label']}: no measure {measure!r}")
    values = [float("nan") if v is None else v for v in record["measures"][measure]]
    return metrics.summarize(values, method=method)
