"""Each default has one home: the config dataclasses, or one named constant or signature
that the other places refer to. Read from the source with ``ast``, so a default typed a
second time as a literal is found wherever it is (function signatures and click options
in soo_marl/, envs/ and agents/)."""

from __future__ import annotations

import ast
import dataclasses
from collections import defaultdict
from pathlib import Path

from soo_marl import spec_tables

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("soo_marl", "envs", "agents")


def config_homes() -> dict[str, list[tuple[str, object]]]:
    """Field name → (class, default) of every config dataclass field with a plain default."""
    homes: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for cls_name, cls in spec_tables.config_classes().items():
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING and f.default is not None:
                homes[f.name].append((cls_name, f.default))
    return homes


def _literal(node: ast.AST | None) -> tuple[bool, object]:
    """(True, value) for a literal str / int / float default (not None, not a bool)."""
    if isinstance(node, ast.Constant) and node.value is not None:
        if not isinstance(node.value, bool):
            return True, node.value
    return False, None


def _option_name(call: ast.Call) -> str | None:
    for a in call.args:
        if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--"):
            return a.value.split("/")[0].lstrip("-").replace("-", "_")
    return None


def literal_defaults(source: str, where: str) -> list[tuple[str, str, object, str]]:
    """(kind, name, value, where) of each literal default in ``source``: kind "param" for a
    function parameter, "option" for a click option's ``default=``, "constant" for a
    module-level ``DEFAULT_…`` assignment."""
    out = []
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            ok, value = _literal(node.value)
            if ok and isinstance(target, ast.Name) and target.id.startswith("DEFAULT"):
                out.append(("constant", target.id, value, f"{where}:{node.lineno}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults) :], a.defaults, strict=True))
            pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d]
            for arg, d in pairs:
                ok, value = _literal(d)
                if ok:
                    out.append(("param", arg.arg, value, f"{where}:{node.lineno} {node.name}"))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "option":
            name = _option_name(node)
            for kw in node.keywords:
                ok, value = _literal(kw.value) if kw.arg == "default" else (False, None)
                if ok and name:
                    out.append(("option", name, value, f"{where}:{node.lineno} --{name}"))
    return out


def duplicate_defaults(sources: dict[str, str]) -> list[str]:
    """Every default that is typed a second time instead of referring to its home:

    * a parameter or option with a config field's name and that field's default (the
      dataclass is its home);
    * two ``DEFAULT_…`` constants in different modules with the same value and a shared
      word in their names (one is the home);
    * a click option whose literal default repeats the literal default of a parameter of
      the same name (the function is its home; an empty string, "none given", aside)."""
    found = [d for w, text in sources.items() for d in literal_defaults(text, w)]
    homes = config_homes()
    problems = []
    for kind, name, value, where in found:
        if kind == "constant":
            continue
        for cls_name, default in homes.get(name, []):
            if type(default) is type(value) and default == value:
                problems.append(f"{where}: {name}={value!r} restates {cls_name}.{name}")
    constants = [d for d in found if d[0] == "constant"]
    for i, (_, n1, v1, w1) in enumerate(constants):
        for _, n2, v2, w2 in constants[i + 1 :]:
            words = set(n1.split("_")[1:]) & set(n2.split("_")[1:])
            same_file = w1.split(":")[0] == w2.split(":")[0]
            if v1 == v2 and type(v1) is type(v2) and words and not same_file:
                problems.append(f"{w2}: {n2}={v2!r} restates {n1} ({w1})")
    params = {(n, v, type(v)) for k, n, v, _ in found if k == "param"}
    for kind, name, value, where in found:  # "" stands for "none given", not a setting
        if kind == "option" and value != "" and (name, value, type(value)) in params:
            problems.append(f"{where}: default {value!r} restates a function's default")
    return problems


def package_sources() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text()
        for folder in FOLDERS
        for p in sorted((ROOT / folder).rglob("*.py"))
    }


def test_no_default_is_typed_twice():
    problems = duplicate_defaults(package_sources())
    assert problems == [], "\n".join(problems)


def test_a_planted_duplicate_default_is_found():
    """The check can fail: each kind of restated default, planted, is reported."""
    planted = {
        "a.py": (
            "import click\n"
            "DEFAULT_EVAL_EPISODES = 500\n"
            "def run(device: str = 'auto', batch_size: int = 1024, depth: int = 3): ...\n"
            "@click.option('--depth', default=3)\n"
            "def cmd(depth): ...\n"
        ),
        "b.py": "DEFAULT_EPISODES = 500\n",
    }
    problems = duplicate_defaults(planted)
    assert any("device='auto' restates RunConfig.device" in p for p in problems)
    assert any("batch_size=1024 restates MADDPGConfig.batch_size" in p for p in problems)
    assert any("DEFAULT_EPISODES=500 restates DEFAULT_EVAL_EPISODES" in p for p in problems)
    assert any("--depth: default 3 restates" in p for p in problems)
    assert len(problems) == 4
    # and the real sources pass only because nothing is restated there
    assert (
        duplicate_defaults(
            {"c.py": "from x import RunConfig\ndef run(device: str = RunConfig.device): ...\n"}
        )
        == []
    )
