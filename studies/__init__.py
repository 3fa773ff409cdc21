"""Study files shipped with soo-marl (installed as ``soo_marl.studies``): run one with
``soo-marl sweep studies/<name>.yaml --out DIR``. The ``quick``, ``paper`` and ``test``
studies are the presets of ``soo-marl reproduce``. The format: ``README.md``."""
