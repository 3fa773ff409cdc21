"""Analysis of evaluated runs, split by role.

- :mod:`~soo_marl.analysis.runs`: what a run directory holds, loaded for analysis;
- :mod:`~soo_marl.analysis.compare`: behavioural differences, differences with CIs, verdicts;
- :mod:`~soo_marl.analysis.classify`: the SOO classifier from evaluation files;
- :mod:`~soo_marl.analysis.figures`: drawing (one function per figure);
- :mod:`~soo_marl.analysis.plots`: which figures a set of runs allows, and writing them;
- :mod:`~soo_marl.analysis.tables`: Markdown tables for reports.
- :mod:`~soo_marl.analysis.study`: a study file's comparisons, verdicts and report.

The measures themselves are pure functions of trajectories in :mod:`soo_marl.metrics`.
"""
