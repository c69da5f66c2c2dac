"""tools/cpu_count.py: the thread count `make lab` gives the kernels."""

import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "cpu_count", Path(__file__).resolve().parent.parent / "tools" / "cpu_count.py")
assert _spec is not None and _spec.loader is not None
cpu_count = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpu_count)


def test_quota_caps_the_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert cpu_count.cgroup_cpu_limit(cpu_max) == 1
    assert cpu_count.usable_cores(cpu_max) == 1
    cpu_max.write_text("150000 100000\n")  # 1.5 cores of quota -> 2 threads
    assert cpu_count.cgroup_cpu_limit(cpu_max) == 2


def test_no_quota_means_affinity(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert cpu_count.cgroup_cpu_limit(cpu_max) is None
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpu_count.usable_cores(cpu_max) == expected
    assert cpu_count.cgroup_cpu_limit(tmp_path / "missing") is None
    cpu_max.write_text("garbage")
    assert cpu_count.cgroup_cpu_limit(cpu_max) is None
