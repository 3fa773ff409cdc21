"""``soo-marl sweep``: whole studies (graphs of train, stack, finetune, evaluate, classify,
plot, report, gate and analysis stages) from a YAML study file, run locally or on a Ray cluster.
Each stage is a typed task of :mod:`soo_marl.tasks`.

- :mod:`~soo_marl.sweep.spec`: the study-file format, its validation and the task of
  each stage;
- :mod:`~soo_marl.sweep.costs`: the time and resources each stage declares (its task's
  :meth:`~soo_marl.tasks.Task.estimate`, with the study's ``resources`` on top);
- :mod:`~soo_marl.sweep.run`: running a study (each task in a process of its own, or in a
  Ray worker), resumably.
"""

from soo_marl.sweep.run import StudyInterrupted, run_study
from soo_marl.sweep.spec import Study, StudyError, load_study, parse_study

__all__ = ["Study", "StudyError", "StudyInterrupted", "load_study", "parse_study", "run_study"]
