"""Fixtures for the unit tests (the network guard and thread set-up live in ../conftest.py)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_root() -> Path:
    """The repository's data folder (the shipped datasets)."""
    return REPO / "data"


@pytest.fixture
def local_ports_lock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run the tests that hold it one at a time, across pytest-xdist workers.

    torchrun (its rendezvous store and gloo's connections) and a Jupyter server with its kernels
    each pick free local ports and bind them moments later; run side by side, one could take a
    port the other just picked. This is a precaution against a suspected cause of a torchrun
    worker's abort at exit, not a proven one. The lock file lives in the directory the workers
    share.
    """
    lock_path = tmp_path_factory.getbasetemp().parent / "local-ports.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
