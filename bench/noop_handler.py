"""The benchmark's handler: answers every POST 204 at once (HTTP/1.1, kept-alive), on PORT.

PORT=8080 python -m bench.noop_handler
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (kept-alive connections, as the consumer uses them), no access log."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass


class Handler(QuietHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()


def serve(handler: type[BaseHTTPRequestHandler]) -> None:
    """Serve ``handler`` on loopback at ``PORT`` until killed, a thread per connection."""
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    serve(Handler)
