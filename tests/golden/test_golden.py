"""Seeded results stay what they were: benchmark rounds and environment trajectories against the
recordings in ``tests/golden/data`` (made with ``python -m tests.golden.golden record``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .golden import compare, run_case

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.glob("*.json"))


def test_golden_files_exist():
    kinds = {json.loads(f.read_text())["case"]["kind"] for f in FILES}
    assert kinds == {"bench", "env", "vector"}


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_same_as_recorded(path):
    recorded = json.loads(path.read_text())
    fresh = json.loads(json.dumps(run_case(recorded["case"])))
    diffs = compare(recorded["result"], fresh["result"])
    assert not diffs, "\n".join(diffs[:20])


def test_compare_detects_a_change():
    rec = {"a": [1.0, 2.0], "b": {"c": 3}}
    assert compare(rec, {"a": [1.0, 2.0 * (1 + 1e-12)], "b": {"c": 3}}) == []
    assert compare(rec, {"a": [1.0, 2.0 * (1 + 1e-8)], "b": {"c": 3}})
    assert compare(rec, {"a": [1.0, 2.0], "b": {"c": 4}})
