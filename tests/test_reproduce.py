"""`soo-marl reproduce --preset test` runs end to end and skips finished stages."""

import re

from click.testing import CliRunner

from soo_marl.cli import main


def test_reproduce_end_to_end_then_skips(tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["reproduce", "--preset", "test", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert any("fig2_trajectories" in link for link in links)
    for link in links:  # every file the report links to exists
        assert (out / link).is_file(), link
    for cond in ("deceptive", "honest", "soo", "nosoo"):
        assert cond.replace("nosoo", "no-soo") in report or cond in report
        assert (out / cond / "eval" / "metrics.json").exists()
    stamp = (out / "deceptive" / "final_model.pt").stat().st_mtime_ns
    again = CliRunner().invoke(
        main, ["reproduce", "--preset", "test", "--out", str(out), "--quiet"]
    )
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipped") == 7
    assert (out / "deceptive" / "final_model.pt").stat().st_mtime_ns == stamp
