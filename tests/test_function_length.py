"""No function of the package is longer than 60 lines (issue 30 item 7).

A function's length is ``end_lineno - lineno + 1`` of its ``def`` node: from the ``def``
line to its last line, docstring included, decorators left out. Methods and nested
functions count on their own, named ``path:Outer.name``. The functions still too long are
listed in :data:`KNOWN_LONG`; the list can only shrink: a long function missing from it
fails, and so does an entry that is no longer long (or no longer exists).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the package's code lives (envs/ and agents/ are installed as soo_marl.envs/.agents).
CODE_DIRS = ("soo_marl", "envs", "agents")
MAX_LINES = 60
#: Functions still longer than MAX_LINES, to be split; remove an entry once it is.
KNOWN_LONG: set[str] = set()


def long_functions(source: str, path: str, limit: int = MAX_LINES) -> dict[str, int]:
    """Qualified name (``path:Outer.name``) → length of every function in ``source``
    longer than ``limit`` lines."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    assert child.end_lineno is not None
                    length = child.end_lineno - child.lineno + 1
                    if length > limit:
                        found[f"{path}:{name}"] = length
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def package_long_functions() -> dict[str, int]:
    """Every function of the package's code longer than MAX_LINES, with its length."""
    found: dict[str, int] = {}
    for folder in CODE_DIRS:
        for file in sorted((ROOT / folder).rglob("*.py")):
            path = file.relative_to(ROOT).as_posix()
            found.update(long_functions(file.read_text(encoding="utf-8"), path))
    return found


def test_no_new_long_functions() -> None:
    found = package_long_functions()
    new = {name: n for name, n in found.items() if name not in KNOWN_LONG}
    assert not new, f"functions longer than {MAX_LINES} lines (split them): " + ", ".join(
        f"{name} ({n} lines)" for name, n in sorted(new.items())
    )


def test_known_long_list_only_shrinks() -> None:
    gone = sorted(KNOWN_LONG - package_long_functions().keys())
    assert not gone, f"no longer longer than {MAX_LINES} lines: drop from KNOWN_LONG: {gone}"


def _planted(body_lines: int) -> str:
    """A module with a class whose method spans a def line plus ``body_lines`` lines,
    and a short function."""
    body = "".join(f"        x{i} = {i}\n" for i in range(body_lines - 1))
    return (
        "import functools\n\n\n"
        "class Outer:\n"
        "    @functools.cache\n"
        "    def planted(self):\n"
        '        """A planted function."""\n'
        f"{body}\n"
        "def short():\n"
        "    return 1\n"
    )


def test_checker_catches_a_planted_61_line_function() -> None:
    assert long_functions(_planted(60), "pkg/mod.py") == {"pkg/mod.py:Outer.planted": 61}
    assert long_functions(_planted(59), "pkg/mod.py") == {}  # 60 lines is allowed
    nested = "def outer():\n    def inner():\n" + "        pass\n" * 60 + "    return inner\n"
    assert long_functions(nested, "m.py") == {"m.py:outer": 63, "m.py:outer.inner": 61}
