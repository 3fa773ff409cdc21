"""A ``--help`` in sections: click lists a command's options in one flat list and has no
option groups, so the commands with many options use :class:`SectionedCommand`, whose
options (:class:`HelpOption`) each name their section. Defaults are shown in one format,
click's ``[default: X]``; an option whose default is resolved later (None) gives the text
shown as ``default_text``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

#: The section of an option that names none (``--help``).
OTHER = "Other options"
#: The widest first column of a section (click's own limit).
COL_MAX = 30


class HelpOption(click.Option):
    """A click option with a help ``section`` and, for an option whose default is resolved
    later, the ``default_text`` shown as its ``[default: …]``."""

    def __init__(
        self,
        *args: Any,
        section: str | None = None,
        default_text: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.section = section
        self.default_text = default_text

    def get_help_extra(self, ctx: click.Context) -> Any:
        """click's extras (default, range, required), with ``default_text`` as default."""
        extra = super().get_help_extra(ctx)
        if self.default_text is not None:
            extra["default"] = self.default_text
        return extra


class SectionedCommand(click.Command):
    """A click command whose help lists its options in ``sections`` (in that order; an
    option of another section after them, ``--help`` last). Within a section the options
    named in ``first`` (by parameter name) come first, in that order, then the others in
    the order they are declared."""

    def __init__(
        self, *args: Any, sections: Sequence[str] = (), first: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sections = tuple(sections)
        self.first = tuple(first)

    def option_sections(self, ctx: click.Context) -> list[tuple[str, list[tuple[str, str]]]]:
        """(section, its help records) in help order; hidden options left out."""
        rank = {name: i for i, name in enumerate(self.first)}
        params = sorted(
            enumerate(self.get_params(ctx)),
            key=lambda ip: (rank.get(ip[1].name or "", len(rank)), ip[0]),
        )
        grouped: dict[str, list[tuple[str, str]]] = {s: [] for s in self.sections}
        for _, param in params:
            record = param.get_help_record(ctx)
            if record is not None:
                section = getattr(param, "section", None) or OTHER
                grouped.setdefault(section, []).append(record)
        other = grouped.pop(OTHER, [])
        return [(s, rows) for s, rows in [*grouped.items(), (OTHER, other)] if rows]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write one help section per option section, their columns aligned."""
        sections = self.option_sections(ctx)
        widest = max((len(r[0]) for _, rows in sections for r in rows), default=0)
        width = min(widest, COL_MAX)
        for title, rows in sections:
            first, help_ = rows[0]
            rows = [(first.ljust(width), help_), *rows[1:]]  # aligns every section alike
            with formatter.section(title):
                formatter.write_dl(rows, col_max=COL_MAX)


def split_default(text: str) -> tuple[str, str | None]:
    """A help text without its ``(default: …)`` remark, and the remark's text (None when
    it has none), so that the default is shown as ``[default: …]`` like every other."""
    start = text.find("(default:")
    if start < 0:
        return text, None
    depth = 0
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            remark = text[start + len("(default:") : end].strip()
            return (text[:start].rstrip() + text[end + 1 :]).strip(), remark
    return text, None
