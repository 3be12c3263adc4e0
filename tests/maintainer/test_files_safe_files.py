"""Files the course writes: atomic replacement with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from dino_course.files.safe_files import atomic_write_text

pytestmark = pytest.mark.maintainer


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umask_permissions_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        written = atomic_write_text(tmp_path / "metrics.json", "{}")
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        os.umask(old)
    assert written.read_text() == "{}"
    assert _mode(written) == _mode(plain) == 0o644
    assert list(tmp_path.glob(".metrics.json.*.tmp")) == []  # no temporary file left behind


def test_a_replaced_file_keeps_its_own_permissions(tmp_path):
    target = tmp_path / "progress.json"
    target.write_text("old")
    target.chmod(0o640)  # e.g. an instructor made it group-readable
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640
