"""An exclusive lock between processes, for read-merge-write updates of a small file.

Two notebooks (or a notebook and `dino-course progress`) may save the learner's progress at
the same moment. Each save reads the file, changes one entry and writes it back; without a
lock the second writer would overwrite the first one's answer. `locked(path)` makes those
read-merge-write steps take turns.

The lock is taken on a separate `<name>.lock` file, not on the data file itself, because
the data file is replaced by an atomic rename on every write (see `safe_files`), and a lock
on a file that has just been renamed away protects nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX (Linux, macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

DEFAULT_TIMEOUT_S = 10.0  # a progress save takes milliseconds; waiting longer means something is stuck
_POLL_S = 0.01


def lock_path_for(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _open_lock_file(lock_file: Path) -> int:
    """Open (creating it) the lock file itself, never what a symbolic link in its place points to."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(lock_file, flags, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    # A symbolic link where the lock file belongs (perhaps dangling, left by a copy or a sync tool):
    # a lock file holds no data, so replace the link with a file of our own.
    lock_file.unlink()
    return os.open(lock_file, flags, 0o644)


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive inter-process lock for `path` (via `<path>.lock`) inside the `with` block.

    Raises:
        TimeoutError: another process held the lock for more than `timeout` seconds.
    """
    lock_file = lock_path_for(path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_lock_file(lock_file)
    try:
        deadline = time.monotonic() + timeout
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"could not lock {lock_file.name} within {timeout:.0f} s: is another program stuck while saving?"
                )
            time.sleep(_POLL_S)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
