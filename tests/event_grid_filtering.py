"""Event Grid's advanced filtering of a CloudEvent, written from its documentation alone.

Source: "Understand event filtering for Event Grid subscriptions",
https://learn.microsoft.com/azure/event-grid/event-filtering (MicrosoftDocs/azure-docs,
articles/event-grid/event-filtering.md at aa80303874570d4401cab25bbd0d7b8d64320bee, ms.date
2022-09-09). Each rule below quotes the section it comes from. Event Grid has no emulator; this is
the Azure side of the routing parity suite (tests/app/test_routing_parity.py).

Where the page does not decide, ``outcomes`` returns every outcome it allows instead of guessing:
- whether a string operator reads a number, boolean or null as text: the operator sections say
  "Any key values with data types that don't match the filter's data type are ignored", while the
  CloudEvents section filters the numeric extension ``comexampleothervalue`` (5) with
  StringBeginsWith ["5", "1"];
- whether key names are matched with case: the page never says (all its keys are written as the
  event spells them; its 2018 version wrote ``Data.Key1`` and ``Subject``);
- an array whose elements are of different types (``[5, "eu"]``): "Key", Note: advanced
  filtering "only allows String, Boolean, Numbers, and Array of the same types (like integer
  array or string array)", and the page says nothing of what happens to other arrays.
Only the operators the router renders are modelled (StringIn, StringBeginsWith, NumberIn).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import product
from typing import Any

MISSING = object()


def outcomes(subscription_filter: Mapping[str, Any], event: Mapping[str, Any]) -> frozenset[bool]:
    """Every delivery decision the page allows for ``event`` under an event subscription's
    ``filter`` (ARM shape: advancedFilters, enableAdvancedFilteringOnArrays)."""
    arrays = subscription_filter.get("enableAdvancedFilteringOnArrays") is True
    per_filter = [
        frozenset(o for value in _lookups(event, f["key"]) for o in _one(f, value, arrays))
        for f in subscription_filter.get("advancedFilters") or []
    ]
    # "OR and AND": "If you specify multiple different filters, an AND operation is done".
    return frozenset(all(combo) for combo in product(*per_filter))


def _lookups(event: Mapping[str, Any], key: str) -> Iterator[Any]:
    """Each value the key may resolve to (MISSING when absent)."""
    # "CloudEvents": keys are id, source, type, specversion, extension attributes "or custom
    # properties using . as the nesting operator (example: data.appinfoA)".
    nodes: list[Any] = [event]
    for part in key.split("."):
        following: list[Any] = []
        for node in nodes:
            if not isinstance(node, Mapping):
                # "Key", note: "Event Grid doesn't support filtering on an array of objects":
                # a path through an array (or through a scalar) finds nothing.
                following.append(MISSING)
                continue
            if part in node:
                following.append(node[part])
            else:
                following.append(MISSING)
                # Key case: not stated (module docstring), so a key that differs only in case
                # may or may not be found.
                following.extend(v for k, v in node.items() if k.lower() == part.lower())
        nodes = following
    return iter(nodes)


def _one(advanced: Mapping[str, Any], value: Any, arrays: bool) -> Iterator[bool]:
    """The outcomes of one advanced filter against one resolved value."""
    if value is MISSING:
        # Operators, note: "If the event JSON doesn't contain the advanced filter key, filter is
        # evaluated as not matched for ... NumberIn, ..., StringBeginsWith, ..., StringIn".
        return iter((False,))
    if isinstance(value, list):
        if not arrays:
            # "Key": "Array. You need to set the enableAdvancedFilteringOnArrays property to
            # true to use this feature."
            return iter((False,))
        if len({_kind(v) for v in value}) > 1:
            # "Key", Note: only "Array of the same types (like integer array or string array)"
            # is allowed; a mixed array's outcome is not specified.
            return iter((False, True))
        # Each operator: "If the key is an array, all the values in the array are checked
        # against the array of filter values ... FOR_EACH filter ... FOR_EACH key ... MATCH";
        # an element that is itself an array or object is of no filter's data type: ignored.
        per_element = [
            frozenset(_scalar(advanced, v)) for v in value if not isinstance(v, list | dict)
        ]
        return iter({any(combo) for combo in product(*per_element)} if per_element else {False})
    return _scalar(advanced, value)


def _kind(value: Any) -> str:
    """The JSON type of an array element (a boolean is no number)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _scalar(advanced: Mapping[str, Any], value: Any) -> Iterator[bool]:
    operator, wanted = advanced["operatorType"], advanced["values"]
    if operator == "NumberIn":
        # "NumberIn": "evaluates to true if the key value is one of the specified filter
        # values"; "Any key values with data types that don't match the filter's data type are
        # ignored" (a boolean is not a number).
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return iter((number and any(value == w for w in wanted),))
    if operator == "StringIn":
        # "StringIn": "checks whether the key value exactly matches one of the specified filter
        # values".
        def test(text: str) -> bool:
            return any(text.lower() == w.lower() for w in wanted)
    elif operator == "StringBeginsWith":
        # "StringBeginsWith": "evaluates to true if the key value begins with any of the
        # specified filter values".
        def test(text: str) -> bool:
            return any(text.lower().startswith(w.lower()) for w in wanted)
    else:
        raise ValueError(f"operator {operator} is not modelled")
    # "Operators": "All string comparisons aren't case-sensitive." (lower() above)
    if isinstance(value, str):
        return iter((test(value),))
    if isinstance(value, dict):
        return iter((False,))  # an object is no string under any reading
    # A number, boolean or null: ignored as another type, or read as its text (docstring).
    return iter({False, *(test(t) for t in _texts(value))})


def _texts(value: Any) -> set[str]:
    """The texts a number, boolean or null could be read as."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"true", "True"}
    text = repr(value)
    return {text, text.removesuffix(".0")}
