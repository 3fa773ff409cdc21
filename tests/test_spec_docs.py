"""docs/spec.md against the code: its configuration tables equal their rendering from the
config dataclasses, and every § citation in the code names a section that exists.

Citation rule (stated in docs/spec.md's conventions): every ``§N`` / ``§N.M`` in the
package source, scripts, studies and tests cites docs/spec.md, except one written right
after "issue <number>" (an issue's numbered item). A cited section must be a numbered
heading of docs/spec.md, and code cites the most specific one: a section that has
subsections (every top-level §N does) may not be cited, its subsection is. A range
"§3.3–§3.5" cites both ends. The READMEs and docs/*.md may cite a whole §N.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from soo_marl import spec_tables

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec.md"
#: Where code lives (all of it is checked with the strict rule).
CODE_DIRS = ("soo_marl", "envs", "agents", "studies", "scripts", "tests")
CODE_SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".md", ".ipynb"}
#: Prose that may cite a whole top-level section (existence is still checked).
PROSE_FILES = ("README.md", "docs/spec.md", "docs/performance.md", "studies/README.md")

_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)
_CITATION = re.compile(r"(issue \d+ )?§(\d+(?:\.\d+)*)")


def spec_sections(text: str) -> set[str]:
    """The section numbers of the numbered headings of the spec ("1", "1.1", …)."""
    return set(_HEADING.findall(text))


def citations(text: str) -> list[tuple[int, str]]:
    """(line number, section) of every spec citation in ``text`` (issue items left out)."""
    found = []
    for m in _CITATION.finditer(text):
        if m[1]:
            continue
        section = m[2].rstrip(".")
        found.append((text.count("\n", 0, m.start()) + 1, section))
    return found


def citation_problems(files: list[Path], sections: set[str], strict: bool) -> list[str]:
    """One line per citation that names no heading or, with ``strict``, names a section
    that has subsections."""
    parents = {s.rsplit(".", 1)[0] for s in sections if "." in s}
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for line, section in citations(text):
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            where = f"{name}:{line}: §{section}"
            if section not in sections:
                problems.append(f"{where} is not a heading of docs/spec.md")
            elif strict and section in parents:
                problems.append(f"{where} has subsections; cite the subsection meant")
    return problems


def code_files() -> list[Path]:
    """Every source, script, study and test file of the repository."""
    files = []
    for d in CODE_DIRS:
        for path in sorted((ROOT / d).rglob("*")):
            if path.is_file() and path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts:
                files.append(path)
    # this file's examples are not citations
    skip = {*PROSE_FILES, "tests/test_spec_docs.py"}
    return [p for p in files if p.relative_to(ROOT).as_posix() not in skip]


# --- configuration tables ---------------------------------------------------------------


def test_every_config_class_has_exactly_one_table_in_the_spec() -> None:
    names = spec_tables.table_names(SPEC.read_text(encoding="utf-8"))
    assert sorted(names) == sorted(spec_tables.config_classes())


def test_the_spec_tables_equal_their_rendering_from_the_fields() -> None:
    text = SPEC.read_text(encoding="utf-8")
    assert spec_tables.regenerate(text) == text, (
        "docs/spec.md's configuration tables differ from the dataclass fields: run "
        "python -m soo_marl.spec_tables"
    )


def test_every_field_is_a_row_with_its_default_and_help() -> None:
    """The rendering itself, read back: one row per field, in order, nothing else."""
    for name, cls in spec_tables.config_classes().items():
        rows = spec_tables.render_table(cls).splitlines()[3:-1]
        fields = dataclasses.fields(cls)
        assert len(rows) == len(fields), name
        for row, f in zip(rows, fields, strict=True):
            cells = [c.strip() for c in row.strip("|").split(" | ")]
            assert cells[0] == f"`{f.name}`"
            assert cells[2] == " ".join(f.metadata["help"].split())
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            assert cells[1] == spec_tables.format_default(default)


def test_render_table_and_regenerate_on_a_toy_dataclass() -> None:
    @dataclasses.dataclass
    class Toy:
        count: int = dataclasses.field(default=40_000, metadata={"help": "how many | pipes"})
        widths: tuple[int, ...] = dataclasses.field(
            default=(64, 64), metadata={"help": "two\n  lines"}
        )
        name: str | None = dataclasses.field(default=None, metadata={"help": "resolved later"})
        flag: bool = dataclasses.field(default=True, metadata={"help": "a switch"})
        rate: float = dataclasses.field(default=1e-3, metadata={"help": "a rate"})
        kind: str = dataclasses.field(default="fast", metadata={"help": "a kind"})

    table = spec_tables.render_table(Toy)
    assert table.splitlines()[3:-1] == [
        "| `count` | 40,000 | how many \\| pipes |",
        "| `widths` | (64, 64) | two lines |",
        "| `name` | None | resolved later |",
        "| `flag` | true | a switch |",
        "| `rate` | 0.001 | a rate |",
        '| `kind` | `"fast"` | a kind |',
    ]
    stale = "intro\n" + table.replace("40,000", "1") + "\noutro\n"
    assert spec_tables.regenerate(stale, {"Toy": Toy}) == "intro\n" + table + "\noutro\n"
    with pytest.raises(ValueError, match="unknown class 'Toy'"):
        spec_tables.regenerate(stale, {})


def test_a_field_without_help_is_refused() -> None:
    @dataclasses.dataclass
    class Bare:
        x: int = 1

    with pytest.raises(ValueError, match="Bare.x has no metadata"):
        spec_tables.render_table(Bare)


def test_check_mode_reports_a_stale_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.md"
    current = SPEC.read_text(encoding="utf-8")
    spec.write_text(current.replace("| `dt` | 0.1 |", "| `dt` | 0.2 |"), encoding="utf-8")
    assert spec_tables.main(["--check", "--spec", str(spec)]) == 1
    assert spec_tables.main(["--spec", str(spec)]) == 0
    assert spec.read_text(encoding="utf-8") == current
    assert spec_tables.main(["--check", "--spec", str(spec)]) == 0


# --- § citations ------------------------------------------------------------------------


def test_citation_rule_on_examples(tmp_path: Path) -> None:
    sections = {"1", "1.1", "1.2", "7"}
    text = "a (§1.1), b §1.2–§1.1,\nc §7, issue 19 §8, bad §1 and §1.9.\n"
    assert citations(text) == [(1, "1.1"), (1, "1.2"), (1, "1.1"), (2, "7"), (2, "1"), (2, "1.9")]
    path = tmp_path / "code.py"
    path.write_text(text, encoding="utf-8")
    assert citation_problems([path], sections, strict=True) == [
        f"{path}:2: §1 has subsections; cite the subsection meant",
        f"{path}:2: §1.9 is not a heading of docs/spec.md",
    ]
    assert citation_problems([path], sections, strict=False) == [
        f"{path}:2: §1.9 is not a heading of docs/spec.md"
    ]


def test_the_spec_has_the_numbered_sections_it_is_cited_by() -> None:
    sections = spec_sections(SPEC.read_text(encoding="utf-8"))
    assert {"1", "1.1", "1.11", "2.9", "3.9", "4.4", "4.14", "6.8"} <= sections


def test_code_cites_existing_subsections_only() -> None:
    sections = spec_sections(SPEC.read_text(encoding="utf-8"))
    problems = citation_problems(code_files(), sections, strict=True)
    assert not problems, "\n".join(problems)


def test_prose_cites_existing_sections() -> None:
    sections = spec_sections(SPEC.read_text(encoding="utf-8"))
    files = [ROOT / p for p in PROSE_FILES if (ROOT / p).exists()]
    problems = citation_problems(files, sections, strict=False)
    assert not problems, "\n".join(problems)
