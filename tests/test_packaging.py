"""The wheel's contents: every package of the source tree and the shipped config files.

(``make test`` also builds the wheel, installs it into a fresh virtualenv and runs ``psl`` from
outside the repository: ``.ci/wheel-smoke``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from psl_env.config_files import shipped

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("psl_env", "agents", "trainers")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found | {"psl_env.configs"} == listed


def test_shipped_configs_are_the_repository_configs_folder():
    for kind in ("scenarios", "agents", "sweeps"):
        files = shipped(kind)
        assert sorted(files) == sorted(p.stem for p in (ROOT / "configs" / kind).glob("*.yaml"))
        for name, resource in files.items():
            assert resource.read_bytes() == (ROOT / "configs" / kind / f"{name}.yaml").read_bytes()
