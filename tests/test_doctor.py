import subprocess
import sys

import pytest

from course_utils.__main__ import main


def test_doctor_reports_versions_device_and_data(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.delenv("COURSE_DATA", raising=False)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for expected in ["Python", "torch", "torchvision", "device", "data root", "fashion-mnist  verified"]:
        assert expected in out


def test_doctor_fails_on_bad_device_and_missing_data(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    assert main(["doctor"]) == 1
    assert "ERROR" in capsys.readouterr().out
    monkeypatch.delenv("COURSE_DEVICE")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert main(["doctor"]) == 1
    assert "missing" in capsys.readouterr().out


def test_doctor_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "course_utils", "doctor"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "device" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "course_utils", "nonsense"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2
