"""course_utils/cores.py, the course's one core count, and tools/cpu_count.py, which prints it
for the Makefile (`make lab`'s threads, `make test`'s workers)."""

import os
import subprocess
import sys
from pathlib import Path

from course_utils import cores

REPO = Path(__file__).resolve().parent.parent


def test_quota_caps_the_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert cores.cgroup_cpu_limit(cpu_max) == 1
    assert cores.usable_cores(cpu_max) == 1
    cpu_max.write_text("150000 100000\n")  # 1.5 cores of quota -> 2 threads
    assert cores.cgroup_cpu_limit(cpu_max) == 2


def test_no_quota_means_affinity(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert cores.cgroup_cpu_limit(cpu_max) is None
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cores.usable_cores(cpu_max) == expected
    assert cores.cgroup_cpu_limit(tmp_path / "missing") is None
    cpu_max.write_text("garbage")
    assert cores.cgroup_cpu_limit(cpu_max) is None


def test_the_script_prints_the_count_without_the_course_installed() -> None:
    """-S -I: no site-packages (no torch), no PYTHONPATH: as `make lab` runs it before .venv exists."""
    result = subprocess.run([sys.executable, "-S", "-I", str(REPO / "tools" / "cpu_count.py")],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{cores.usable_cores()}\n"
