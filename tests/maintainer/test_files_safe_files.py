"""Files the course writes: atomic replacement with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest
import torch

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


def test_only_the_temporary_files_of_a_killed_write_are_removed(tmp_path):
    from dino_course.files.safe_files import remove_stale_temporaries

    kept = ["checkpoint.pt", ".checkpoint.pt.short.tmp", ".checkpoint.pt.abcdefgh.tmp.bak", ".metrics.json.abcdefgh.tmp",
            ".checkpoint.pt.ABCDEFGH.tmp", "notes.tmp"]
    orphans = [".checkpoint.pt.abcd_123.tmp", ".checkpoint.pt.zz9zz9zz.tmp"]  # mkstemp's 8 characters
    for name in kept + orphans:
        (tmp_path / name).write_text(name)
    removed = remove_stale_temporaries(tmp_path / "checkpoint.pt")
    assert sorted(path.name for path in removed) == sorted(orphans)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temporaries(tmp_path / "missing-folder" / "checkpoint.pt") == []


def test_save_checkpoint_removes_an_orphan_of_a_killed_write(tmp_path):
    from dino_course.job.checkpoints import REQUIRED_KEYS, load_checkpoint, save_checkpoint

    orphan = tmp_path / ".checkpoint.pt.k1ll3d_x.tmp"
    orphan.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "checkpoint.pt", {key: torch.zeros(1) for key in REQUIRED_KEYS if key != "format"})
    assert not orphan.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"].shape == (1,)
