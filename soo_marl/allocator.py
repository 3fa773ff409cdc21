"""Keep freed tensor memory in the process instead of handing it back to the system.

An update round allocates and frees dozens of 1–4 MB tensors. With glibc's defaults, blocks
that size are mapped fresh from the kernel and unmapped when freed, so every round pays
for thousands of page faults (measured: about 9,700 per round at 8 seeds, a third of the
round's time). Raising glibc's mmap and trim thresholds keeps that memory in the heap for
reuse. Nothing is computed differently; on systems without glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

# the learner's memory error and byte formatting, re-exported for the app's checks
from soo_marl.agents.buffer import InsufficientMemory, fmt_bytes

#: glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap threshold to 32 MB and its trim threshold to 1 GB, once per
    process; returns whether it applied. ``SOO_MARL_DEFAULT_MALLOC=1`` leaves glibc as it is."""
    global _done
    if _done:
        return True
    if os.environ.get("SOO_MARL_DEFAULT_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all(
        mallopt(param, value) == 1
        for param, value in (
            (_M_MMAP_THRESHOLD, 32 << 20),
            (_M_TRIM_THRESHOLD, 1 << 30),
            (_M_TOP_PAD, 64 << 20),
        )
    )
    _done = ok
    return ok


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (MB) since it started or since the last
    :func:`reset_peak_rss`; None where /proc is not available."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Start a new peak-memory measurement (Linux: /proc/self/clear_refs); False if not
    possible, in which case :func:`peak_rss_mb` keeps the peak since the start."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes, by field name; empty where there is none."""
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        return {}
    return out


#: Memory limit, usage and statistics files of a cgroup v2 and a cgroup v1 memory controller
#: (as seen from inside a container: its own group is mounted at these paths).
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
     "inactive_file"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
     "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"),
)  # fmt: skip


def _cgroup_room(total: int) -> int | None:
    """Bytes left under this container's cgroup memory limit (its usage less the page
    cache it can drop); None without a limit below ``total``."""
    for limit_file, usage_file, stat_file, cache_key in _CGROUP_FILES:
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= total:
                return None
            usage = int(Path(usage_file).read_text())
            stats = dict(line.split() for line in Path(stat_file).read_text().splitlines())
            return max(0, int(limit) - usage + int(stats.get(cache_key, 0)))
        except (OSError, ValueError):
            continue
    return None


def memory_available(device: str | None = None) -> tuple[int, str] | None:
    """Bytes of memory a new allocation can use (without swapping), and where that figure
    comes from; None where it cannot be found out.

    A CUDA ``device``: its free memory (``torch.cuda.mem_get_info``). Otherwise host memory;
    on Linux ``MemAvailable`` of /proc/meminfo (free memory plus the page cache and other
    memory the kernel can reclaim; ``SC_AVPHYS_PAGES`` counts free pages only and would
    call a machine with a full page cache short of memory), lowered to the room left under
    a cgroup memory limit where one is set (containers). Elsewhere: free pages
    (``SC_AVPHYS_PAGES`` × page size) where the system reports them.
    """
    if device is not None and str(device).startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(device)[0], f"free memory of {device}"
    info = _meminfo()
    if "MemAvailable" in info:
        avail, source = info["MemAvailable"], "MemAvailable in /proc/meminfo"
        room = _cgroup_room(info.get("MemTotal", 0))
        if room is not None and room < avail:
            avail, source = room, "the cgroup memory limit less its usage"
        return avail, source
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    if pages < 0 or size <= 0:
        return None
    return pages * size, "free pages (sysconf)"


def check_memory(needed: int, what: str, hint: str = "", device: str | None = None) -> None:
    """Refuse (:class:`InsufficientMemory`, one line) when ``needed`` bytes exceed
    :func:`memory_available` on ``device`` (default: host memory); ``what`` says what needs
    them, ``hint`` what to do. Nothing is refused where the available memory is unknown."""
    found = memory_available(device)
    if found is None or needed <= found[0]:
        return
    avail, source = found
    tail = f"; {hint}" if hint else ""
    raise InsufficientMemory(
        f"not enough memory: {what} need at least {fmt_bytes(needed)}, but {fmt_bytes(avail)} is "
        f"available ({source}){tail}"
    )
