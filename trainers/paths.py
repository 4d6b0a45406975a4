"""Output paths of the commands: checked before any work, created with one-line errors.

``check_out_dir`` / ``check_out_file`` reject, before anything runs, an output that cannot be
written: an existing file where a folder is asked for (or a folder where a file is), a path under
a file, a location that is not writable. ``make_out_dir`` creates the folder and turns whatever the
file system still refuses into the same one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path

from psl_env.config_files import clip

from .errors import UsageError


def _q(path: Path) -> str:
    return repr(clip(str(path)))


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_location(path: Path, flag: str) -> None:
    """``path`` may be created: its nearest existing ancestor is a writable folder."""
    anchor = _nearest_existing(path.parent if not path.exists() else path)
    if not anchor.is_dir():
        raise UsageError(f"{flag}: {_q(path)} is under {_q(anchor)}, which is a file; allowed: a path in a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: {_q(path)} cannot be written ({_q(anchor)} is not writable)")


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """An output folder that exists or can be created (nothing is created here)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag}: {_q(out)} exists and is not a folder; allowed: a folder path")
    _check_location(out, flag)
    return out


def check_out_file(path: str | Path, flag: str = "--out") -> Path:
    """An output file path that can be written (its folder may still have to be created)."""
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{flag}: {_q(out)} is a folder; allowed: a file path")
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"{flag}: {_q(out)} cannot be written (no write permission)")
    _check_location(out, flag)
    return out


def make_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create an output folder (and its parents); a refusal of the file system is one line."""
    out = check_out_dir(path, flag)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag}: cannot create {_q(out)} ({err.strerror or type(err).__name__})") from None
    return out


__all__ = ["check_out_dir", "check_out_file", "make_out_dir"]
