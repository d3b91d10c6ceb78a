"""Events that reach a workflow on one cloud's filtering only.

SNS looks through arrays of objects when it filters: a filter on ``data.items.sku`` matches
``{"items": [{"sku": "a"}]}`` when one element's ``sku`` does. Event Grid never does ("Event Grid
doesn't support filtering on an array of objects", "Understand event filtering"). The config
cannot see event shapes, so the consumer is told its workflow's data keys (``EDW_FILTER_PATHS``)
and counts each event whose filtered path crosses an array (docs/routing.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# components/routing.py's data keys: data.<field>[.<field>...], no field starting with '$'.
FILTER_PATH = re.compile(r"^data(\.[A-Za-z0-9_-][A-Za-z0-9_$-]{0,63})+$")


def check_paths(value: str) -> str | None:
    """EDW_FILTER_PATHS: comma-separated data keys."""
    bad = [p for p in value.split(",") if not FILTER_PATH.match(p)]
    return f"has keys that are not data.<field>[.<field>...] paths: {bad}" if bad else None


def crossed_array(data: Any, paths: Sequence[str]) -> str | None:
    """The first path that meets an array where it still has a field to look up, if any."""
    for path in paths:
        node: Any = {"data": data}
        for field in path.split("."):
            if isinstance(node, list):
                return path
            if not isinstance(node, Mapping):
                break
            node = node.get(field)
    return None
