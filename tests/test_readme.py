"""README.md's Python example runs as written (with its episode counts scaled down), and
every relative link of the READMEs and docs/**/*.md points at a file of the repository."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from soo_marl import rundir

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "episodes=14_000": "episodes=30",
    "episodes=2_000": "episodes=10",
    "episodes=50": "episodes=2",
}


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_example_runs(tmp_path):
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 1
    code = blocks[0]
    for big, small in SMALL.items():
        assert big in code, big
        code = code.replace(big, small)
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    printed = float(done.stdout.strip().splitlines()[-1])
    m = rundir.require_metrics(tmp_path / "runs" / "soo")
    assert m["label"] == "soo r0.5" and len(m["seeds"]) == 4
    assert printed == pytest.approx(m["luring_delta_trap"]["mean"])


DOCS = ["README.md", "studies/README.md"]
DOCS += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_point_at_files(doc):
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{doc}: {target}"
