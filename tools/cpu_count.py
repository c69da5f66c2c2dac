"""Print how many CPU cores this process may really use: the smaller of its CPU affinity and
its cgroup CPU quota (containers and CI often see all of the host's cores but may use two).

``make lab`` and ``make run`` start kernels with ``OMP_NUM_THREADS`` set to this number, so
PyTorch does not start one thread per host core and make them wait on each other.

    $ python tools/cpu_count.py
    2
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpu_limit(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` quota (``"200000 100000"`` -> 2), or None."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use: affinity, capped by the cgroup quota when there is one."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cpu_max)
    return min(cores, limit) if limit is not None else cores


if __name__ == "__main__":
    print(usable_cores())
