"""Config files: the shipped scenarios and agent configs, and reading a YAML file safely.

The repository keeps the shipped files in ``configs/scenarios``, ``configs/agents`` and
``configs/sweeps``; the build installs that folder as the package ``psl_env.configs`` (see
``pyproject.toml``), so an installed wheel and an editable checkout find them the same way, through
``importlib.resources``.

``read_yaml`` turns every way a file can be wrong (missing, a folder, not text, too large, empty,
invalid YAML, a key given twice) into one error naming the file, and ``brief`` keeps any value
quoted in an error message short, however large (or alias-expanded) the YAML made it.
"""

from __future__ import annotations

import reprlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

KINDS = ("scenarios", "agents", "sweeps")
MAX_BYTES = 1 << 20  # a scenario or agent config is a few hundred bytes; refuse anything above 1 MiB
MAX_SHOWN = 160  # characters of a value quoted in an error message

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 4, 4, 4
_repr.maxstring = _repr.maxother = 80


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks a cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def brief(value: Any) -> str:
    """``repr(value)``, bounded in depth, width and length (safe on huge or alias-expanded values)."""
    return clip(_repr.repr(value))


def shipped(kind: str) -> dict[str, Any]:
    """Shipped config files of ``kind`` (``scenarios``, ``agents`` or ``sweeps``): name -> resource (``Traversable``)."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not allowed; allowed: {list(KINDS)}")
    root = resources.files("psl_env.configs").joinpath(kind)
    if not root.is_dir():  # an install that ships none of this kind
        return {}
    return {p.name[: -len(".yaml")]: p for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".yaml") and p.is_file()}


def locate(name_or_path: str | Path, kind: str, label: str, error: type[Exception] = ValueError) -> tuple[Any, str]:
    """``(source, stem)`` of a config named by an existing file path, else by a shipped name of ``kind``.

    ``label`` starts the message when it is neither (e.g. ``"--config"``).
    """
    found = shipped(kind)
    path = Path(name_or_path)
    if not path.is_file() and str(name_or_path) in found:
        return found[str(name_or_path)], str(name_or_path)
    if not path.exists():
        noun = {"scenarios": "scenario", "sweeps": "sweep"}.get(kind, "config")
        raise error(f"{label}: {brief(str(name_or_path))} is neither a file nor a shipped {noun}; allowed: "
                    f"{list(found)} or a path to a .yaml file")
    return path, path.stem


def _check_unique_keys(node: Any, source: str, error: type[Exception], seen: set[int]) -> None:
    """Raise on a mapping that repeats a key (``yaml.safe_load`` would keep the last one silently)."""
    stack = [node]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # aliases share nodes: visit each once (an alias bomb stays cheap)
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        raise error(f"{source}: key {brief(key.value)} is given twice (line {key.start_mark.line + 1})")
                    keys.add(key.value)
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def read_yaml(source: Any, what: str, error: type[Exception] = ValueError) -> Any:
    """The YAML document of ``source`` (a path or a shipped resource), loaded with ``yaml.safe_load``.

    Args:
        source: a ``str`` / ``Path`` of a file, or a resource from ``shipped``.
        what: how the file is named in error messages (e.g. ``"scenario 'x.yaml'"``).
        error: the exception class raised, with one line naming the file and what is wrong.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            if path.is_dir():
                raise error(f"{what}: is a folder, not a YAML file")
            if not path.is_file():
                raise error(f"{what}: no such file" if not path.exists() else f"{what}: not a regular file")
            if path.stat().st_size > MAX_BYTES:
                raise error(f"{what}: {path.stat().st_size} bytes; allowed: a YAML file of at most {MAX_BYTES} bytes")
            raw = path.read_bytes()
        except OSError as err:
            raise error(f"{what}: cannot be read ({err.strerror or type(err).__name__})") from None
    else:
        raw = source.read_bytes()
    if b"\0" in raw:
        raise error(f"{what}: not a text file (binary content)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what}: not a UTF-8 text file") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_unique_keys(root, what, error, set())
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or (str(err).strip().splitlines() or [type(err).__name__])[0]
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{what}: not valid YAML ({clip(problem)}{where})") from None
    if data is None:
        raise error(f"{what}: the file is empty")
    return data


__all__ = ["KINDS", "MAX_BYTES", "brief", "clip", "locate", "read_yaml", "shipped"]
