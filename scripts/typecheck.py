"""Type-check soo-marl with mypy, every module under the name it is installed as.

setup.cfg installs ``envs/`` as ``soo_marl.envs`` and ``agents/`` as ``soo_marl.agents``
(``package_dir``). mypy finds modules by their folders alone and cannot follow the
import hook of an editable install, so ``mypy -p soo_marl`` never finds those two
packages and ``mypy envs agents`` checks them as top-level ``envs`` and ``agents``. This
script hands mypy each file of each package that setup.cfg lists, once, with its
installed module name; the settings are mypy's, read from ``[tool.mypy]`` in
pyproject.toml as usual.

Usage: ``python scripts/typecheck.py [MYPY OPTIONS]`` (the test command runs it bare).
Exit status as mypy's: 0 clean, 1 type errors, 2 a blocking error.
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

from mypy import build, util
from mypy.errors import CompileError
from mypy.fscache import FileSystemCache
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent


def installed_sources() -> list[BuildSource]:
    """Each module of each package in setup.cfg, as (its file, its installed name)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    packages = cfg["options"]["packages"].replace(",", " ").split()
    package_dir: dict[str, str] = {}
    for line in cfg["options"]["package_dir"].strip().splitlines():
        name, _, where = line.partition("=")
        package_dir[name.strip()] = where.strip()
    sources = []
    for package in packages:
        # The folder of the longest mapped prefix, then the rest of the name as folders.
        prefix = max(
            (p for p in package_dir if package == p or package.startswith(p + ".")), key=len
        )
        folder = ROOT / package_dir[prefix] / Path(*package[len(prefix) :].split(".")[1:])
        for path in sorted(folder.glob("*.py")):
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            sources.append(BuildSource(str(path.relative_to(ROOT)), module, None, str(ROOT)))
    return sources


def main(args: list[str]) -> int:
    os.chdir(ROOT)
    fscache = FileSystemCache()
    targets, options = process_options(args, require_targets=False, fscache=fscache)
    if targets:
        print("scripts/typecheck.py checks setup.cfg's packages: give mypy options only")
        return 2
    sources = installed_sources()
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    messages: list[str] = []

    def flush_errors(_filename: str | None, new_messages: list[str], serious: bool) -> None:
        messages.extend(new_messages)
        stream = sys.stderr if serious else sys.stdout
        for message in new_messages:
            stream.write((formatter.colorize(message) if options.color_output else message) + "\n")
        stream.flush()

    blockers = False
    try:
        build.build(sources, options, flush_errors=flush_errors, fscache=fscache)
    except CompileError:
        blockers = True
    n_errors, n_notes, n_files = util.count_stats(messages)
    if n_errors or blockers:
        summary = formatter.format_error(
            n_errors, n_files, len(sources), blockers=blockers, use_color=options.color_output
        )
        print(summary)
        return 2 if blockers else 1
    print(formatter.format_success(len(sources), options.color_output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
