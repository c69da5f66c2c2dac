import json

import pytest
import torch

from course_utils.report import read_results, report_results


def test_report_prints_and_appends(tmp_path, monkeypatch, capsys):
    target = tmp_path / "r.jsonl"
    monkeypatch.setenv("COURSE_RESULTS_FILE", str(target))
    assert report_results({"acc": torch.tensor(0.8125), "epochs": 3, "name": "mlp"}) is None  # no Out[] echo
    assert capsys.readouterr().out == "results: acc=0.8125, epochs=3, name=mlp\n"
    assert read_results(target) == {"acc": 0.8125, "epochs": 3, "name": "mlp"}
    report_results({"acc": 0.9})
    assert read_results(target) == {"acc": 0.9, "epochs": 3, "name": "mlp"}
    assert len(target.read_text().splitlines()) == 2
    json.loads(target.read_text().splitlines()[0])


def test_report_rounds_the_shown_line_but_not_the_file(tmp_path, monkeypatch, capsys):
    target = tmp_path / "r.jsonl"
    monkeypatch.setenv("COURSE_RESULTS_FILE", str(target))
    report_results({"loss": 0.123456789, "big": 123456.0})
    assert capsys.readouterr().out == "results: loss=0.1235, big=1.235e+05\n"
    assert read_results(target) == {"loss": 0.123456789, "big": 123456.0}


def test_report_without_file_does_not_write(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_RESULTS_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    report_results({"x": True})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, error", [({}, ValueError), ({"x": float("nan")}, ValueError),
                                        ({"x": [1, 2]}, TypeError)])
def test_report_rejects_bad_values(bad, error):
    with pytest.raises(error):
        report_results(bad)


def test_read_results_missing_and_corrupt(tmp_path):
    assert read_results(tmp_path / "none.jsonl") == {}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:3"):
        read_results(bad)
