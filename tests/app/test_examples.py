"""The example handlers (examples/: `orders` in Node.js, `shipping` in Python) wired by
examples/workflows.json, against real consumers on both emulators: the orders -> shipping chain."""

from __future__ import annotations

import http.client
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import events
from app.azure import event_grid_text
from app.handler import REQUEST_TYPE
from bench.chain import EXAMPLE_COMMANDS, EXAMPLES, Chain, HandlerProcess, example_workflows
from bench.emulators import free_port
from tests.app.conftest import CLOUDS, wait_until

pytestmark = pytest.mark.emulator


def order(order_id: str, items: list[dict[str, object]]) -> str:
    data = {"orderId": order_id, "customer": "c-042", "items": items}
    return events.make(
        data, source="urn:shop:web", type_="com.example.order.created", event_id=order_id
    )


@pytest.fixture(params=sorted(EXAMPLE_COMMANDS))
def example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HandlerProcess]:
    """One example handler as a real process, as the chain runs it."""
    command = EXAMPLE_COMMANDS[request.param]
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not on PATH: the orders example handler is Node.js")
    with HandlerProcess(command, free_port(), tmp_path / "handler.log") as handler:
        yield handler


def post(handler: HandlerProcess, event: dict[str, object]) -> tuple[int, str]:
    """POST an event as the consumer does; (status, body). Raises when no answer comes (the
    consumer would count the handler unreachable and retry the event forever)."""
    connection = http.client.HTTPConnection("127.0.0.1", handler.port, timeout=10)
    try:
        body = json.dumps(event)
        connection.request("POST", "/", body, {"Content-Type": REQUEST_TYPE})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_an_example_answers_an_event_of_another_type_with_204(example: HandlerProcess) -> None:
    # "Not ours: done" must be an answer: a 5xx here would be retried forever.
    other = {"specversion": "1.0", "id": "x-1", "source": "urn:test", "type": "com.example.other"}
    assert post(example, other) == (204, "")


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ("o-1", "data must be an object"),
        ({"orderId": 42, "units": 3}, "orderId must be a non-empty string"),
        ({"orderId": "o-1", "units": "3"}, "units must be a whole number >= 1"),
        ({"orderId": "o-1", "units": True}, "units must be a whole number >= 1"),
        ({"units": 0}, "orderId must be a non-empty string; units must be a whole number >= 1"),
    ],
)
def test_shipping_answers_422_for_an_order_it_cannot_ship(
    data: object, problems: str, tmp_path: Path
) -> None:
    event = {"specversion": "1.0", "id": "a-1", "source": "urn:test"}
    event |= {"type": "com.example.order.accepted", "data": data}
    with HandlerProcess(EXAMPLE_COMMANDS["shipping"], free_port(), tmp_path / "log") as shipping:
        assert post(shipping, event) == (422, f"invalid order: {problems}")


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
