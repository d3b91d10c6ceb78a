"""Answers for the fake HTTP APIs the tests serve on loopback (Kubernetes, ARM)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


def reply(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Send ``body`` (JSON-encoded unless already bytes) with its length and content type."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
