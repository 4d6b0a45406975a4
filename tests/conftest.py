"""Shared test fixtures: keep every run inside a temp dir, no downloads, no SB3 temp folders."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


os.environ.setdefault("MPLBACKEND", "Agg")
