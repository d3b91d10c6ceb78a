"""Fake HTTP APIs the tests serve on loopback (Kubernetes, ARM, Event Grid, Azure Monitor)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Send ``body`` (JSON-encoded unless already bytes) with its length and content type."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class RecordingEndpoint:
    """An ingestion endpoint (Event Grid topic, Azure Monitor metrics): records each POST's
    headers and body, answers ``status``."""

    def __init__(self, path: str = "") -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.status = 200
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                endpoint.requests.append((dict(self.headers), self.rfile.read(length)))
                endpoint.paths.append(self.path)
                reply(self, endpoint.status, {} if endpoint.status < 300 else {"error": "no"})

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"{self.base}{path}"

    def __enter__(self) -> RecordingEndpoint:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()

    def bodies(self) -> list[Any]:
        return [json.loads(body) for _, body in self.requests]


class FakeCredential:
    """An Entra credential that hands out a fixed token, for one expected scope only."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def get_token(self, scope: str) -> Any:
        assert scope == self.scope
        return type("Token", (), {"token": "entra-token"})()
