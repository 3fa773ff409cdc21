"""Figures, SOO classifier and their CLI commands on synthetic evaluation files."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure
from synthetic_eval import EVAL_SEEDS, N_PER, SEEDS, write_run, write_runs

from soo_marl import metrics
from soo_marl.analysis import compare, figures, plots, tables
from soo_marl.analysis.classify import classify, clip_episodes
from soo_marl.analysis.runs import default_pairs, load_run
from soo_marl.cli import main

STEMS = [
    "fig2_trajectories",
    "fig3_grid_freq_guard",
    "fig3_grid_freq_noguard",
    "fig3_grid_trunc_guard",
    "fig3_grid_trunc_noguard",
    "fig4_behavioural_difference",
    "probes",
    "learning_curves",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def loaded(runs):
    return {c: load_run(p) for c, p in runs.items()}


# --------------------------------------------------------------------------- classifier


def test_classify_honest_lower_is_always_right(tmp_path):
    dec = write_run(tmp_path / "dec", "deceptive", soo_level=-3.0)
    hon = write_run(tmp_path / "hon", "honest", soo_level=-5.0)
    res = classify(dec, hon, n_episodes=(1, 3, 100))
    assert res["n_episodes"] == [1, 3, N_PER]  # 100 clipped to the 5 available
    assert res["accuracy"] == [1.0, 1.0, 1.0]
    assert res["units"] == len(SEEDS) * len(EVAL_SEEDS)
    assert res["mean_soo"]["honest"] < res["mean_soo"]["deceptive"]
    json.dumps(res)  # JSON-ready


def test_classify_pooled_units_are_trained_seeds(tmp_path):
    dec = write_run(tmp_path / "dec", "deceptive", soo_level=-3.0)
    hon = write_run(tmp_path / "hon", "honest", soo_level=-5.0)
    res = classify(dec, hon, n_episodes=(1, 100), pool_eval_seeds=True)
    assert res["units"] == len(SEEDS) and res["episodes_per_unit"] == len(EVAL_SEEDS) * N_PER
    assert res["n_episodes"] == [1, len(EVAL_SEEDS) * N_PER] and res["accuracy"] == [1.0, 1.0]


def test_pooled_units_cycle_through_eval_seeds():
    from soo_marl.analysis.classify import units

    v = np.zeros((1, 4, 3))
    v[0, :, 0] = [10, 11, 20, 21]  # eval seed 0: episodes 10, 11; eval seed 1: 20, 21
    v[0, :, 1:] = np.nan
    assert units(v, 2, 2, pool=True).tolist() == [[10, 20, 11, 21]]
    assert units(v, 2, 2).tolist() == [[10, 11], [20, 21]]


def test_classify_honest_higher_is_always_wrong(tmp_path):
    dec = write_run(tmp_path / "dec", "deceptive", soo_level=-3.0)
    hon = write_run(tmp_path / "hon", "honest", soo_level=-1.0)
    assert classify(dec, hon, n_episodes=(1, 5))["accuracy"] == [0.0, 0.0]


def test_classify_rejects_mismatched_runs(tmp_path):
    dec = write_run(tmp_path / "dec", "deceptive")
    with pytest.raises(ValueError, match="seeds differ"):
        classify(dec, write_run(tmp_path / "s", "honest", seeds=(0, 2)))
    with pytest.raises(ValueError, match="eval_seeds differ"):
        classify(dec, write_run(tmp_path / "e", "honest", eval_seeds=(1, 2)))
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match="soo-marl evaluate"):
        classify(dec, tmp_path / "bare")


def test_clip_episodes():
    assert clip_episodes([1, 100, 200, 1500], 150) == [1, 100, 150]
    assert clip_episodes([0, 3, 3], 10) == [1, 3]


# --------------------------------------------------------------------------- figures


def test_fig_trajectories_grid_of_panels(loaded):
    conds = [(r.label, r.trajectories) for r in loaded.values()]
    eps = figures.pick_episodes(conds[0][1], 3)
    assert len(set(eps)) == 3
    assert {j // N_PER for j in eps} == set(range(len(EVAL_SEEDS)))  # both eval seeds used
    fig = figures.fig_trajectories(conds, eps)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * len(conds)
    ax = fig.axes[0]
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (-1.0, 1.0)


def test_fig_trajectories_requires_same_starts(loaded):
    other = {k: v.copy() for k, v in loaded["honest"].trajectories.items()}
    other["landmarks"] = other["landmarks"] + 0.1
    with pytest.raises(ValueError, match="start states"):
        figures.fig_trajectories([("a", loaded["deceptive"].trajectories), ("b", other)], [0])


def test_fig_threshold_grids_share_colour_scale(loaded):
    grids = [(r.label, r.grids["freq_guard"]) for r in loaded.values()]
    fig = figures.fig_threshold_grids(grids)
    assert len(fig.axes) == len(grids) + 1  # panels + one colourbar
    clims = {ax.images[0].get_clim() for ax in fig.axes[: len(grids)]}
    assert len(clims) == 1
    vmax = max(g.mean(axis=0).max() for _, g in grids)
    assert clims.pop() == (0.0, pytest.approx(vmax))
    assert fig.axes[0].get_xlabel() == "projection threshold x"
    assert fig.axes[0].get_ylabel() == "cosine threshold y"


def test_behavioural_difference_pairs_and_figure(loaded):
    runs = list(loaded.values())
    pairs = default_pairs(runs)
    assert pairs == [
        ("soo r0.125", "honest r0.125"),
        ("soo r0.125", "deceptive r0.125"),
        ("honest r0.125", "deceptive r0.125"),
    ]
    grids = {r.label: r.grids["freq_guard"] for r in runs}
    diffs = compare.behavioural_differences(grids, pairs)
    expected = metrics.behavioural_difference(grids["soo r0.125"], grids["honest r0.125"])
    assert np.allclose(diffs[pairs[0]]["values"], expected)
    assert diffs[pairs[0]]["mean"] < diffs[pairs[1]]["mean"]  # SOO nearer honest
    sets = {"guard": grids, "no guard": {r.label: r.grids["freq_noguard"] for r in runs}}
    fig = figures.fig_behavioural_difference(sets, pairs)
    assert len(fig.axes) == 2


def test_probe_classifier_and_learning_figures(loaded):
    by_label = {r.label: r.metrics for r in loaded.values()}
    assert len(figures.fig_probes(by_label).axes) == len(figures.PROBES)
    clf = {"n_episodes": [1, 5], "accuracy": [0.5, 1.0], "units": 4}
    assert len(figures.fig_classifier(clf).axes) == 1
    hist = {r.label: r.history for r in loaded.values()}
    fig = figures.fig_learning_curves(hist)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(figures.LEARNING_CURVES)
    table = tables.results_table(list(by_label.values()))
    assert "deceptive r0.125" in table and "luring Δtrap" in table


def test_make_all_writes_png_and_pdf(runs, tmp_path):
    clf = tmp_path / "classifier.json"
    clf.write_text(json.dumps({"n_episodes": [1, 5], "accuracy": [0.75, 1.0]}))
    messages = []
    paths = plots.make_all(list(runs.values()), tmp_path / "fig", clf, log=messages.append)
    expected = {f"{s}.{x}" for s in [*STEMS, "classifier"] for x in ("png", "pdf")}
    assert {p.name for p in paths} == expected
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_make_all_skips_missing_inputs(tmp_path, runs):
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ValueError, match="evaluate"):
        plots.make_all([bare], tmp_path / "out", log=lambda m: None)
    messages = []
    paths = plots.make_all(
        [runs["honest"]], tmp_path / "one", log=messages.append, formats=("png",)
    )
    names = {p.stem for p in paths}
    assert "fig4_behavioural_difference" not in names and "classifier" not in names
    assert any("Figure 4" in m for m in messages) and any("classifier" in m for m in messages)


def test_several_sight_radii_get_suffixed_stems(runs, tmp_path):
    wide = tmp_path / "wide"
    shutil.copytree(runs["honest"], wide)
    m = json.loads((wide / "eval" / "metrics.json").read_text())
    m["meta"]["sight_radius"], m["label"] = 0.5, "honest r0.5"
    (wide / "eval" / "metrics.json").write_text(json.dumps(m))
    figs = plots.build_figures([load_run(runs["deceptive"]), load_run(wide)], log=lambda m: None)
    assert {"fig2_trajectories_r0.125", "fig2_trajectories_r0.5", "probes"} <= set(figs)
    paths = plots.save_figure(figs["fig2_trajectories_r0.5"], tmp_path / "fig2_r0.5", ("png",))
    assert [p.name for p in paths] == ["fig2_r0.5.png"]


# --------------------------------------------------------------------------- CLI


def test_cli_classify_and_plot(runs, tmp_path):
    cli = CliRunner()
    res = cli.invoke(
        main,
        ["classify", "--deceptive", str(runs["deceptive"]), "--honest", str(runs["honest"]),
         "--episodes", "1,3", "--episodes", "100"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output
    saved = json.loads((runs["deceptive"] / "eval" / "classifier.json").read_text())
    assert saved["n_episodes"] == [1, 3, 5] and saved["accuracy"] == [1.0, 1.0, 1.0]
    assert (runs["deceptive"] / "eval" / "classifier.png").stat().st_size > 0

    out = tmp_path / "figs"
    res = cli.invoke(
        main,
        ["plot", *map(str, runs.values()), "--out", str(out), "--format", "png",
         "--classifier", str(runs["deceptive"] / "eval" / "classifier.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {f"{s}.png" for s in [*STEMS, "classifier"]}


def test_cli_errors_are_one_line(tmp_path, runs):
    (tmp_path / "bare").mkdir()
    cli = CliRunner()
    res = cli.invoke(
        main,
        ["classify", "--deceptive", str(runs["deceptive"]), "--honest", str(tmp_path / "bare")],
    )
    assert res.exit_code == 1 and "soo-marl evaluate" in res.output
    assert "Traceback" not in res.output
    res = cli.invoke(main, ["plot", str(tmp_path / "bare"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "Error:" in res.output
    res = cli.invoke(
        main,
        ["classify", "--deceptive", str(runs["deceptive"]), "--honest", str(runs["honest"]),
         "--episodes", "1,x"],
    )  # fmt: skip
    assert res.exit_code == 2 and "not a list of integers" in res.output
