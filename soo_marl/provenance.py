"""Where numbers came from: package versions, machine and code revision."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

from soo_marl.config import RunConfig

#: File in a study's folder with the provenance recorded when its first stage ran.
PROVENANCE = "provenance.json"


def provenance(device: str = RunConfig.device) -> dict[str, str]:
    """Package versions, machine and code revision, for reports."""
    import torch

    info = {"python": platform.python_version()}
    for pkg in ("soo-marl", "torch", "numpy", "pettingzoo", "gymnasium", "matplotlib"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    info["git revision"] = revision()
    info["machine"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    info["processor"] = processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    info["device"] = f"{device} (CUDA GPU: {gpu})"
    return info


def installed_versions() -> dict[str, str]:
    """Every installed distribution and its version (what actually ran, pinned or not)."""
    found = {d.metadata["Name"]: d.version for d in distributions() if d.metadata["Name"]}
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def run_provenance(device: str, episode: int) -> dict:
    """One line of a run's ``provenance.jsonl``: written each time the run starts or
    resumes, at ``episode`` episodes per seed, with the machine and every package version."""
    import torch

    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "episode": int(episode),
        "git revision": revision(),
        "python": platform.python_version(),
        "processor": processor(),
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "device": device,
        "torch threads": torch.get_num_threads(),
        "packages": installed_versions(),
    }


def revision() -> str:
    """``git describe --always --dirty`` of the installed code, or "unknown"."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def processor() -> str:
    """The CPU's name for a provenance record: its model name, else what Python reports."""
    return cpu_model() or platform.processor() or "unknown"


def cpu_model() -> str | None:
    """The CPU's model name (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
