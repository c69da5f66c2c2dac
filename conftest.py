"""Set-up for every test run (unit tests and notebooks, `make test` or `pytest notebooks`):
no network, sensible threads per xdist worker, a non-interactive matplotlib backend."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
GUARD_DIR = REPO / "tests" / "netguard"

# Notebook kernels started by nbval inherit this environment: their Python imports
# tests/netguard/sitecustomize.py at start-up and so cannot reach the network either.
os.environ["COURSE_NETWORK_GUARD"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(GUARD_DIR), str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
os.environ.setdefault("MPLBACKEND", "Agg")

_spec = importlib.util.spec_from_file_location("course_netguard", GUARD_DIR / "sitecustomize.py")
assert _spec is not None and _spec.loader is not None
netguard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netguard)
netguard.install()


def pytest_configure(config: pytest.Config) -> None:
    # With pytest-xdist every worker runs its own kernel: share the cores instead of
    # letting each torch use all of them (2 workers x 2 threads on 2 cores thrash).
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and int(workers) > 1:
        from course_utils.cores import usable_cores  # affinity capped by the cgroup quota

        threads = str(max(1, usable_cores() // int(workers)))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, threads)
