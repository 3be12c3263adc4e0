"""Checkpoints of the train job (`dino_course.job.checkpoints`): whatever bytes a damaged file holds,
loading it says so in one `CheckpointError` naming the file, and leaves the file where it is."""

from __future__ import annotations

import random

import pytest
import torch

from dino_course.job.checkpoints import CHECKPOINT_FORMAT, REQUIRED_KEYS, CheckpointError, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.maintainer


def _a_checkpoint(path):
    state = {key: torch.zeros(3) for key in REQUIRED_KEYS if key != "format"}
    state.update(config={"seed": 0}, iteration=4, epoch=0, metrics={"iterations": []})
    return save_checkpoint(path, state)


def test_a_checkpoint_round_trips(tmp_path):
    state = load_checkpoint(_a_checkpoint(tmp_path / "checkpoint.pt"))
    assert state["format"] == CHECKPOINT_FORMAT and state["iteration"] == 4


def test_random_bytes_and_flipped_bytes_always_give_a_checkpoint_error(tmp_path):
    good = _a_checkpoint(tmp_path / "good.pt").read_bytes()
    rng = random.Random(0)
    path = tmp_path / "checkpoint.pt"
    cases = []
    for size in (1, 7, 64, 512, 4096):  # random files of several sizes
        cases += [bytes(rng.randrange(256) for _ in range(size)) for _ in range(20)]
    for _ in range(150):  # a real checkpoint with a few bytes changed, or cut short
        data = bytearray(good)
        for _ in range(rng.randrange(1, 9)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(bytes(data[: rng.randrange(len(data) // 2, len(data) + 1)]))
    loaded = 0
    for data in cases:
        path.write_bytes(data)
        try:
            load_checkpoint(path)
            loaded += 1  # a change that hit padding or a tensor's values: a valid file
        except CheckpointError as error:
            assert str(path) in str(error)
        assert path.read_bytes() == data, "a damaged checkpoint is left as it was"
    assert loaded < len(cases) // 2, "most damaged files must be refused"
