"""The package's import graph, read from the source with ``ast`` (module-level and
function-level imports alike): it has no circle, and the command line is at the top —
nothing imports ``soo_marl.cli``, and the study engine reaches no CLI module. No module
(and no test) imports a private name of another module."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source folders and the package each is installed as (setup.cfg's package_dir).
PACKAGES = {
    "soo_marl": "soo_marl",
    "envs": "soo_marl.envs",
    "agents": "soo_marl.agents",
    "studies": "soo_marl.studies",
}
#: Modules of the command line; no other module may import them.
CLI_MODULES = {"soo_marl.cli", "soo_marl.cli_options"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports anywhere in its source. ``from P import
    name`` counts as an import of ``P.name`` when that is a module, else of ``P``."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = here[: len(here) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            else:
                continue
            for t in targets:
                while t and t not in modules:  # `import soo_marl.x.y` of a non-module y
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for d in graph[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert "soo_marl.tasks" in graph["soo_marl.sweep.spec"]
    assert "soo_marl.commands" in graph["soo_marl.cli"]
    assert "soo_marl.envs.core" in graph["soo_marl.vecenv"]
    # function-level imports count: the train task imports the trainer in its body
    assert "soo_marl.train" in graph["soo_marl.tasks"]


def test_the_package_has_no_import_circle():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if state.get(name) == 2:
            return
        state[name] = 1
        for d in sorted(graph[name]):
            visit(d, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])


def test_nothing_imports_the_command_line():
    graph = import_graph()
    importers = {m for m, deps in graph.items() if deps & CLI_MODULES}
    assert importers == set(), importers
    for m in graph:
        if m.startswith("soo_marl.sweep") or m in ("soo_marl.reproduce", "soo_marl.tasks"):
            reached = _reachable(graph, m) & CLI_MODULES
            assert not reached, f"{m} reaches {reached}"


def test_the_learner_and_the_environment_stay_below_the_application():
    """agents/ and envs/ import nothing of soo_marl outside themselves (envs may use
    nothing of agents either), so the learner can be used, and checked, on its own."""
    graph = import_graph()
    for layer, allowed in (
        ("soo_marl.agents", ("soo_marl.agents",)),
        ("soo_marl.envs", ("soo_marl.envs",)),
    ):
        for m in (m for m in graph if m == layer or m.startswith(layer + ".")):
            outside = {d for d in graph[m] if not d.startswith(allowed)}
            assert outside == set(), f"{m} imports {sorted(outside)}"


def private_imports(source: str, name: str, is_package: bool = False) -> list[str]:
    """``module.name`` for every private name (one leading underscore) that ``source``
    (the module ``name``) imports from a package module: ``from soo_marl.x import _y``,
    or the same relative. Dunder names (``__version__``) are public."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            here = name.split(".") if is_package else name.split(".")[:-1]
            anchor = here[: len(here) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        if base.split(".")[0] != "soo_marl":
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{base}.{alias.name}")
    return found


def test_the_private_import_reader_on_examples():
    src = (
        "from soo_marl.analysis.soo_study import _d, fmt_signed\n"
        "from soo_marl import __version__\n"
        "from soo_marl.rollout import DEFAULT_EVAL_SEEDS as _SEEDS\n"
        "from numpy import _pytesttester\n"
        "def f():\n"
        "    from ._helpers import x\n"
        "    from .compare import _private\n"
    )
    assert private_imports(src, "soo_marl.analysis.tables") == [
        "soo_marl.analysis.soo_study._d",
        "soo_marl.analysis.compare._private",
    ]


def test_no_module_imports_a_private_name_of_another():
    """A name with a leading underscore is its module's own: no package module and no test
    imports one (a helper others need is made public, with a docstring)."""
    offenders = []
    sources = [(name, path) for name, path in _modules().items()]
    sources += [(f"tests.{p.stem}", p) for p in sorted((ROOT / "tests").glob("*.py"))]
    for name, path in sources:
        for imported in private_imports(path.read_text(), name, path.name == "__init__.py"):
            offenders.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert offenders == [], "\n".join(offenders)
