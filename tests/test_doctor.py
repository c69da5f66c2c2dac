import re
import subprocess
import sys

from course_utils.__main__ import main


def test_doctor_reports_versions_device_and_data(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.delenv("COURSE_DATA", raising=False)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for expected in ["Python", "torch", "torchvision", "device", "precision", "channels_last", "data root"]:
        assert expected in out
    for dataset in ["fashion-mnist", "movielens-small", "bike-sharing"]:  # every registered dataset
        assert re.search(rf"^  {dataset} +verified$", out, re.MULTILINE), dataset


def test_doctor_fails_on_bad_device_and_missing_data(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    assert main(["doctor"]) == 1
    assert "ERROR" in capsys.readouterr().out
    monkeypatch.delenv("COURSE_DEVICE")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert main(["doctor"]) == 1
    assert "missing" in capsys.readouterr().out
    monkeypatch.delenv("COURSE_DATA")
    monkeypatch.setenv("COURSE_PRECISION", "fp16")
    assert main(["doctor"]) == 1
    assert "ERROR: COURSE_PRECISION='fp16' is not understood" in capsys.readouterr().out


def test_doctor_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "course_utils", "doctor"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "device" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "course_utils", "nonsense"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2


def test_doctor_reports_settings_typos_and_a_folder_in_place_of_a_file(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setenv("COURSE_OFFLINE", "maybe")
    assert main(["doctor"]) == 1
    assert "ERROR: COURSE_OFFLINE='maybe' is not understood" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "no" / "data"))
    assert main(["doctor"]) == 1
    assert "nor its parent folder exists" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    assert main(["doctor"]) == 1
    assert "does not exist yet; it will be created" in capsys.readouterr().out
    (tmp_path / "data" / "airfoil" / "airfoil_self_noise.dat").mkdir(parents=True)
    assert main(["doctor"]) == 1
    assert "not a file: airfoil/airfoil_self_noise.dat is a folder" in capsys.readouterr().out
