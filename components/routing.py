"""The filter language of the event router, and its translation to each cloud's router.

A filter maps a CloudEvents attribute (``type``, ``source``, ``subject``, an extension) or a path
into the event's data (``data.<field>[.<field>...]``) to a list of strings, a list of numbers, or
``{"prefix": "<string>"}``. Every key must match (AND); a list matches any of its values (OR); an
array in the event matches when one of its elements does; a key the event lacks, or holds as
null, does not match; no filter matches every event. One model, two pure translations: an SNS
filter policy applied to the message body, and Event Grid advanced filters.

Both clouds route every event a filter accepts the same way (``tests/app/test_routing_parity.py``
proves it on moto's SNS and on an evaluator of Event Grid's documented rules), so what the two
would decide differently is refused here, naming the key and the reason:

- Case. Event Grid compares strings ignoring case ("Understand event filtering", Operators: "All
  string comparisons aren't case-sensitive"). SNS compares exactly, except with
  ``equals-ignore-case`` (SNS developer guide, "String value matching", Equals-ignore-case
  matching), which exact values are translated to. The guide's string operators (exact,
  anything-but, equals-ignore-case, prefix, suffix, ...) include no case-insensitive prefix.
  Unverified: whether SNS would accept ``{"prefix": {"equals-ignore-case": ...}}`` as
  EventBridge does (nothing we can run or read here says so), so a prefix goes to SNS as each
  ASCII case variant of itself, within SNS's complexity budget; a prefix with non-ASCII letters
  is refused.
- Types. SNS matches a string only against a JSON string and a number only against a JSON
  number ("Numeric value matching": "an equal numeric value"). Event Grid's number operators
  ignore other types ("Any key values with data types that don't match the filter's data type
  are ignored"), but its string operators may read a number as its text (its CloudEvents example
  filters the numeric extension ``comexampleothervalue`` with StringBeginsWith ["5", "1"]). So
  numbers are typed values (SNS ``numeric =``, Event Grid NumberIn), and a string that reads as
  a number, true, false or null, or a prefix that could begin one, is refused. SNS documents no
  boolean matching, so booleans are refused.
- Arrays. Event subscriptions set ``enableAdvancedFilteringOnArrays`` (Event Grid, Key: "Array.
  You need to set the enableAdvancedFilteringOnArrays property to true"), so an array matches
  when one element does, as on SNS. A path *through* an array of objects (``data.items.sku``
  against ``items: [{sku: ...}]``) matches on SNS and never on Event Grid ("Event Grid doesn't
  support filtering on an array of objects"); the config cannot see event shapes, so the
  consumer counts such events (``edw_events_filtered_through_arrays_total``, docs/routing.md).
- Names. A data field named like an SNS operator (``$or``) is refused; so is a ``.`` inside a
  field (Event Grid has no escape for it).

Limits, at the versions we deploy:
- SNS ("Amazon SNS subscription filter policy constraints"): at most 5 keys (SNS counts a nested
  policy's leaf keys: "only the keys key_d and key_f are counted"; so do we), at most 150
  combinations, 256 KB. SNS weighs each key's values by the key's depth in a MessageBody policy:
  the combinations are the product over keys of (values x depth). Its guide's own example: key_c,
  four values three levels deep, and key_e, three values two deep, make 3 x 4 x 2 x 3 = 72; AWS
  refuses that policy with one more top-level key of three values (216: the LocalStack snapshot of
  ``test_sub_filter_policy_nested_property_constraints``, recorded against AWS on 2024-05-14), and
  moto computes it the same way (``moto/sns/models.py``, ``_validate_filter_policy``).
- Event Grid ("Understand event filtering", Limitations): at most 25 advanced filters and 25
  filter values across all of them per subscription, 512 characters per string value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from math import prod
from typing import Any

SNS_MAX_KEYS = 5
SNS_MAX_COMBINATIONS = 150
SNS_MAX_POLICY_BYTES = 256 * 1024
# SNS numeric matching: -1e9 to 1e9, five digits after the decimal point ("constraints").
SNS_NUMBER_LIMIT = 1_000_000_000
SNS_NUMBER_DECIMALS = 5
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
# CloudEvents 1.0: these are strings on every event; a number there means nothing.
STRING_ATTRIBUTES = frozenset({"type", "source", "subject"})
# The text a JSON number, true, false or null could be read as by Event Grid's string operators.
NUMBER_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
# The prefixes of those number texts: a sign and/or a point, then a digit or nothing (".net",
# "-x" and "+a" begin no number's text).
NUMBER_START = re.compile(r"^[-+]?\.?(\d|$)")
KEYWORDS = ("true", "false", "null")


class FilterError(ValueError):
    """A filter the two routers could not both express, or would route differently; the text
    names the key and the reason."""


@dataclass(frozen=True)
class Condition:
    """One key of a filter: one of ``values`` (all strings or all numbers), or text starting with
    ``prefix``."""

    key: str
    values: tuple[str | int | float, ...] = ()
    prefix: str | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))

    @property
    def numeric(self) -> bool:
        return self.prefix is None and not isinstance(self.values[0], str)

    @property
    def sns_values(self) -> int:
        """How many values the key has in the SNS policy: a prefix has one per case variant."""
        if self.prefix is None:
            return len(self.values)
        return 2 ** sum(c.isascii() and c.isalpha() for c in self.prefix)


@dataclass(frozen=True)
class EventFilter:
    """All conditions must hold; no conditions: every event."""

    conditions: tuple[Condition, ...] = ()

    @property
    def matches_everything(self) -> bool:
        return not self.conditions

    @property
    def data_paths(self) -> tuple[str, ...]:
        """The keys into the event's data (the ones an array of objects can sit on)."""
        return tuple(c.key for c in self.conditions if c.path[0] == "data")


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
    _check_key(key)
    if isinstance(value, Mapping):
        prefix = value.get("prefix")
        if set(value) != {"prefix"} or not isinstance(prefix, str) or not prefix:
            raise FilterError(
                f'key {key!r}: an object must be {{"prefix": "<non-empty string>"}}; '
                f"got {json.dumps(value)}"
            )
        _check_prefix(key, prefix)
        return Condition(key, prefix=prefix)
    if not isinstance(value, list) or not value:
        raise FilterError(
            f"key {key!r} must map to a non-empty list of strings or of numbers, or to "
            f'{{"prefix": ...}}; got {json.dumps(value)}'
        )
    if any(isinstance(v, bool) for v in value):
        raise FilterError(
            f"key {key!r}: booleans cannot be routed on: SNS documents no boolean matching "
            f"(only strings and numbers); got {json.dumps(value)}"
        )
    if all(isinstance(v, int | float) for v in value):
        return _numbers(key, value)
    if not all(isinstance(v, str) and v for v in value):
        raise FilterError(
            f"key {key!r}: values must be all non-empty strings or all numbers (a list is one "
            f"Event Grid operator, which has one type); got {json.dumps(value)}"
        )
    for v in value:
        _check_string(key, v)
    folded = [v.lower() for v in value]
    if len(set(folded)) != len(folded):
        raise FilterError(
            f"key {key!r} repeats a value (values are compared ignoring case on both clouds); "
            f"got {json.dumps(value)}"
        )
    return Condition(key, values=tuple(value))


def _check_key(key: str) -> None:
    parts = key.split(".")
    if parts[0] == "data" and len(parts) > 1:
        bad = [p for p in parts[1:] if not DATA_FIELD.match(p)]
        if bad:
            raise FilterError(
                f"key {key!r}: data fields must be 1-64 of A-Z a-z 0-9 _ $ - (no '.', which "
                f"Event Grid cannot escape); got {bad}"
            )
        operators = [p for p in parts[1:] if p.startswith("$")]
        if operators:
            raise FilterError(
                f"key {key!r}: a field name starting with '$' reads as an SNS filter operator "
                f"(like $or) in a filter policy; got {operators}"
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


def _numbers(key: str, value: list[int | float]) -> Condition:
    if key in STRING_ATTRIBUTES:
        raise FilterError(f"key {key!r} is a string on every CloudEvent; got numbers {value}")
    for v in value:
        if not math.isfinite(v) or abs(v) >= SNS_NUMBER_LIMIT:
            raise FilterError(f"key {key!r}: {v} is outside -1e9..1e9, the numbers SNS matches")
        if round(v, SNS_NUMBER_DECIMALS) != v:
            raise FilterError(
                f"key {key!r}: {v} has more than {SNS_NUMBER_DECIMALS} decimals, SNS's numeric "
                "accuracy (Event Grid compares every digit)"
            )
    if len(set(value)) != len(value):
        raise FilterError(f"key {key!r} repeats a value; got {json.dumps(value)}")
    return Condition(key, values=tuple(value))


def _check_length(key: str, value: str) -> None:
    if len(value) > EVENT_GRID_MAX_VALUE_CHARS:
        raise FilterError(
            f"key {key!r} has a value over {EVENT_GRID_MAX_VALUE_CHARS} characters, the "
            "Event Grid limit"
        )


def _check_string(key: str, value: str) -> None:
    _check_length(key, value)
    if NUMBER_TEXT.match(value) or value.lower() in KEYWORDS:
        raise FilterError(
            f"key {key!r}: the string {value!r} reads as a JSON number, true, false or null; "
            "Event Grid's string operators may compare such an event value as text where SNS "
            "never matches it, so the clouds would disagree; to match JSON numbers write "
            f"numbers ([{value}] without quotes), booleans and null cannot be routed on"
        )


def _check_prefix(key: str, prefix: str) -> None:
    _check_length(key, prefix)
    folded = prefix.lower()
    could_begin = [k for k in KEYWORDS if k.startswith(folded)]
    if NUMBER_START.match(prefix):
        could_begin.append("a JSON number")
    if could_begin:
        raise FilterError(
            f"key {key!r}: the prefix {prefix!r} could begin the text of "
            f"{' or '.join(could_begin)}; Event Grid's StringBeginsWith may match such a JSON "
            "value as text and SNS never does"
        )
    foreign = sorted({c for c in prefix if not c.isascii() and c.lower() != c.upper()})
    if foreign:
        raise FilterError(
            f"key {key!r}: the prefix {prefix!r} has letters outside ASCII {foreign}; Event "
            "Grid matches a prefix ignoring case and SNS only as written, and we write SNS "
            "each ASCII case variant"
        )


def sns_combinations(event_filter: EventFilter) -> int:
    """The filter's complexity as SNS computes it for a MessageBody policy: the product over
    keys of (values x the key's depth in the nested policy)."""
    return prod(c.sns_values * len(c.path) for c in event_filter.conditions)


def sns_filter_policy(event_filter: EventFilter) -> dict[str, Any]:
    """The SNS filter policy (FilterPolicyScope MessageBody) of a filter: nested like the event."""
    conditions = event_filter.conditions
    if len(conditions) > SNS_MAX_KEYS:
        raise FilterError(
            f"has {len(conditions)} keys ({', '.join(c.key for c in conditions)}); an SNS filter "
            f"policy allows at most {SNS_MAX_KEYS}"
        )
    combinations = sns_combinations(event_filter)
    if combinations > SNS_MAX_COMBINATIONS:
        terms = ", ".join(f"{c.key} {c.sns_values}x{len(c.path)}" for c in conditions)
        variants = [c.key for c in conditions if c.prefix is not None]
        why = (
            f"; a prefix counts each of its ASCII case variants ({', '.join(variants)}): list "
            "exact values instead"
            if variants
            else ""
        )
        raise FilterError(
            f"has {combinations} combinations as SNS counts them (each key's values times its "
            f"depth: {terms}); an SNS filter policy allows at most {SNS_MAX_COMBINATIONS}{why}"
        )
    policy: dict[str, Any] = {}
    for c in conditions:
        node = policy
        for part in c.path[:-1]:
            node = node.setdefault(part, {})
        node[c.path[-1]] = _sns_values(c)
    size = len(json.dumps(policy).encode())
    if size > SNS_MAX_POLICY_BYTES:
        raise FilterError(f"is {size} bytes as an SNS filter policy; at most 256 KB")
    return policy


def _sns_values(c: Condition) -> list[dict[str, Any]]:
    if c.prefix is not None:
        cases = [
            (ch.lower(), ch.upper()) if ch.isascii() and ch.isalpha() else (ch,) for ch in c.prefix
        ]
        return [{"prefix": "".join(chars)} for chars in product(*cases)]
    if c.numeric:
        return [{"numeric": ["=", v]} for v in c.values]
    return [{"equals-ignore-case": v} for v in c.values]


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
        counts = ", ".join(f"{c.key} {len(c.values) or 1}" for c in conditions)
        raise FilterError(
            f"has {values} values in all ({counts}); Event Grid allows at most "
            f"{EVENT_GRID_MAX_VALUES} filter values across all advanced filters of a subscription"
        )
    return [_event_grid_filter(c) for c in conditions]


def _event_grid_filter(c: Condition) -> dict[str, Any]:
    if c.prefix is not None:
        return {"key": c.key, "operatorType": "StringBeginsWith", "values": [c.prefix]}
    operator = "NumberIn" if c.numeric else "StringIn"
    return {"key": c.key, "operatorType": operator, "values": list(c.values)}


def matches(event_filter: EventFilter, event: Mapping[str, Any]) -> bool:
    """Whether a structured CloudEvent passes the filter on both clouds: strings ignoring case,
    numbers as numbers, an array by any element. A path through an array of objects does not
    match here (nor on Event Grid; SNS does match it: docs/routing.md)."""
    for c in event_filter.conditions:
        value: Any = event
        for part in c.path:
            value = value.get(part) if isinstance(value, Mapping) else None
        candidates = value if isinstance(value, list) else [value]
        if not any(_accepts(c, v) for v in candidates):
            return False
    return True


def _accepts(c: Condition, value: Any) -> bool:
    if c.prefix is not None:
        return isinstance(value, str) and value.lower().startswith(c.prefix.lower())
    if c.numeric:
        return isinstance(value, int | float) and not isinstance(value, bool) and value in c.values
    return isinstance(value, str) and value.lower() in {str(v).lower() for v in c.values}
