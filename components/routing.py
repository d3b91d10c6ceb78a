"""The filter language of the event router, and its translation to each cloud's router.

A filter maps a CloudEvents attribute (``type``, ``source``, ``subject``, an extension) or a path
into the event's data (``data.<field>[.<field>...]``) to a list of exact string values or to
``{"prefix": "<string>"}``. Every key must match (AND); a list matches any of its values (OR); no
filter matches every event. One model, two pure translations: an SNS filter policy applied to the
message body, and Event Grid advanced filters. What either router cannot express is refused here,
naming the limit, so both clouds route an event the same way or the stack is not built.

Limits, at the versions we deploy:
- SNS: "Amazon SNS subscription filter policy constraints" (SNS developer guide): at most 5 keys
  (leaf keys of a nested, MessageBody-scoped policy), at most 150 combinations of values (the
  product of the values per key), 256 KB; string matching is exact and case-sensitive.
- Event Grid: "Understand event filtering for Event Grid subscriptions", Limitations: at most 25
  advanced filters and 25 filter values across all of them per subscription, 512 characters per
  string value, and no way to escape a ``.`` inside a key; string comparisons ignore case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

SNS_MAX_KEYS = 5
SNS_MAX_COMBINATIONS = 150
SNS_MAX_POLICY_BYTES = 256 * 1024
EVENT_GRID_MAX_FILTERS = 25
EVENT_GRID_MAX_VALUES = 25
EVENT_GRID_MAX_VALUE_CHARS = 512
# CloudEvents 1.0: attribute names are lower-case letters and digits.
ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")
DATA_FIELD = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")
# Attributes every event carries with one value or that hold no routable text.
NOT_ROUTABLE = frozenset(
    {"id", "specversion", "time", "datacontenttype", "dataschema", "data", "data_base64"}
)


class FilterError(ValueError):
    """A filter one of the routers cannot express; the text names the limit."""


@dataclass(frozen=True)
class Condition:
    """One key of a filter: an exact value among ``values``, or text starting with ``prefix``."""

    key: str
    values: tuple[str, ...] = ()
    prefix: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


@dataclass(frozen=True)
class EventFilter:
    """All conditions must hold; no conditions: every event."""

    conditions: tuple[Condition, ...] = ()

    @property
    def matches_everything(self) -> bool:
        return not self.conditions


def parse_filter(raw: Any) -> EventFilter:
    """The filter of a workflow or webhook, checked against both routers' limits."""
    if raw is None:
        return EventFilter()
    if not isinstance(raw, Mapping):
        raise FilterError(f"must be an object of key -> values; got {json.dumps(raw)}")
    conditions = tuple(_condition(str(k), v) for k, v in raw.items())
    paths = {c.path for c in conditions}
    for c in conditions:
        nested = [".".join(p) for p in paths if len(p) > len(c.path) and p[: len(c.path)] == c.path]
        if nested:
            raise FilterError(
                f"key {c.key!r} is also the parent of {sorted(nested)}: a field is either "
                "matched or looked into, not both"
            )
    event_filter = EventFilter(conditions)
    sns_filter_policy(event_filter)
    event_grid_filters(event_filter)
    return event_filter


def _condition(key: str, value: Any) -> Condition:
    parts = key.split(".")
    if parts[0] == "data" and len(parts) > 1:
        bad = [p for p in parts[1:] if not DATA_FIELD.match(p)]
        if bad:
            raise FilterError(
                f"key {key!r}: data fields must be 1-64 of A-Z a-z 0-9 _ $ - (no '.', which "
                f"Event Grid cannot escape); got {bad}"
            )
    elif len(parts) > 1 or not ATTRIBUTE.match(key):
        raise FilterError(
            f"key {key!r} is neither a CloudEvents attribute (type, source, subject or an "
            "extension: 1-20 of a-z 0-9) nor a data path (data.<field>[.<field>...])"
        )
    elif key in NOT_ROUTABLE:
        raise FilterError(
            f"key {key!r} cannot be routed on; use type, source, subject, an extension "
            "attribute or a data.<field> path"
        )
    if isinstance(value, Mapping):
        prefix = value.get("prefix")
        if set(value) != {"prefix"} or not isinstance(prefix, str) or not prefix:
            raise FilterError(
                f'key {key!r}: an object must be {{"prefix": "<non-empty string>"}}; '
                f"got {json.dumps(value)}"
            )
        return Condition(key, prefix=prefix)
    if not isinstance(value, list) or not value:
        raise FilterError(
            f'key {key!r} must map to a non-empty list of strings or {{"prefix": ...}}; '
            f"got {json.dumps(value)}"
        )
    if not all(isinstance(v, str) and v for v in value):
        raise FilterError(f"key {key!r}: values must be non-empty strings; got {json.dumps(value)}")
    folded = [v.casefold() for v in value]
    if len(set(folded)) != len(folded):
        # Event Grid compares strings without case: such a list would mean one thing on AWS
        # and another on Azure.
        raise FilterError(
            f"key {key!r} lists values that differ only in case or repeat {value}; Event Grid "
            "compares strings ignoring case, so they cannot be told apart there"
        )
    return Condition(key, values=tuple(value))


def sns_filter_policy(event_filter: EventFilter) -> dict[str, Any]:
    """The SNS filter policy (FilterPolicyScope MessageBody) of a filter: nested like the event."""
    conditions = event_filter.conditions
    if len(conditions) > SNS_MAX_KEYS:
        raise FilterError(
            f"has {len(conditions)} keys; an SNS filter policy allows at most {SNS_MAX_KEYS}"
        )
    combinations = prod(len(c.values) or 1 for c in conditions)
    if combinations > SNS_MAX_COMBINATIONS:
        raise FilterError(
            f"has {combinations} combinations of values (the product of the values per key); "
            f"an SNS filter policy allows at most {SNS_MAX_COMBINATIONS}"
        )
    policy: dict[str, Any] = {}
    for c in conditions:
        node = policy
        for part in c.path[:-1]:
            node = node.setdefault(part, {})
        node[c.path[-1]] = [{"prefix": c.prefix}] if c.prefix is not None else list(c.values)
    size = len(json.dumps(policy).encode())
    if size > SNS_MAX_POLICY_BYTES:
        raise FilterError(f"is {size} bytes as an SNS filter policy; at most 256 KB")
    return policy


def event_grid_filters(event_filter: EventFilter) -> list[dict[str, Any]]:
    """Event Grid advanced filters (CloudEvents schema) of a filter, in the ARM shape."""
    conditions = event_filter.conditions
    if len(conditions) > EVENT_GRID_MAX_FILTERS:
        raise FilterError(
            f"has {len(conditions)} keys; Event Grid allows at most {EVENT_GRID_MAX_FILTERS} "
            "advanced filters per subscription"
        )
    values = sum(len(c.values) or 1 for c in conditions)
    if values > EVENT_GRID_MAX_VALUES:
        raise FilterError(
            f"has {values} values in all; Event Grid allows at most {EVENT_GRID_MAX_VALUES} "
            "filter values across all advanced filters of a subscription"
        )
    for c in conditions:
        long = [v for v in (*c.values, c.prefix or "") if len(v) > EVENT_GRID_MAX_VALUE_CHARS]
        if long:
            raise FilterError(
                f"key {c.key!r} has a value over {EVENT_GRID_MAX_VALUE_CHARS} characters, the "
                "Event Grid limit"
            )
    return [
        {"key": c.key, "operatorType": "StringBeginsWith", "values": [c.prefix]}
        if c.prefix is not None
        else {"key": c.key, "operatorType": "StringIn", "values": list(c.values)}
        for c in conditions
    ]


def matches(event_filter: EventFilter, event: Mapping[str, Any]) -> bool:
    """Whether a structured CloudEvent passes the filter, exact case (as SNS decides; Event Grid
    also ignores case). The stack checks with it that a workflow's schedule reaches it."""
    for c in event_filter.conditions:
        value: Any = event
        for part in c.path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if not isinstance(value, str):
            return False
        if c.prefix is not None and not value.startswith(c.prefix):
            return False
        if c.prefix is None and value not in c.values:
            return False
    return True
