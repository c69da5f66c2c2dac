"""Fixtures for the unit tests (the network guard and thread set-up live in ../conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_root() -> Path:
    """The repository's data folder (the shipped datasets)."""
    return REPO / "data"
