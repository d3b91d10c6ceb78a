"""The orders -> shipping chain on the emulators, handlers as local processes, no Docker.

    python -m tools.chain --cloud aws|azure --orders 30     (make demo-chain, and in make demo)

Starts the emulator (moto: SQS, DynamoDB and SNS as the router; or Azurite with the local Event
Grid stand-in, bench/event_grid.py, as the router: Event Grid has no emulator), the example
handlers of examples/workflows.json as local processes (`node` for orders, `python` for
shipping), one consumer per workflow, and publishes orders to the router, every fifth one invalid.
A live view shows each workflow: queue depth, rows, dead letters, handler answers and events
emitted. Exit 0 when every valid order has a shipping row with a result, every invalid one is
dead-lettered with the orders handler's 422, nothing else is dead-lettered and no queue holds
anything (``verdict``); 1 otherwise, naming what is wrong (or at --timeout); 130 on Ctrl-C.
Without `node` it says so and exits 0: the step is optional.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from app import events
from app.azure import event_grid_text
from bench.chain import Chain, Running, example_workflows
from bench.emulators import AZURITE, AzuriteEmulator, DeadLetter, MotoEmulator
from tools.live import LiveView

HEADERS = ("workflow", "queue", "rows", "dead-lettered", "handler ok", "rejected", "emitted")
INVALID_EVERY = 5
# How the orders handler's refusal reads as a dead letter's reason (examples/orders/server.js).
REJECTED = "handler answered 422: invalid order: "


def invalid(n: int) -> bool:
    return n % INVALID_EVERY == INVALID_EVERY - 1


def order_id(n: int) -> str:
    return f"o-{n:04d}"


def orders(count: int) -> list[str]:
    """``count`` order.created events; every fifth has an item the orders handler refuses."""
    bodies = []
    for n in range(count):
        quantity = 0 if invalid(n) else 1 + n % 7
        data = {"orderId": order_id(n), "customer": f"c-{n % 13:02d}", "items": []}
        data["items"] = [{"sku": "tea", "quantity": quantity}, {"sku": "cup", "quantity": 1}]
        bodies.append(events.make(data, source="urn:shop:web", type_="com.example.order.created"))
    return bodies


def metric(running: Running, name: str, outcome: str = "") -> int:
    samples = running.consumer.metrics()
    wanted = f'outcome="{outcome}"' if outcome else ""
    return int(sum(v for k, v in samples.items() if k.startswith(name + "{") and wanted in k))


def row(name: str, running: Running) -> list[str]:
    target = running.workflow.target
    return [
        name,
        str(target.depth()),
        str(len(target.row_ids())),
        str(metric(running, "edw_messages_dead_lettered_total")),
        str(metric(running, "edw_handler_calls_total", "ok")),
        str(metric(running, "edw_handler_calls_total", "rejected")),
        str(metric(running, "edw_events_emitted_total")),
    ]


def order_in(data_text: str) -> str:
    """The ``orderId`` of an event's data, given as JSON text ("" when there is none)."""
    try:
        data = json.loads(data_text)
    except ValueError:
        return ""
    return str(data.get("orderId", "")) if isinstance(data, dict) else ""


def dead_order(letter: DeadLetter) -> str:
    """The ``orderId`` of a dead-lettered event (Base64 from Event Grid on Azure)."""
    try:
        event = events.parse(event_grid_text(letter.body))
    except events.InvalidEvent:
        return ""
    return order_in(event.data_json or "")


def verdict(
    count: int,
    shipped: Sequence[Mapping[str, Any]],
    dead: Mapping[str, Sequence[DeadLetter]],
    depths: Sequence[int],
) -> list[str]:
    """What is wrong once the chain of ``count`` orders has settled (empty: it is OK): every
    valid order has a shipping row with a result, every invalid one, and only those, is
    dead-lettered by `orders` with its 422, nothing else is dead-lettered and no queue holds
    anything. ``shipped``: the shipping rows; ``dead``: each workflow's dead letters."""
    valid = {order_id(n) for n in range(count) if not invalid(n)}
    refused = {order_id(n) for n in range(count) if invalid(n)}
    wrong = []
    results = {order_in(r.get("data", "")) for r in shipped if r.get("result")}
    if lost := valid - results:
        wrong.append(f"valid orders without a shipping row with a result: {sorted(lost)}")
    if extra := results - valid:
        wrong.append(f"shipped orders that are not valid ones: {sorted(extra)}")
    reasons = {dead_order(d): d.reason for d in dead.get("orders", ())}
    if kept := refused - set(reasons):
        wrong.append(f"invalid orders not dead-lettered: {sorted(kept)}")
    for order, reason in sorted(reasons.items()):
        if order not in refused:
            wrong.append(f"dead-lettered but not an invalid order: {order!r} ({reason})")
        elif not reason.startswith(REJECTED):
            wrong.append(f"{order} dead-lettered for another reason than the 422: {reason}")
    for name, letters in sorted(dead.items()):
        if name != "orders" and letters:
            wrong.append(f"{name} dead-lettered {len(letters)}: {letters[0].reason}")
    if any(depths):
        wrong.append(f"queues still hold messages: {list(depths)}")
    return wrong


def missing(cloud: str) -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH (the orders example handler is Node.js; install 20+)"
    if cloud == "azure" and not AZURITE.exists():
        return "Azurite is not installed (make demo CLOUD=azure installs it)"
    return None


def run(args: argparse.Namespace) -> int:
    if problem := missing(args.cloud):
        print(f"skipping the orders -> shipping handler chain: {problem}", flush=True)
        return 0
    valid = args.orders - args.orders // INVALID_EVERY
    router = "SNS" if args.cloud == "aws" else "a local Event Grid stand-in (no emulator exists)"
    print(
        f"handler chain: {args.orders} orders -> orders (Node.js) -> shipping (Python), router: "
        f"{router}",
        flush=True,
    )
    emulator = MotoEmulator(own_process=True) if args.cloud == "aws" else AzuriteEmulator()
    console = Console(stderr=False)
    with (
        emulator,
        tempfile.TemporaryDirectory(prefix="edw-chain-") as logs,
        Chain(emulator, example_workflows(), Path(logs)) as chain,
    ):
        if args.cloud == "aws":  # this process publishes, as a producer would
            os.environ.update({"AWS_ENDPOINT_URL": emulator.endpoint})
        chain.publish(orders(args.orders))
        deadline = time.monotonic() + args.timeout
        with LiveView(console, "orders -> shipping", HEADERS) as view:
            while True:
                rows = [row(name, running) for name, running in chain.running.items()]
                view.show_rows(rows)
                shipped = int(rows[1][2])
                done = shipped == valid and all(r[1] == "0" for r in rows)
                if done and int(rows[0][3]) == args.orders - valid:
                    break
                if time.monotonic() > deadline:
                    print(
                        f"FAILED: {shipped} of {valid} orders shipped after {args.timeout}s; "
                        f"logs were in {logs}",
                        flush=True,
                    )
                    return 1
                time.sleep(1)
        targets = {name: r.workflow.target for name, r in chain.running.items()}
        shipping_rows = targets["shipping"].rows()
        dead = {name: target.dead_letters() for name, target in targets.items()}
        wrong = verdict(args.orders, shipping_rows, dead, [t.depth() for t in targets.values()])
    if wrong:
        print("FAILED: " + "; ".join(wrong), flush=True)
        return 1
    sample = next(r for r in shipping_rows if r.get("result"))
    print(
        f"OK: {valid} orders shipped, {args.orders - valid} invalid ones dead-lettered with "
        f"the orders handler's 422; a shipping row's result: {sample['result']}",
        flush=True,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.chain", description=__doc__.split("\n")[0])
    p.add_argument("--cloud", choices=("aws", "azure"), default="aws")
    p.add_argument("--orders", type=int, default=30, help="orders to publish (every 5th invalid)")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds before giving up")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:  # the chain's processes were stopped on the way out
        print("stopped", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
