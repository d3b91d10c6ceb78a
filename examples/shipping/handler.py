"""The `shipping` workflow's handler (docs/handlers.md): Python's standard library only.

It receives each com.example.order.accepted event as a structured CloudEvent and answers with a
JSON object, which the consumer stores as the event's row's ``result``: the parcel count, the
carrier and a tracking number derived from the order id (so a retry gives the same answer).
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


def ship(order: dict) -> dict:
    digest = hashlib.sha256(order["orderId"].encode()).hexdigest()
    units = int(order.get("units") or sum(i["quantity"] for i in order["items"]))
    return {
        "orderId": order["orderId"],
        "parcels": -(-units // UNITS_PER_PARCEL),
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
        if event.get("type") != "com.example.order.accepted":
            return self.answer(204)  # not ours: done, nothing to store but the event
        try:
            result = ship(event["data"])
        except (KeyError, TypeError, ValueError) as exc:
            return self.answer(422, "text/plain", f"not an accepted order: {exc!r}")
        return self.answer(200, "application/json", json.dumps(result))

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
