"""A local stand-in for the Azure router (an Event Grid custom topic), which has no emulator.

It serves the publish call the app makes (app/azure.py ``EventGridRouter``): ``POST`` of
``application/cloudevents-batch+json`` (a JSON array) or ``application/cloudevents+json`` (one
event), the CloudEvents 1.0 input schema, at most 1 MB a request, accepted or refused whole
(200, or 400/413/415 with the reason). Each accepted event is written, Base64-encoded as Event
Grid's Storage-queue destination writes it, into every subscribed Azurite queue whose filter it
passes (``components.routing.matches``, the cloud-neutral filter model the stack renders into
Event Grid advanced filters).

What it does NOT check, so a test or demo passing here says nothing about these on Azure:
authentication (no Entra token is asked for; the app sends none to an ``http://`` endpoint),
Event Grid's own implementation of advanced filtering (only our filter model is applied; the
routing parity suite, tests/app/test_routing_parity.py, compares it to Event Grid's documented
rules), delivery retries, dead-lettering to blobs, per-event size limits beyond the 1 MB request,
throttling, and the delivery delay (writes happen before the 200).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app import events
from app.handler import Defect, array_elements
from components.routing import EventFilter, matches

MAX_REQUEST_BYTES = 1_000_000  # a custom topic's publish request (app/azure.py)
MEDIA_TYPES = ("application/cloudevents-batch+json", "application/cloudevents+json")


class Refused(Exception):  # noqa: N818 - reads as "raise Refused(status, reason)"
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def accepted_events(content_type: str, body: bytes) -> list[str]:
    """The exact text of each event of one publish request, or Refused with why."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise Refused(415, f"content type {content_type!r} is not one of {MEDIA_TYPES}")
    if len(body) > MAX_REQUEST_BYTES:
        raise Refused(413, f"{len(body)} bytes; a request holds at most {MAX_REQUEST_BYTES}")
    try:
        text = body.decode("utf-8")
        texts = array_elements(text) if media == MEDIA_TYPES[0] else [text]
        for item in texts:
            events.parse(item)
    except (UnicodeDecodeError, Defect, events.InvalidEvent) as exc:
        raise Refused(400, str(exc)) from exc
    return texts


class EventGridStandIn:
    """The topic on loopback; ``subscriptions`` maps an Azurite queue name to its filter."""

    def __init__(self, connection_string: str, subscriptions: Mapping[str, EventFilter]) -> None:
        from azure.storage.queue import QueueClient  # noqa: PLC0415 - Azure paths only

        self.queues = {
            name: (QueueClient.from_connection_string(connection_string, name), event_filter)
            for name, event_filter in subscriptions.items()
        }
        self.published: list[str] = []  # every accepted event, in order
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive, like the real endpoint

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    stand_in.deliver(accepted_events(self.headers.get("Content-Type", ""), body))
                    status, answer = 200, b""
                except Refused as exc:
                    status, answer = exc.status, json.dumps({"error": str(exc)}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                """One line per publish would drown the demo's view."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/events"

    def deliver(self, texts: list[str]) -> None:
        for text in texts:
            doc = json.loads(text)
            encoded = base64.b64encode(text.encode()).decode()
            for queue, event_filter in self.queues.values():
                if matches(event_filter, doc):
                    queue.send_message(encoded)
        with self._lock:
            self.published.extend(texts)

    def __enter__(self) -> EventGridStandIn:
        threading.Thread(target=self.httpd.serve_forever, name="event-grid", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
