"""Helpers for the executable deep learning course (see README.md)."""

__version__ = "0.1.0"
