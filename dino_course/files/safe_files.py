"""Writing files the course owns without ever leaving them half-written.

Everything the course writes for a learner (progress, checkpoints, generated stubs, metrics)
goes through `atomic_write_bytes`: the data goes to a temporary file in the same folder,
is flushed to disk, and then renamed over the target in one step, so a crash or Ctrl-C
leaves either the old file or the new one, never a mix. The file gets the permissions a plain
`open(path, "w")` would give it (a replaced file keeps its own), not the temporary file's
owner-only ones, so that an instructor can read a class's runs in a shared folder.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace `path` with `data` atomically (same-folder temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, _mode_for(path))
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# `tempfile.mkstemp`'s names: the prefix and suffix `atomic_write_bytes` gives, around 8 characters drawn
# from lower-case letters, digits and "_" (CPython's `tempfile._RandomNameSequence`).
_TEMPORARY_MIDDLE = re.compile(r"[a-z0-9_]{8}")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed `atomic_write_bytes(path, ...)` left beside `path`.

    A write stopped by an exception removes its own temporary file; one killed outright
    (SIGKILL, power loss) leaves `.<name>.<8 random characters>.tmp` behind. Only names of
    exactly that form are removed, never `path` itself or anything else in the folder. Call it
    when no other process is writing `path` (the train job does, on its main process, before
    its first checkpoint). Returns the removed files.
    """
    path = Path(path)
    prefix, suffix = f".{path.name}.", ".tmp"
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except FileNotFoundError:
        return removed
    for candidate in candidates:
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        if not _TEMPORARY_MIDDLE.fullmatch(name[len(prefix) : len(name) - len(suffix)]) or not candidate.is_file():
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _mode_for(path: Path) -> int:
    """The permission bits `path` keeps if it exists, else those a new file gets (0o666 less the umask)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)  # reading the umask means setting it: put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def keep_aside(path: str | os.PathLike, reason: str = "damaged") -> Path:
    """Rename a damaged file to `<name>.<reason>-<timestamp>` next to it, and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{reason}-{stamp}-{counter}")
        counter += 1
    os.replace(path, target)
    return target
