"""Environments of soo-marl (installed as ``soo_marl.envs``)."""

from soo_marl.envs import core, physical_deception_v0

__all__ = ["core", "physical_deception_v0"]


def _register() -> None:
    """Register with PettingZoo's registry where the installed version has one."""
    try:
        from pettingzoo import register
    except ImportError:  # older PettingZoo: no registry
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        register(
            "parallel",
            "soo_marl/physical_deception_v0",
            "soo_marl.envs.physical_deception_v0:parallel_env",
        )
        register("aec", "soo_marl/physical_deception_v0", "soo_marl.envs.physical_deception_v0:env")


_register()
