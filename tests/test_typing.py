"""mypy's configuration (pyproject.toml) catches what it is meant to: Vocab lookups have precise
types (one index for a token, a list for a list), so misusing one is a type error."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SNIPPET = '''
from course_utils.text import Vocab

vocab = Vocab(["a", "b"], reserved_tokens=["<eos>"])
index: int = vocab["a"]
indices: list[int] = vocab[["a", "b"]] + [vocab["<eos>"]]
token: str = vocab.to_tokens(index)
wrong = vocab["a"] + [vocab["<eos>"]]
'''


def test_mypy_types_vocab_lookups_precisely(tmp_path):
    snippet = tmp_path / "uses_vocab.py"
    snippet.write_text(SNIPPET)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
         str(snippet)],  # the cache in build/ that make test's mypy run warmed
        cwd=REPO, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "uses_vocab.py:8:" in errors[0], result.stdout + result.stderr
    assert 'Unsupported operand types for + ("int" and "list[int]")' in errors[0]
