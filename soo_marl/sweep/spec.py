"""Study files: a documented YAML format for a graph of soo-marl stages, and its validation.

A study file lists stages; each has a ``name``, a ``kind`` (a soo-marl command: ``train``,
``finetune``, ``evaluate``, ``classify``, ``plot``, ``report``), the ``options`` of that
command (``episodes: 10000``, ``soo: false``, ``freeze-red: true``, …) and what it depends
on. Run directories are not options: the sweep puts stage NAME's output at ``OUT/NAME``
and passes the paths. References to other stages:

- ``finetune``: ``parent`` — the train stage it starts from;
- ``evaluate``: ``runs`` — the train/finetune stages evaluated together; optional
  ``cross_with`` — cross-play only with these;
- ``classify``: ``deceptive`` and ``honest`` — evaluated stages (lists pair up in order);
- ``plot``: ``runs``; optional ``classifier`` — a classify stage;
- ``report``: ``runs`` — condition → stage (``deceptive``, ``honest``, ``soo``,
  ``no-soo``), ``classifier``, ``figures`` (a plot stage);
- any stage: ``after`` — stages that must finish first.

A ``train`` stage may instead give ``copy_from: PATH`` (a trained run directory, e.g.
``docs/results/models/paper_r0.5/deceptive``): its weights and config are copied, nothing
is trained (options are then not allowed).

A reference may end in ``*`` to mean every stage whose name starts with what precedes it
(in file order). ``parameters`` give defaults for ``${name}`` placeholders in names,
options and references (a value that is only a placeholder keeps its type), and
``matrix`` expands one stage into several: its keys are lists or ``{range: [start,
stop(, step)]}`` of equal length, zipped, each value available as ``${key}``.
``resources`` (``cpus``, ``gpus``, ``memory_gb``) override the defaults of
:mod:`soo_marl.sweep.costs`. See ``studies/README.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from soo_marl.config import load_yaml

KINDS = ("train", "finetune", "evaluate", "classify", "plot", "report")
#: Kinds whose output is a run directory.
RUN_KINDS = ("train", "finetune")
#: Reference fields per kind: field → (single or list, kinds it may name).
REFERENCES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "train": {},
    "finetune": {"parent": ("one", ("train",))},
    "evaluate": {"runs": ("list", RUN_KINDS), "cross_with": ("list", RUN_KINDS)},
    "classify": {"deceptive": ("list", RUN_KINDS), "honest": ("list", RUN_KINDS)},
    "plot": {"runs": ("list", RUN_KINDS), "classifier": ("one", ("classify",))},
    "report": {
        "runs": ("map", RUN_KINDS),
        "classifier": ("one", ("classify",)),
        "figures": ("one", ("plot",)),
    },
}
#: References a stage of each kind must have.
REQUIRED = {
    "finetune": ("parent",),
    "evaluate": ("runs",),
    "classify": ("deceptive", "honest"),
    "plot": ("runs",),
    "report": ("runs", "classifier", "figures"),
}
#: Options the sweep sets itself (from the stage's name and references).
RESERVED = {
    "train": {"run-dir", "resume"},
    "finetune": {"from", "run-dir", "resume"},
    "evaluate": {"runs", "cross-with", "quiet"},
    "classify": {"deceptive", "honest", "out"},
    "plot": {"runs", "out", "classifier"},
    "report": {"deceptive", "honest", "soo", "no-soo", "classifier", "figures", "out"},
}
STAGE_KEYS = {"name", "kind", "options", "after", "resources", "matrix", "copy_from", *(
    k for refs in REFERENCES.values() for k in refs
)}  # fmt: skip
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class StudyError(ValueError):
    """A study file that cannot be run (one clear line says why)."""


@dataclass
class Stage:
    """One stage of a study, after expansion and substitution."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    resources: dict[str, float] = field(default_factory=dict)
    #: A trained run directory to copy instead of training (train stages only).
    copy_from: str | None = None

    def deps(self) -> list[str]:
        """Names of the stages this one needs (references and ``after``)."""
        out: list[str] = []
        for value in self.refs.values():
            for name in value.values() if isinstance(value, dict) else _as_list(value):
                if name not in out:
                    out.append(name)
        return out + [a for a in self.after if a not in out]

    def spec(self) -> dict[str, Any]:
        """Plain data that identifies the stage's work (for the settings check)."""
        data = asdict(self)
        data.pop("resources")
        return data


@dataclass
class Study:
    """A validated study: its stages in file order (dependency order is computed)."""

    name: str
    description: str
    parameters: dict[str, Any]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def order(self) -> list[Stage]:
        """Stages in an order in which every dependency comes first (file order kept
        where the dependencies allow)."""
        done: set[str] = set()
        out: list[Stage] = []
        pending = list(self.stages)
        while pending:
            ready = [s for s in pending if all(d in done for d in s.deps())]
            if not ready:  # validate() rules this out
                raise StudyError("the stages depend on each other in a cycle")
            out.append(ready[0])
            done.add(ready[0].name)
            pending.remove(ready[0])
        return out

    def digest(self) -> str:
        """A short hash of everything that determines the study's results."""
        data = {"parameters": self.parameters, "stages": [s.spec() for s in self.stages]}
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _ref_names(value: Any) -> list:
    """The stage names a reference holds: a name, a list of names or a {label: name} map."""
    if value is None:
        return []
    return list(value.values()) if isinstance(value, dict) else _as_list(value)


def substitute(value: Any, params: dict[str, Any], where: str) -> Any:
    """``${name}`` placeholders of ``value`` (recursively) replaced by ``params``."""
    if isinstance(value, dict):
        return {k: substitute(v, params, where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params, where) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(name: str) -> Any:
        if name not in params:
            raise StudyError(f"{where}: unknown parameter ${{{name}}}")
        return params[name]

    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(lookup(m.group(1))), value)


def _matrix(spec: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The zipped values of a ``matrix`` block (one dict per expanded stage)."""
    columns = {}
    for key, values in spec.items():
        if isinstance(values, dict) and set(values) == {"range"}:
            args = _as_list(values["range"])
            if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
                raise StudyError(f"{where}: matrix {key}: range takes 1-3 integers")
            values = list(range(*args))
        if not isinstance(values, list) or not values:
            raise StudyError(f"{where}: matrix {key} must be a non-empty list or a range")
        columns[key] = values
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise StudyError(f"{where}: matrix lists must have equal lengths, got {sorted(lengths)}")
    n = lengths.pop()
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> Study:
    """Read and validate a study file; ``overrides`` replace parameter defaults.

    Raises :class:`StudyError` (one line) for an unknown stage kind, option or parameter,
    a missing or wrongly typed reference, a cycle or two stages with the same output.
    """
    path = Path(path)
    try:
        raw = load_yaml(path)
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    return parse_study(raw, str(path), overrides)


def parse_study(
    raw: dict[str, Any], source: str = "study", overrides: dict[str, Any] | None = None
) -> Study:
    """Validate the plain data of a study file (see :func:`load_study`)."""
    unknown = set(raw) - {"name", "description", "parameters", "stages"}
    if unknown:
        raise StudyError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    params = dict(raw.get("parameters") or {})
    for key, value in (overrides or {}).items():
        if key not in params:
            raise StudyError(f"{source}: no parameter {key!r} (has: {', '.join(params) or 'none'})")
        params[key] = value
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise StudyError(f"{source}: 'stages' must be a non-empty list")
    stages: list[Stage] = []
    for i, item in enumerate(stages_raw):
        where = f"{source}: stage {i + 1}"
        if not isinstance(item, dict):
            raise StudyError(f"{where}: a stage is a mapping with name, kind and options")
        extra = set(item) - STAGE_KEYS
        if extra:
            raise StudyError(f"{where}: unknown key(s) {sorted(extra)}")
        rows = _matrix(item["matrix"], where) if "matrix" in item else [{}]
        for row in rows:
            stages.append(_stage(item, {**params, **row}, where))
    study = Study(
        str(raw.get("name") or Path(source).stem),
        str(raw.get("description") or ""),
        params,
        stages,
    )
    _resolve_patterns(study, source)
    validate(study, source)
    return study


def _stage(item: dict[str, Any], params: dict[str, Any], where: str) -> Stage:
    item = substitute(copy.deepcopy(item), params, where)
    name, kind = item.get("name"), item.get("kind")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name or ""):
        raise StudyError(f"{where}: a stage needs a name of letters, digits, _ . - /")
    where = f"{where} ({name})"
    if kind not in KINDS:
        raise StudyError(f"{where}: unknown stage kind {kind!r}; allowed: {', '.join(KINDS)}")
    refs = {}
    for key in REFERENCES[kind]:
        if key in item:
            refs[key] = item[key]
    general = {"name", "kind", "options", "after", "resources", "matrix", "copy_from"}
    stray = [k for k in item if k in STAGE_KEYS - general and k not in REFERENCES[kind]]
    if stray:
        raise StudyError(f"{where}: a {kind} stage has no {', '.join(stray)}")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise StudyError(f"{where}: options must be a mapping")
    resources = item.get("resources") or {}
    bad = set(resources) - {"cpus", "gpus", "memory_gb"}
    if bad:
        raise StudyError(f"{where}: unknown resource(s) {sorted(bad)}")
    copy_from = item.get("copy_from")
    if copy_from is not None:
        if kind != "train" or options:
            raise StudyError(f"{where}: copy_from is for a train stage without options")
    return Stage(
        name,
        kind,
        {str(k): v for k, v in options.items()},
        refs,
        [str(a) for a in _as_list(item.get("after") or [])],
        {k: float(v) for k, v in resources.items()},
        None if copy_from is None else str(copy_from),
    )


def _resolve_patterns(study: Study, source: str) -> None:
    """References ending in ``*`` become the list of stages with that name prefix."""
    names = [s.name for s in study.stages]

    def expand(ref: Any) -> list[str]:
        out = []
        for r in _as_list(ref):
            if isinstance(r, str) and r.endswith("*"):
                hits = [n for n in names if n.startswith(r[:-1])]
                if not hits:
                    raise StudyError(f"{source}: pattern {r!r} matches no stage")
                out += hits
            else:
                out.append(r)
        return out

    for s in study.stages:
        for key, (shape, _) in REFERENCES[s.kind].items():
            if key not in s.refs:
                continue
            if shape == "map":
                if not isinstance(s.refs[key], dict):
                    raise StudyError(f"{source}: stage {s.name}: {key} maps conditions to stages")
                s.refs[key] = {str(k): str(v) for k, v in s.refs[key].items()}
            elif shape == "list":
                if not all(isinstance(r, str) for r in _as_list(s.refs[key])):
                    raise StudyError(
                        f"{source}: stage {s.name}: {key} is a stage name or a list of names"
                    )
                s.refs[key] = expand(s.refs[key])
            else:
                s.refs[key] = str(s.refs[key])
        s.after = expand(s.after) if s.after else []


def _command_options(kind: str) -> dict[str, click.Parameter]:
    from soo_marl.cli import main

    cmd = main.commands[kind]
    out = {}
    for p in cmd.params:
        for opt in (*p.opts, *getattr(p, "secondary_opts", [])):
            if opt.startswith("--"):
                out[opt[2:]] = p
    return out


def validate(study: Study, source: str = "study") -> None:
    """Unknown options, missing or wrong references, required references, duplicate
    names (= the same output directory) and cycles are refused."""
    by_name: dict[str, Stage] = {}
    for s in study.stages:
        if s.name in by_name:
            raise StudyError(
                f"{source}: two stages write {s.name!r} (stage names are output directories)"
            )
        by_name[s.name] = s
    for s in study.stages:
        where = f"{source}: stage {s.name}"
        allowed = _command_options(s.kind)
        for opt in s.options:
            if opt in RESERVED[s.kind]:
                raise StudyError(f"{where}: {opt!r} is set by the sweep, not an option")
            if opt not in allowed:
                known = sorted(k for k in allowed if k not in RESERVED[s.kind] and k != "help")
                raise StudyError(
                    f"{where}: unknown option {opt!r} for {s.kind}; options: {', '.join(known)}"
                )
        for key, (_, kinds) in REFERENCES[s.kind].items():
            value = s.refs.get(key)
            if value is None:
                continue
            for name in _ref_names(value):
                if name not in by_name:
                    raise StudyError(f"{where}: {key} names a missing stage {name!r}")
                if by_name[name].kind not in kinds:
                    raise StudyError(
                        f"{where}: {key} must name a {' or '.join(kinds)} stage, "
                        f"{name!r} is a {by_name[name].kind} stage"
                    )
        for a in s.after:
            if a not in by_name:
                raise StudyError(f"{where}: after names a missing stage {a!r}")
        for key in REQUIRED.get(s.kind, ()):
            if not s.refs.get(key):
                raise StudyError(f"{where}: a {s.kind} stage needs {key}")
        if s.kind == "evaluate":
            extra = set(_ref_names(s.refs.get("cross_with"))) - set(_ref_names(s.refs.get("runs")))
            if extra:
                raise StudyError(
                    f"{where}: cross_with names stages that are not among its runs: "
                    f"{', '.join(sorted(extra))}"
                )
        if s.kind == "classify" and len(_as_list(s.refs["deceptive"])) != len(
            _as_list(s.refs["honest"])
        ):
            raise StudyError(f"{where}: deceptive and honest must list as many stages")
    _check_cycles(study, source)
    _add_evaluation_deps(study, source)
    _check_cycles(study, source)


def _check_cycles(study: Study, source: str) -> None:
    state: dict[str, int] = {}
    deps = {s.name: s.deps() for s in study.stages}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise StudyError(f"{source}: the stages form a cycle: {' -> '.join(cycle)}")
        if state.get(name) == 2:
            return
        state[name] = 1
        for d in deps[name]:
            visit(d, [*path, name])
        state[name] = 2

    for s in study.stages:
        visit(s.name, [])


def evaluated_runs(study: Study) -> dict[str, str]:
    """Run stage → the evaluate stage that evaluates it (the last one in file order)."""
    out = {}
    for s in study.stages:
        if s.kind == "evaluate":
            for r in s.refs["runs"]:
                out[r] = s.name
    return out


def _add_evaluation_deps(study: Study, source: str) -> None:
    """classify, plot and report read evaluation files: they depend on the evaluate stages
    that write them (one must exist)."""
    evaluated = evaluated_runs(study)
    for s in study.stages:
        if s.kind not in ("classify", "plot", "report"):
            continue
        runs: list[str] = []
        for key in ("runs", "deceptive", "honest"):
            value = s.refs.get(key)
            if value is not None:
                runs += list(value.values()) if isinstance(value, dict) else _as_list(value)
        for r in runs:
            if r not in evaluated:
                raise StudyError(f"{source}: stage {s.name}: run {r!r} is never evaluated")
            if evaluated[r] not in s.after:
                s.after.append(evaluated[r])
