"""Suite-wide hooks."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first: xdist hands tests out in this order, so a half-minute test started
    last would keep one worker busy after the others are done."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
