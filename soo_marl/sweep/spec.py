"""Study files: a documented YAML format for a graph of soo-marl stages, and its validation.

A study file lists stages; each has a ``name``, a ``kind`` (``train``, ``stack``,
``finetune``, ``evaluate``, ``classify``, ``plot``, ``report``, ``gate`` or
``analysis``: the task it
runs, :data:`KINDS`), its ``options`` (the task's settings by config field name, with
dashes or underscores: ``episodes: 10000``, ``soo: false``, ``freeze-red: true``, …) and
what it depends on. Paths are not options: the sweep puts stage NAME's output at
``OUT/NAME`` and passes the paths. Each stage becomes a typed task
(:mod:`soo_marl.tasks`), built and checked when the study is loaded (:func:`build_tasks`);
its references to other stages:

- ``finetune``: ``parent`` — the train or stack stage it starts from;
- ``evaluate``: ``runs`` — the run stages (train, stack, finetune) evaluated together;
  optional ``cross_with`` — cross-play only with these;
- ``classify``: ``deceptive`` and ``honest`` — evaluated stages (lists pair up in order);
- ``plot``: ``runs``; optional ``classifier`` — a classify stage;
- ``report``: ``runs`` — condition → stage (``deceptive``, ``honest``, ``soo``,
  ``no-soo``), ``classifier``, ``figures`` (a plot stage);
- ``gate``: ``runs`` — the rule's labels → evaluated stages; the stages after a gate
  that did not pass, and those that read their output, are not run ("gated");
- ``analysis``: none — the report of the study's ``analysis:`` block from its runs;
- any stage: ``after`` — stages that must finish first.

A ``stack`` stage names no stages: its ``sources`` option lists trained run directories.

A ``train`` stage may instead give ``copy_from: PATH`` (a trained run directory, e.g.
``docs/results/models/paper_r0.5/deceptive``): its weights and config are copied, nothing
is trained (options are then not allowed).

A reference may end in ``*`` to mean every stage whose name starts with what precedes it
(in file order). ``parameters`` give defaults for ``${name}`` placeholders in names,
options and references (a value that is only a placeholder keeps its type;
``${name:spec}`` formats the value with a Python format spec, e.g. ``${episodes:,}`` →
``14,000``), and an option whose value is null is left out (the task's default
applies). ``presets`` name sets of parameter values: choosing one (``--preset``; else the
first) applies its values on top of ``parameters`` and makes ``${preset}`` its name.
``matrix`` expands one stage into several: its keys are lists or ``{range: [start,
stop(, step)]}`` of equal length, zipped, each value available as ``${key}``.
``resources`` (``cpus``, ``gpus``, ``memory_gb``) override the estimates of the stage's
task (:meth:`soo_marl.tasks.Task.estimate`, :mod:`soo_marl.sweep.costs`). See
``studies/README.md``.

``families`` (optional) declares, before the runs, the families of comparisons whose
verdicts are adjusted together (Holm, docs/spec.md §4.11): family name → list of stage
names (the treatments; the analysis of the study knows each one's control). The sweep
only validates them; they do not change what runs (nor the study's digest).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from soo_marl.config import load_yaml
from soo_marl.tasks import RUN_KINDS, TASKS, CopyTask, StudyContext, Task

__all__ = ["RUN_KINDS", "Stage", "Study", "StudyError", "build_tasks", "load_study", "parse_study"]

#: The kinds of stage a study file may name, each the task it runs (a train stage with
#: ``copy_from`` runs a :class:`~soo_marl.tasks.CopyTask`).
KINDS: dict[str, type[Task]] = {k: t for k, t in TASKS.items() if k != "copy"}

#: Keys every stage may have, besides the reference keys of its kind.
GENERAL_KEYS = {"name", "kind", "options", "after", "resources", "matrix", "copy_from"}
STAGE_KEYS = GENERAL_KEYS | {k for kind in KINDS.values() for k in kind.references}
#: Top-level keys of a study file.
TOP_KEYS = {"name", "description", "parameters", "presets", "stages", "families", "analysis"}
_PLACEHOLDER = re.compile(r"\$\{(\w+)(?::([^}]*))?\}")


class StudyError(ValueError):
    """A study file that cannot be run (one clear line says why)."""


def as_list(value: Any) -> list:
    """A list as it is, a tuple as a list, anything else as a one-element list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def stage_output(stage: Stage, out: Path) -> Path:
    """Where a stage writes: ``OUT/<name>`` (a run directory or folder) or, for a report,
    the Markdown file ``OUT/<name>.md``."""
    return out / f"{stage.name}{KINDS[stage.kind].output_suffix}"


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

    def ref_names(self) -> list[str]:
        """Names of the stages whose output this one reads (its references)."""
        out: list[str] = []
        for value in self.refs.values():
            for name in value.values() if isinstance(value, dict) else as_list(value):
                if name not in out:
                    out.append(name)
        return out

    def deps(self) -> list[str]:
        """Names of the stages this one needs (references and ``after``)."""
        out = self.ref_names()
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
    #: Families of comparisons for Holm's adjustment: name → treatment stage names.
    families: dict[str, list[str]] = field(default_factory=dict)
    #: The study's ``analysis:`` block (placeholders substituted), read by
    #: :mod:`soo_marl.analysis.study`; empty without one.
    analysis: dict[str, Any] = field(default_factory=dict)

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


def _ref_names(value: Any) -> list:
    """The stage names a reference holds: a name, a list of names or a {label: name} map."""
    if value is None:
        return []
    return list(value.values()) if isinstance(value, dict) else as_list(value)


def substitute(value: Any, params: dict[str, Any], where: str) -> Any:
    """``${name}`` placeholders of ``value`` (recursively) replaced by ``params``; a string
    that is only ``${name}`` takes the value itself, ``${name:spec}`` its text formatted
    with the format spec (``${episodes:,}`` → ``14,000``)."""
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

    def text(m: re.Match) -> str:
        value = lookup(m.group(1))
        if m.group(2) is None:
            return str(value)
        try:
            return format(value, m.group(2))
        except (TypeError, ValueError):
            raise StudyError(
                f"{where}: cannot format {value!r} as {{:{m.group(2)}}} (${{{m.group(1)}}})"
            ) from None

    whole = _PLACEHOLDER.fullmatch(value)
    if whole and whole.group(2) is None:
        return lookup(whole.group(1))
    return _PLACEHOLDER.sub(text, value)


def _matrix(spec: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The zipped values of a ``matrix`` block (one dict per expanded stage)."""
    columns = {}
    for key, values in spec.items():
        if isinstance(values, dict) and set(values) == {"range"}:
            args = as_list(values["range"])
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


def load_study(
    path: str | Path, overrides: dict[str, Any] | None = None, preset: str | None = None
) -> Study:
    """Read and validate a study file; ``preset`` chooses one of its ``presets`` (default:
    the first, if it has any), ``overrides`` replace parameter values.

    Raises :class:`StudyError` (one line) for an unknown stage kind, option or parameter,
    a missing or wrongly typed reference, a cycle or two stages with the same output.
    """
    path = Path(path)
    try:
        raw = load_yaml(path)
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    return parse_study(raw, str(path), overrides, preset)


def parse_study(
    raw: dict[str, Any],
    source: str = "study",
    overrides: dict[str, Any] | None = None,
    preset: str | None = None,
) -> Study:
    """Validate the plain data of a study file (see :func:`load_study`)."""
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise StudyError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    name = str(raw.get("name") or Path(source).stem)
    description = str(raw.get("description") or "")
    params = dict(raw.get("parameters") or {})
    if raw.get("presets") is not None:
        preset, values, description = _preset(raw, source, preset)
        params = {"preset": preset, **params, **values}
        name = f"{name}-{preset}"
    elif preset is not None:
        raise StudyError(f"{source}: has no presets (asked for {preset!r})")
    for key, value in (overrides or {}).items():
        if key == "preset" and raw.get("presets") is not None:
            raise StudyError(f"{source}: choose a preset with --preset, not --set preset=…")
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
    study = Study(name, str(substitute(description, params, source)), params, stages)
    _resolve_patterns(study, source)
    study.families = _families(raw.get("families"), params, study, source)
    study.analysis = dict(substitute(raw.get("analysis") or {}, params, f"{source}: analysis"))
    validate(study, source)
    return study


def _families(raw: Any, params: dict[str, Any], study: Study, source: str) -> dict[str, list[str]]:
    """The validated ``families:`` block: a mapping of family names to non-empty lists of
    stage names (placeholders substituted); each stage must exist and be in one family."""
    if raw is None:
        return {}
    where = f"{source}: families"
    if not isinstance(raw, dict):
        raise StudyError(f"{where} must map family names to lists of stage names")
    names = {s.name for s in study.stages}
    owner: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for family, members in raw.items():
        members = substitute(members, params, where)
        if not isinstance(members, list) or not members:
            raise StudyError(f"{where}: {family!r} must be a non-empty list of stage names")
        for m in map(str, members):
            if m not in names:
                raise StudyError(f"{where}: {family!r} names {m!r}, which is not a stage")
            if m in owner:
                raise StudyError(f"{where}: {m!r} is in two families, {owner[m]!r} and {family!r}")
            owner[m] = str(family)
        out[str(family)] = [str(m) for m in members]
    return out


def _preset(
    raw: dict[str, Any], source: str, preset: str | None
) -> tuple[str, dict[str, Any], str]:
    """The chosen preset's name, parameter values and description (``presets``: name →
    ``{description, parameters}``; default the first)."""
    presets = raw["presets"]
    if not isinstance(presets, dict) or not presets:
        raise StudyError(f"{source}: presets must map preset names to their parameters")
    if preset is None:
        preset = str(next(iter(presets)))
    if preset not in presets:
        raise StudyError(f"{source}: no preset {preset!r} (has: {', '.join(presets)})")
    body = presets[preset] or {}
    extra = set(body) - {"description", "parameters"} if isinstance(body, dict) else None
    if extra is None or extra or not isinstance(body.get("parameters") or {}, dict):
        raise StudyError(
            f"{source}: preset {preset!r} is a mapping with description and parameters"
        )
    if "preset" in (raw.get("parameters") or {}):
        raise StudyError(f"{source}: 'preset' is the chosen preset's name, not a parameter")
    values = dict(body.get("parameters") or {})
    for other, other_body in presets.items():
        names = set(
            ((other_body or {}).get("parameters") or {}) if isinstance(other_body, dict) else {}
        )
        if names != set(values):
            raise StudyError(
                f"{source}: presets {preset!r} and {other!r} must set the same parameters "
                f"(differ in {', '.join(sorted(names ^ set(values)))})"
            )
    return preset, values, str(body.get("description") or raw.get("description") or "")


def _stage(item: dict[str, Any], params: dict[str, Any], where: str) -> Stage:
    item = substitute(copy.deepcopy(item), params, where)
    name, kind = item.get("name"), item.get("kind")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name or ""):
        raise StudyError(f"{where}: a stage needs a name of letters, digits, _ . - /")
    where = f"{where} ({name})"
    if kind not in KINDS:
        raise StudyError(f"{where}: unknown stage kind {kind!r}; allowed: {', '.join(KINDS)}")
    refs = {}
    references = KINDS[kind].references
    for key in references:
        if key in item:
            refs[key] = item[key]
    stray = [k for k in item if k in STAGE_KEYS - GENERAL_KEYS and k not in references]
    if stray:
        raise StudyError(f"{where}: a {kind} stage has no {', '.join(stray)}")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise StudyError(f"{where}: options must be a mapping")
    options = {k: v for k, v in options.items() if v is not None}  # null: not given
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
        [str(a) for a in as_list(item.get("after") or [])],
        {k: float(v) for k, v in resources.items()},
        None if copy_from is None else str(copy_from),
    )


def _resolve_patterns(study: Study, source: str) -> None:
    """References ending in ``*`` become the list of stages with that name prefix."""
    names = [s.name for s in study.stages]

    def expand(ref: Any) -> list[str]:
        out = []
        for r in as_list(ref):
            if isinstance(r, str) and r.endswith("*"):
                hits = [n for n in names if n.startswith(r[:-1])]
                if not hits:
                    raise StudyError(f"{source}: pattern {r!r} matches no stage")
                out += hits
            else:
                out.append(r)
        return out

    for s in study.stages:
        for key, ref in KINDS[s.kind].references.items():
            if key not in s.refs:
                continue
            shape = ref.shape
            if shape == "map":
                if not isinstance(s.refs[key], dict):
                    raise StudyError(f"{source}: stage {s.name}: {key} maps conditions to stages")
                s.refs[key] = {str(k): str(v) for k, v in s.refs[key].items()}
            elif shape == "list":
                if not all(isinstance(r, str) for r in as_list(s.refs[key])):
                    raise StudyError(
                        f"{source}: stage {s.name}: {key} is a stage name or a list of names"
                    )
                s.refs[key] = expand(s.refs[key])
            else:
                s.refs[key] = str(s.refs[key])
        s.after = expand(s.after) if s.after else []


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
        kind = KINDS[s.kind]
        for key, ref in kind.references.items():
            kinds = ref.kinds
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
        for key in (k for k, ref in kind.references.items() if ref.required):
            if not s.refs.get(key):
                raise StudyError(f"{where}: a {s.kind} stage needs {key}")
    _check_cycles(study, source)
    _add_evaluation_deps(study, source)
    _check_cycles(study, source)
    build_tasks(study, Path("OUT"), source)


def build_tasks(study: Study, out: Path, source: str = "study") -> dict[str, Task]:
    """Each stage's task (in dependency order), its output at ``OUT/<name>`` and its
    references resolved to the referenced stages' tasks; a stage whose options its task
    refuses is a :class:`StudyError` naming the stage."""
    tasks: dict[str, Task] = {}
    names = tuple(s.name for s in study.stages)
    context = StudyContext(out, study.analysis, study.families, names)
    for s in study.order():
        output = stage_output(s, out)
        if s.copy_from is not None:
            tasks[s.name] = CopyTask(Path(s.copy_from), output)
            continue
        refs = {k: _tasks_of(v, tasks) for k, v in s.refs.items()}
        try:
            tasks[s.name] = KINDS[s.kind].from_stage(s.options, refs, output, context)
        except (ValueError, TypeError) as exc:
            raise StudyError(f"{source}: stage {s.name}: {exc}") from None
    return tasks


def _tasks_of(ref: Any, tasks: dict[str, Task]) -> Any:
    """A reference (a stage name, a list of them or a label → name map) as their tasks."""
    if isinstance(ref, dict):
        return {k: tasks[v] for k, v in ref.items()}
    if isinstance(ref, list):
        return [tasks[v] for v in ref]
    return tasks[ref]


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


def evaluated_runs(study: Study) -> dict[str, list[str]]:
    """Run stage → the evaluate stages that evaluate it, in file order."""
    out: dict[str, list[str]] = {}
    for s in study.stages:
        if s.kind == "evaluate":
            for r in s.refs["runs"]:
                out.setdefault(r, []).append(s.name)
    return out


def _add_evaluation_deps(study: Study, source: str) -> None:
    """classify, plot, report and gate read evaluation files: they depend on the evaluate
    stages that write them (one must exist): the one their ``after`` names, else the last."""
    evaluated = evaluated_runs(study)
    for s in study.stages:
        if not KINDS[s.kind].reads_evaluation:
            continue
        runs: list[str] = []
        for key, ref in KINDS[s.kind].references.items():
            if ref.kinds == RUN_KINDS and s.refs.get(key) is not None:
                runs += _ref_names(s.refs[key])
        for r in runs:
            if r not in evaluated:
                raise StudyError(f"{source}: stage {s.name}: run {r!r} is never evaluated")
            if not set(evaluated[r]) & set(s.after):
                s.after.append(evaluated[r][-1])
