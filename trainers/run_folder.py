"""A training run folder treated as a small database.

* ``RunLock``: one writer per run folder. ``DIR/.lock`` is locked (``flock``) for as long as a
  command writes there and names its holder, so a second ``psl train --out DIR`` (or ``--resume
  DIR``) stops with one line naming the first.
* ``write_atomic``: every checkpoint file is written to a temporary name and renamed into place,
  so a file under its final name is always complete.
* The checkpoint manifest (``checkpoints/manifest.json``, itself replaced atomically) lists the
  complete checkpoints with each file's size and SHA-256, and how many rows ``progress.csv`` and
  ``eval.csv`` had when it was taken. ``usable_checkpoints`` checks those entries newest first, so a
  resume takes the newest checkpoint whose files are all intact and says which ones it skipped.
* ``rewind_table``: before a resumed run appends to ``progress.csv`` / ``eval.csv``, the rows
  written after the checkpoint (by the run that stopped) are dropped, so the tables continue
  without duplicates.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from psl_env.config_files import clip

from .errors import UsageError
from .paths import make_out_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: no locking
    fcntl = None

LOCK_FILE = ".lock"
MANIFEST = "manifest.json"
TMP_MARK = ".tmp-"


def _in_use(folder: Path, holder: str, flag: str) -> UsageError:
    return UsageError(f"{flag}: {str(folder)!r} is in use by {clip(holder or 'another process', 300)}; wait for "
                      "it to finish or choose another folder")


def check_not_in_use(folder: str | Path, flag: str = "--out") -> None:
    """Raise ``UsageError`` naming the holder if another process holds the folder's lock."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        raise _in_use(Path(folder), os.read(fd, 4096).decode("utf-8", "replace").strip(), flag) from None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class RunLock:
    """An exclusive lock on a run folder while a command writes there (a context manager).

    Entering creates the folder if needed and locks ``DIR/.lock``; a folder locked by another
    process raises ``UsageError`` naming the holder (pid, host, start time, command). If the body
    fails and this lock created the folder, which holds nothing else, the folder is removed again.
    """

    def __init__(self, folder: str | Path, command: str, flag: str = "--out") -> None:
        self.folder = Path(folder)
        self.command = command
        self.flag = flag
        self._fd: int | None = None
        self._created = False

    def __enter__(self) -> "RunLock":
        self._created = not self.folder.exists()
        make_out_dir(self.folder, self.flag)
        path = self.folder / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UsageError(f"{self.flag}: cannot lock {str(self.folder)!r} ({err.strerror})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
                os.close(fd)
                raise _in_use(self.folder, holder, self.flag) from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started} ({clip(self.command)})\n".encode())
        self._fd = fd
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._fd is None:
            return
        if exc_type is not None and self._created and {p.name for p in self.folder.iterdir()} == {LOCK_FILE}:
            (self.folder / LOCK_FILE).unlink()
            self.folder.rmdir()
        os.close(self._fd)  # closing releases the lock
        self._fd = None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary name in ``path``'s folder, flushed to disk, then renamed to ``path``."""
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_record(path: Path) -> dict:
    """Name, size and SHA-256 of a written file (what the manifest keeps of it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _fault(folder: Path, record: dict) -> str | None:
    """Why a manifest file record does not match the file on disk (None: it does)."""
    path = folder / record["name"]
    if not path.is_file():
        return f"{record['name']} is missing"
    size = path.stat().st_size
    if size != record["bytes"]:
        return f"{record['name']} has {size} of {record['bytes']} bytes"
    if file_record(path)["sha256"] != record["sha256"]:
        return f"{record['name']} is damaged (checksum)"
    return None


@dataclass
class Checkpoint:
    """One checkpoint: its steps, its files by role (model, state, vecnormalize, replay_buffer) and the
    table lengths when it was taken (None: unknown, e.g. an older checkpoint without a manifest)."""

    steps: int
    files: dict[str, str]
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)

    def path(self, role: str) -> Path | None:
        name = self.files.get(role)
        return None if name is None else self.folder / name


def read_manifest(folder: Path) -> list[dict] | None:
    """The manifest's checkpoint entries, oldest first (None: no readable manifest)."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
        entries = data["checkpoints"]
        assert isinstance(entries, list)
        return sorted(entries, key=lambda e: int(e["steps"]))
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return None


def add_to_manifest(folder: Path, steps: int, files: dict[str, Path], rows: dict[str, int]) -> None:
    """Record a checkpoint whose files are all in place (replaces an entry with the same steps)."""
    entries = [e for e in read_manifest(folder) or [] if int(e["steps"]) != steps]
    entries.append({"steps": int(steps), "files": {role: file_record(p) for role, p in files.items()},
                    "rows": rows, "written": datetime.datetime.now().astimezone().isoformat(timespec="seconds")})
    entries.sort(key=lambda e: e["steps"])
    text = json.dumps({"format": 1, "checkpoints": entries}, indent=1) + "\n"
    write_atomic(folder / MANIFEST, lambda tmp: tmp.write_text(text))


def _legacy_checkpoints(folder: Path) -> list[Checkpoint]:
    """Checkpoints of a folder written before manifests existed: by file name, oldest first."""
    found = []
    for zip_path in folder.glob("ckpt_*_steps.zip"):
        try:
            steps = int(zip_path.stem.split("_")[1])
        except (IndexError, ValueError):
            continue
        prefix = f"ckpt_{steps}"
        files = {"model": zip_path.name}
        for role, suffix in (("state", "_state.pkl"), ("vecnormalize", "_vecnormalize.pkl"),
                             ("replay_buffer", "_replay_buffer.pkl")):
            if (folder / f"{prefix}{suffix}").is_file():
                files[role] = f"{prefix}{suffix}"
        found.append(Checkpoint(steps, files, folder))
    return sorted(found, key=lambda c: c.steps)


def usable_checkpoints(folder: Path, needs: tuple[str, ...] = ("model", "state")) -> tuple[list[Checkpoint], list[str]]:
    """Checkpoints whose files are intact, newest first, and why newer ones were skipped.

    With a manifest, every file must match its recorded size and checksum; without one (an older
    run folder), the files named ``needs`` must exist and the model must be a zip archive.
    """
    import zipfile  # noqa: PLC0415

    entries = read_manifest(folder)
    usable, skipped = [], []
    if entries is None:
        for ckpt in reversed(_legacy_checkpoints(folder)):
            missing = [role for role in needs if role not in ckpt.files]
            if missing or not zipfile.is_zipfile(ckpt.path("model")):
                skipped.append(f"ckpt {ckpt.steps}: " + (f"no {missing[0]} file" if missing else "model is not a zip"))
            else:
                usable.append(ckpt)
        return usable, skipped
    for entry in reversed(entries):
        faults = [f for f in (_fault(folder, rec) for rec in entry["files"].values()) if f]
        missing = [role for role in needs if role not in entry["files"]]
        if faults or missing:
            skipped.append(f"ckpt {entry['steps']}: " + (faults[0] if faults else f"no {missing[0]} file"))
        else:
            usable.append(Checkpoint(int(entry["steps"]), {r: rec["name"] for r, rec in entry["files"].items()},
                                     folder, dict(entry.get("rows") or {})))
    return usable, skipped


def discard_after(folder: Path, steps: int) -> None:
    """Remove the checkpoints newer than ``steps`` (a resume from ``steps`` abandons them) and stray
    temporary files of interrupted writes."""
    entries = read_manifest(folder)
    names: set[str] = set()
    if entries is not None:
        names = {rec["name"] for e in entries if int(e["steps"]) > steps for rec in e["files"].values()}
        kept = [e for e in entries if int(e["steps"]) <= steps]
        if len(kept) != len(entries):
            text = json.dumps({"format": 1, "checkpoints": kept}, indent=1) + "\n"
            write_atomic(folder / MANIFEST, lambda tmp: tmp.write_text(text))
    for path in folder.iterdir():
        if path.name in names or TMP_MARK in path.name:
            path.unlink()


def table_rows(path: Path) -> int:
    """Data rows of a CSV table (0 when it does not exist yet)."""
    if not path.is_file():
        return 0
    with open(path, newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def rewind_table(path: Path, rows: int | None) -> list[str]:
    """Keep the header and the first ``rows`` data rows of a CSV table (None: keep all); returns the
    header's columns ([] when there is no table)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    if not table:
        return []
    if rows is not None and len(table) - 1 > rows:
        kept = table[: rows + 1]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerows(kept)

        write_atomic(path, write)
    return table[0]


__all__ = ["Checkpoint", "LOCK_FILE", "MANIFEST", "RunLock", "add_to_manifest", "check_not_in_use", "discard_after", "file_record",
           "read_manifest", "rewind_table", "table_rows", "usable_checkpoints", "write_atomic"]
