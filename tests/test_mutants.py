"""The mutation harness (tools/mutants.py): kills, survivors, baselines and rotten catalogues."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutants_tool", REPO / "tools" / "mutants.py")
mutants = importlib.util.module_from_spec(_spec)
sys.modules["mutants_tool"] = mutants  # dataclasses look their module up there
_spec.loader.exec_module(mutants)

TOY = ("def double(x):\n    return 2 * x", "assert double(3) == 6", "y = double(0)\nprint('ok')")
KILLED = ('[[mutant]]\nid = "plus"\nbug = "adds instead of multiplying"\n'
          'find = "return 2 * x"\nreplace = "return 2 + x"\n')
SURVIVES = ('[[mutant]]\nid = "unchecked"\nbug = "an unchecked value"\n'
            'find = "y = double(0)"\nreplace = "y = double(1)"\n')


def project(root: Path, catalogue: str, cells=TOY) -> Path:
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "mutants").mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Toy")] + [nbformat.v4.new_code_cell(s) for s in cells]
    nbformat.write(nb, root / "notebooks" / "01_toy.ipynb")
    (root / "mutants" / "01_toy.toml").write_text(catalogue)
    return root


@pytest.mark.slow
def test_killed_survived_and_baseline_are_reported(tmp_path, capsys):
    root = project(tmp_path, KILLED + SURVIVES)
    assert mutants.main(["--root", str(root), "--jobs", "2", "--baseline"]) == 1  # one survivor
    rows = {r["id"]: r for r in json.loads((root / "build" / "mutants.json").read_text())}
    assert rows["baseline"]["status"] == "PASSED"
    assert rows["plus"]["status"] == "KILLED"
    assert rows["plus"]["cell"] == "Cell 1: assert double(3) == 6"  # nbval numbers code cells only
    assert "AssertionError" in rows["plus"]["message"]
    assert rows["unchecked"]["status"] == "SURVIVED" and rows["unchecked"]["cell"] == ""
    report = (root / "build" / "mutants.md").read_text()
    assert re.search(r"\| 01_toy \| 2 \| 1 \| [\d.]+ \|", report), report
    assert "SURVIVED: 01_toy::unchecked" in capsys.readouterr().err


@pytest.mark.slow
def test_timeout_counts_as_killed(tmp_path):
    root = project(tmp_path, KILLED.replace("return 2 + x", "import time; time.sleep(60)"))
    assert mutants.main(["--root", str(root), "--timeout", "1"]) == 0
    [row] = json.loads((root / "build" / "mutants.json").read_text())
    assert row["status"] == "KILLED (timeout)"


FACTS = """import json, os, signal, socket, sys
import matplotlib, torch
ip = get_ipython()
facts = {"cwd": os.getcwd(), "path": sys.path, "argv0": sys.argv[0], "backend": matplotlib.get_backend(),
         "shell": type(ip).__name__, "threads": torch.get_num_threads(), "smoke": os.environ.get("COURSE_SMOKE"),
         "sigint": repr(signal.getsignal(signal.SIGINT)), "guard": getattr(socket, "_course_guarded", False),
         "sitecustomize": getattr(sys.modules.get("sitecustomize"), "__file__", None),
         "env": sorted(k for k in os.environ if not k.startswith(("COURSE_WARM", "JUPYTER_PATH")))}
open(os.environ["FACTS_FILE"], "w").write(json.dumps(facts))"""


@pytest.mark.slow
def test_a_warm_kernel_is_like_a_cold_one(tmp_path):
    """tools/warm_start.py forks pytest and kernels from a warm process: what a notebook can see
    of its kernel (folder, sys.path, backend, threads, environment, signal handling, the network
    guard that conftest.py installs through sitecustomize) is the same. Run as `make mutants` runs
    it: a fresh process, outside this test session's environment, in a project with the
    repository's conftest.py and network guard."""
    root = project(tmp_path / "p", KILLED, cells=TOY[:2] + (FACTS,))
    shutil.copy(REPO / "conftest.py", root / "conftest.py")
    shutil.copytree(REPO / "tests" / "netguard", root / "tests" / "netguard")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "COURSE_NETWORK_GUARD", "MPLBACKEND"}}
    facts = {}
    for mode in ("cold", "warm"):
        env["FACTS_FILE"] = str(tmp_path / f"{mode}.json")
        subprocess.run([sys.executable, str(REPO / "tools" / "mutants.py"), "--root", str(root), "--baseline",
                        "-k", "::baseline", *["--cold"] * (mode == "cold")], env=env, check=True, cwd=REPO,
                       capture_output=True)
        facts[mode] = json.loads((tmp_path / f"{mode}.json").read_text())
    log = (root / "build" / "mutants" / "01_toy__baseline" / "pytest.log").read_text()
    assert "warm-start: cold" not in log  # the warm run really was warm
    assert facts["warm"] == facts["cold"]
    assert facts["warm"]["shell"] == "ZMQInteractiveShell" and facts["warm"]["smoke"] == "1"
    assert facts["warm"]["guard"] is True and facts["warm"]["backend"].lower() == "agg"


def test_a_different_start_up_environment_is_served_cold(monkeypatch):
    warm_start = mutants.warm_start
    server_env = warm_start.startup_env({"COURSE_SMOKE": "1", "PYTHONPATH": "/a:/b:/a"})
    monkeypatch.setattr(warm_start, "SERVER_ENV", server_env)
    same = {"kind": "kernel", "argv": ["-f", "k.json"],
            "env": {"COURSE_SMOKE": "1", "PYTHONPATH": "/a:/b", "HOME": "/x"}}
    assert warm_start._cold_command(same) is None  # PYTHONPATH compared as the list site makes of it
    other = dict(same, env={"COURSE_SMOKE": "0", "PYTHONPATH": "/a:/b"})
    assert warm_start._cold_command(other) == [sys.executable, "-m", "ipykernel_launcher", "-f", "k.json"]


@pytest.mark.parametrize("catalogue, problem", [
    (KILLED.replace('"return 2 * x"', '"return 3 * x"'), "occurs 0 times"),  # missing find
    (KILLED.replace('"return 2 * x"', '"double"'), "occurs 3 times"),  # ambiguous find
    (KILLED + KILLED, "id must be unique"),
    (KILLED + 'note = "x"\n', "keys must be"),
    (KILLED.replace('"return 2 + x"', '"return 2 * x"'), "find == replace"),
    ('title = "toy"\n' + KILLED, "unknown top-level key 'title'"),
    (KILLED.replace("adds instead", "adds\\n instead"), "bug must be one non-empty line"),
    ("", "no [[mutant]] tables"),
])
def test_invalid_catalogue_fails_before_anything_runs(tmp_path, capsys, catalogue, problem):
    root = project(tmp_path, catalogue)
    assert mutants.main(["--root", str(root)]) == 2
    assert problem in capsys.readouterr().err
    assert not (root / "build").exists()


def test_catalogue_without_its_notebook_is_invalid(tmp_path, capsys):
    root = project(tmp_path, KILLED)
    (root / "mutants" / "02_gone.toml").write_text(KILLED)
    assert mutants.main(["--root", str(root), "--check"]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_mutant_replaces_the_text_in_a_copy_only(tmp_path):
    root = project(tmp_path, KILLED)
    [m] = mutants.load_all(root, [])
    nb = mutants.mutate(json.loads((root / "notebooks" / "01_toy.ipynb").read_text()), m)
    assert mutants.code_sources(nb)[0] == "def double(x):\n    return 2 + x"
    assert "return 2 * x" in (root / "notebooks" / "01_toy.ipynb").read_text()


def test_the_course_catalogues_are_valid():
    assert mutants.main(["--check"]) == 0


def test_every_chapter_from_02_has_at_least_three_mutants():
    counts = Counter(m.notebook for m in mutants.load_all(REPO, []))
    chapters = [p.stem for p in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")) if p.stem[:2] >= "02"]
    assert {c: counts[c] for c in chapters if counts[c] < 3} == {}
