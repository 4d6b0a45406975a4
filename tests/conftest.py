"""Shared test fixtures: keep every run inside a temp dir, no downloads, no SB3 temp folders."""

from __future__ import annotations

import os

# Two xdist workers on two cores: one torch thread each, or they fight over the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


os.environ.setdefault("MPLBACKEND", "Agg")
