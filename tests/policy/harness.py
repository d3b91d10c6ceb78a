"""Run one policy of the pack the way the engine does, through policy.offline.evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policy.offline import PackConfig, evaluate
from tests.policy.fixtures import Rec


def messages(rule: str, records: Sequence[Rec], config: dict[str, Any] | None = None) -> list[str]:
    """The violation messages ``rule`` reports for this resource graph (other rules ignored)."""
    pack = PackConfig(properties={rule: config} if config else {})
    return [v.message for v in evaluate(records, pack) if v.policy == rule]


def assert_reports(found: list[str], *expected: str) -> None:
    """Exactly the expected violations, each identified by a substring of its message."""
    assert len(found) == len(expected), found
    for fragment in expected:
        assert any(fragment in message for message in found), (fragment, found)
