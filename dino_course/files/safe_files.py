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
