"""Shared fixtures of the hidden checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

GOLDEN_PATH = Path(__file__).with_name("dino_v1_golden.pt")


@pytest.fixture(scope="session")
def golden() -> dict:
    """Numbers computed with the original DINO implementation (see dino_v1_golden.README.md beside this file)."""
    return torch.load(GOLDEN_PATH, weights_only=True)
