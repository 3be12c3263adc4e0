"""Public checks run after the hidden ones, so that where both fail the verdict shows the hidden
check's specific hint (the first failure an exercise meets is the one reported)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: HERE in Path(item.path).resolve().parents)  # a stable sort: order kept otherwise
