"""How many CPU cores this process may really use: the smaller of its CPU affinity and its cgroup
CPU quota (containers and CI machines often see all of the host's cores but may use two).

The one core count of the course: ``make lab`` gives each kernel this many torch threads
(through ``tools/cpu_count.py``), ``make run --jobs N`` gives each of its N kernels a share of
it, ``make test`` starts this many pytest workers and ``conftest.py`` shares it among them.
Standard library only, so ``tools/cpu_count.py`` runs before the course's packages are installed.

Introduced in ``notebooks/01_tensors.ipynb`` (``make lab`` starts every kernel with this many threads).
Copy alone.

>>> usable_cores() >= 1
True
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cgroup_cpu_limit", "usable_cores"]

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(cpu_max: Path = CPU_MAX) -> int | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` quota (``"200000 100000"`` -> 2), or None.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     quota = Path(tmp) / "cpu.max"
    ...     _ = quota.write_text("150000 100000")  # 1.5 cores of quota: 2 threads
    ...     cgroup_cpu_limit(quota)
    2
    """
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


def usable_cores(cpu_max: Path = CPU_MAX) -> int:
    """Cores this process may use: affinity, capped by the cgroup quota when there is one."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cpu_max)
    return min(cores, limit) if limit is not None else cores
