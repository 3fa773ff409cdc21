"""``soo-marl sweep``: whole studies (graphs of train, finetune, evaluate, classify, plot and
report stages) from a YAML study file, run locally or on a Ray cluster.

- :mod:`~soo_marl.sweep.spec`: the study-file format and its validation;
- :mod:`~soo_marl.sweep.costs`: per-stage time and resource estimates;
- :mod:`~soo_marl.sweep.run`: running a study (local subprocesses or Ray tasks), resumably.
"""

from soo_marl.sweep.run import StudyInterrupted, run_study
from soo_marl.sweep.spec import Study, StudyError, load_study, parse_study

__all__ = ["Study", "StudyError", "StudyInterrupted", "load_study", "parse_study", "run_study"]
