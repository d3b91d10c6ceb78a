"""moto's SNS payload filtering with its leaf comparisons corrected to the SNS docs.

moto (5.2.5, requirements-demo.txt) runs the subscriptions, validates each filter policy (syntax,
keys, complexity), walks a MessageBody policy through nested objects and arrays of objects
(``FilterPolicyMatcher._compute_body_checks``), and hands each leaf (key, rules, the object that
holds it) to ``_field_match``. For the three rules our filters become, that last step departs from
SNS (``test_moto_leaf_defects`` pins each, so this module goes when moto fixes them):

- ``equals-ignore-case`` lower-cases the event's value but not the rule's, and raises (HTTP 500 on
  Publish) on a value that is not a string: a number, null, an array;
- ``prefix`` raises on a value that is not a string;
- ``numeric =`` never matches an element of an array.

``faithful_leaves`` decides exactly those leaves from the SNS developer guide (quoted at each
rule) and leaves everything else to moto.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from moto.sns.utils import FilterPolicyMatcher

OURS = ("equals-ignore-case", "prefix", "numeric")


def _ours(rule: Any) -> bool:
    return isinstance(rule, Mapping) and len(rule) == 1 and next(iter(rule)) in OURS


def _leaf(rule: Mapping[str, Any], value: Any) -> bool:
    ((operator, argument),) = rule.items()
    if operator == "equals-ignore-case":
        # "String value matching", Equals-ignore-case: "a case-insensitive match with any
        # message attribute or message body property value".
        return isinstance(value, str) and value.lower() == argument.lower()
    if operator == "prefix":
        # "String value matching", Prefix: "matches any message attribute or message body
        # property value that begins with the specified characters" (strings only: "Prefixes
        # are supported for string matching only", "Numeric value matching").
        return isinstance(value, str) and value.startswith(argument)
    # "Numeric value matching", Exact: "message body property values that have the same name
    # and an equal numeric value" (a boolean is no number).
    if argument[0] != "=" or len(argument) != 2:
        raise ValueError(f"only numeric = is decided here; got {argument}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and value == argument[1]


def _field_match(
    field: str, rules: list[Any], body: dict[str, Any], attributes_based_check: bool = True
) -> bool:
    if attributes_based_check or not all(_ours(r) for r in rules):
        return ORIGINAL(field, rules, body, attributes_based_check)
    if field not in body:
        return False
    value = body[field]
    # An array property matches when one element does: AWS delivers {"route-to": ["queue1",
    # "queue2"]} to the subscriptions of both (LocalStack's
    # test_filter_policy_on_message_body_array_attributes, recorded against AWS), and numeric
    # matching treats {"price": [100, 50]} element by element ("Numeric value matching").
    values = value if isinstance(value, list) else [value]
    return any(_leaf(rule, v) for rule in rules for v in values)


ORIGINAL = FilterPolicyMatcher._field_match


@contextmanager
def faithful_leaves() -> Iterator[None]:
    """moto's SNS in this process (its threaded server) with the leaves above corrected."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FilterPolicyMatcher, "_field_match", staticmethod(_field_match))
        yield
