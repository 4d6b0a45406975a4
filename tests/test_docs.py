"""docs/reliability.md names the test that holds each entry: those tests exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_reliability_table_names_exists():
    doc = (ROOT / "docs" / "reliability.md").read_text()
    named, current = [], None
    for cell in re.findall(r"`([^`]+)`", doc):
        for part in cell.split(", "):
            match = re.fullmatch(r"([\w/]+\.py)?::(test_\w+)", part)
            if match:  # `file.py::test` or `::test` (the file named last)
                current = match.group(1) or current
                named.append((current, match.group(2)))
    assert len(named) > 40
    missing = [(f, t) for f, t in named if f"def {t}(" not in (ROOT / "tests" / f).read_text()]
    assert not missing, missing
