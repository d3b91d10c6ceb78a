"""The example handlers (examples/: `orders` in Node.js, `shipping` in Python) wired by
examples/workflows.json, against real consumers on both emulators: the orders -> shipping chain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app import events
from app.azure import event_grid_text
from bench.chain import EXAMPLES, Chain, example_workflows
from tests.app.conftest import CLOUDS, wait_until

pytestmark = pytest.mark.emulator


def order(order_id: str, items: list[dict[str, object]]) -> str:
    data = {"orderId": order_id, "customer": "c-042", "items": items}
    return events.make(
        data, source="urn:shop:web", type_="com.example.order.created", event_id=order_id
    )


def test_the_workflows_file_wires_both_example_handlers() -> None:
    items = {i["name"]: i for i in example_workflows()}
    assert set(items) == {"orders", "shipping"}
    for name, item in items.items():
        assert (Path(EXAMPLES.parent) / item["handler"]["build"] / "Dockerfile").is_file(), name
    assert items["orders"]["filter"] == {"type": ["com.example.order.created"]}
    assert items["shipping"]["filter"] == {"type": ["com.example.order.accepted"]}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_orders_then_shipping_on_the_emulators(
    cloud: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: the orders example handler is Node.js (install 20+)")
    emulator = request.getfixturevalue("moto" if cloud == "aws" else "azurite")
    with Chain(emulator, example_workflows(), tmp_path) as chain:
        orders = chain.running["orders"].workflow.target
        shipping = chain.running["shipping"].workflow.target
        invalid = order("o-3", [{"sku": "", "quantity": 0}])
        chain.publish(
            [
                order("o-1", [{"sku": "tea", "quantity": 2}]),
                order("o-2", [{"sku": "cup", "quantity": 7}, {"sku": "pot", "quantity": 1}]),
                invalid,
            ]
        )
        wait_until(lambda: len(shipping.row_ids()) == 2, 60, "two shipped orders")
        wait_until(lambda: len(orders.row_ids()) == 2, 30, "two accepted orders")
        found: list = []
        wait_until(lambda: bool(found.extend(orders.dead_letters()) or found), 30, "a dead letter")
    (dead,) = found
    # The dead letter keeps the message as the queue held it (Base64 from Event Grid on Azure).
    assert json.loads(event_grid_text(dead.body))["id"] == "o-3"
    assert dead.reason == (
        "handler answered 422: invalid order: items[0].sku is required; "
        "items[0].quantity must be a whole number >= 1"
    )
    accepted = {r["eventId"]: json.loads(r["emitted"]) for r in orders.rows()}
    assert set(accepted) == {"o-1", "o-2"}
    shipped = {r["eventId"]: r for r in shipping.rows()}
    # Each accepted order's emitted id is the shipping row's event: the chain, end to end.
    assert set(shipped) == {ids[0] for ids in accepted.values()}
    results = {json.loads(r["data"])["orderId"]: json.loads(r["result"]) for r in shipped.values()}
    assert results["o-1"]["parcels"] == 1
    assert results["o-2"]["parcels"] == 2  # 8 units, 5 a parcel
    assert all(r["trackingNumber"].startswith("TRK") for r in results.values())
    assert {r["source"] for r in shipped.values()} == {"urn:edw:workflow:orders"}
