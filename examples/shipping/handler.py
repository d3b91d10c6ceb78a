"""The `shipping` workflow's handler (docs/handlers.md): Python's standard library only.

It receives each com.example.order.accepted event as a structured CloudEvent and answers with a
JSON object, which the consumer stores as the event's row's ``result``: the parcel count, the
carrier and a tracking number derived from the order id (so a retry gives the same answer).
An order it cannot ship (no order id, no unit count) gets 422 with the problems: the consumer
dead-letters that event alone, the answer as its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CARRIERS = ("parcelnet", "swiftpost", "cargoline")
UNITS_PER_PARCEL = 5


def problems(order: object) -> list[str]:
    """What is wrong with an accepted order (an empty list: nothing)."""
    if not isinstance(order, dict):
        return ["data must be an object"]
    found = []
    if not isinstance(order.get("orderId"), str) or not order["orderId"]:
        found.append("orderId must be a non-empty string")
    units = order.get("units")  # the orders handler counts them
    if type(units) is not int or units < 1:  # not isinstance: True is an int too
        found.append("units must be a whole number >= 1")
    return found


def ship(order: dict) -> dict:
    digest = hashlib.sha256(order["orderId"].encode()).hexdigest()
    return {
        "orderId": order["orderId"],
        "parcels": -(-order["units"] // UNITS_PER_PARCEL),
        "carrier": CARRIERS[int(digest[:8], 16) % len(CARRIERS)],
        "trackingNumber": f"TRK{digest[:12].upper()}",
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep the consumer's connections alive

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            event = json.loads(body)
        except ValueError as exc:
            return self.answer(400, "text/plain", f"not JSON: {exc}")
        if not isinstance(event, dict):
            return self.answer(400, "text/plain", "not a JSON object")
        if event.get("type") != "com.example.order.accepted":
            return self.answer(204)  # not ours: done, nothing to store but the event
        # 422 for an order we will never ship: the consumer dead-letters it with this reason.
        # (An exception here would drop the connection, which the consumer retries forever.)
        if found := problems(event.get("data")):
            return self.answer(422, "text/plain", f"invalid order: {'; '.join(found)}")
        return self.answer(200, "application/json", json.dumps(ship(event["data"])))

    def answer(self, status: int, content_type: str = "", text: str = "") -> None:
        data = text.encode()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        """One line per event would drown the pod's log."""


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    # SIGTERM: stop accepting, finish what is in flight, exit 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"shipping handler listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
