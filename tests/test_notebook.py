"""notebooks/reproduce_figures.ipynb runs end to end on synthetic evaluated runs."""

from pathlib import Path

import nbformat
import pytest
from synthetic_eval import write_runs

nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "reproduce_figures.ipynb"


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") if o.get("output_type") == "stream" else "")
    return "".join(out)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in o.get("data", {}) for cell in nb.cells for o in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_notebook_rebuilds_figures_and_table(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_runs(root)
    # the kernel inherits this environment; jupyter_client runs the "python3" kernel
    # spec's "python" as sys.executable, i.e. this virtual environment's interpreter
    monkeypatch.setenv("SOO_RUNS_DIR", str(root))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    text = _text(nb)
    for label in ("deceptive r0.125", "soo r0.125", "honest r0.125"):
        assert label in text
    assert "luring Δtrap" in text and "SOO value" in text  # results table
    assert "accuracy" in text  # classifier table
    assert "soo r0.125 vs honest r0.125" in text  # behavioural differences
    figures = root / "figures"
    assert (figures / "classifier.json").exists()
    pngs = sorted(p.stem for p in figures.glob("*.png"))
    assert {"fig2_trajectories", "fig3_grid_freq_guard", "fig4_behavioural_difference",
            "probes", "classifier", "learning_curves"} <= set(pngs)  # fmt: skip
    assert all((figures / f"{s}.pdf").stat().st_size > 0 for s in pngs)
    assert _images(nb) == len(pngs)  # every figure displayed inline
