"""tools/chain.py, the handler chain step of `make demo`: optional without node, and its exit
check (the verdict on a settled chain)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from app import events
from bench.emulators import REPO, DeadLetter, child_env
from tools.chain import REJECTED, verdict

# Five orders: o-0000 to o-0003 valid, o-0004 invalid (every fifth).
COUNT = 5
VALID = ["o-0000", "o-0001", "o-0002", "o-0003"]


def shipping_row(order: str, result: str = '{"parcels": 1}') -> dict[str, str]:
    row = {"eventId": f"e-{order}", "data": json.dumps({"orderId": order, "units": 1})}
    return row | ({"result": result} if result else {})


def dead_letter(order: str, reason: str, base64_body: bool = False) -> DeadLetter:
    body = events.make({"orderId": order}, source="urn:shop:web", type_="com.example.order.created")
    return DeadLetter(base64.b64encode(body.encode()).decode() if base64_body else body, reason)


REFUSED = REJECTED + "items[0].quantity must be a whole number >= 1"
SHIPPED = [shipping_row(o) for o in VALID]


def test_a_settled_chain_is_ok_on_either_cloud() -> None:
    for base64_body in (False, True):  # Event Grid's Base64 on Azure
        dead = {"orders": [dead_letter("o-0004", REFUSED, base64_body)], "shipping": []}
        assert verdict(COUNT, SHIPPED, dead, [0, 0]) == []


def test_a_shipping_row_without_a_result_is_not_ok() -> None:
    rows = [*SHIPPED[:3], shipping_row("o-0003", result="")]
    dead = {"orders": [dead_letter("o-0004", REFUSED)]}
    assert verdict(COUNT, rows, dead, [0, 0]) == [
        "valid orders without a shipping row with a result: ['o-0003']"
    ]


def test_an_invalid_order_dead_lettered_for_another_reason_is_not_ok() -> None:
    dead = {"orders": [dead_letter("o-0004", "delivered 6 times (EDW_MAX_DELIVERIES=5)")]}
    assert verdict(COUNT, SHIPPED, dead, [0, 0]) == [
        "o-0004 dead-lettered for another reason than the 422: delivered 6 times "
        "(EDW_MAX_DELIVERIES=5)"
    ]


def test_missing_extra_and_other_workflows_dead_letters_and_queued_messages_are_not_ok() -> None:
    dead = {
        "orders": [dead_letter("o-0001", REFUSED)],
        "shipping": [dead_letter("o-0002", "handler answered 500: boom")],
    }
    assert verdict(COUNT, SHIPPED, dead, [0, 2]) == [
        "invalid orders not dead-lettered: ['o-0004']",
        f"dead-lettered but not an invalid order: 'o-0001' ({REFUSED})",
        "shipping dead-lettered 1: handler answered 500: boom",
        "queues still hold messages: [0, 2]",
    ]


def test_without_node_the_chain_step_says_why_and_skips() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.chain", "--cloud", "aws"],
        cwd=REPO,
        env=child_env({"PATH": "/nonexistent"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "skipping the orders -> shipping handler chain: node is not on PATH (the orders "
        "example handler is Node.js; install 20+)"
    )
