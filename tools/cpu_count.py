"""Print how many CPU cores this process may really use: ``course_utils.cores.usable_cores``,
the smaller of its CPU affinity and its cgroup CPU quota.

``make lab`` and ``make run`` start kernels with ``OMP_NUM_THREADS`` set to this number, and
``make test`` starts this many pytest workers, so PyTorch does not start one thread per host
core and make them wait on each other. It runs with any Python 3.10+ (``course_utils.cores``
needs only the standard library), before ``.venv`` exists.

    $ python tools/cpu_count.py
    2
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_utils.cores import usable_cores  # noqa: E402  (the repository is on the path only now)

if __name__ == "__main__":
    print(usable_cores())
