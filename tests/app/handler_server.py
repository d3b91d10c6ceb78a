"""A handler the tests configure while it runs: ``python -m tests.app.handler_server SCRIPT LOG``.

Serves ``PORT`` (HTTP/1.1, kept-alive). Each POST is appended to LOG as one JSON line (its
Content-Type and body) and answered from SCRIPT, a JSON file read again whenever it changes:

    {"answers": [<answer>, ...],   # the first calls, in order (counted from the last change)
     "then": <answer>,              # every call after them
     "by_id": {"<event id>": <answer>}}   # wins over both for that event
    <answer> = {"status": 200, "type": "application/json", "body": "...", "delay": 0.0}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.noop_handler import QuietHandler, serve

SCRIPT, LOG = Path(sys.argv[1]), Path(sys.argv[2])
state: dict[str, Any] = {"text": None, "script": {}, "calls": 0}
lock = threading.Lock()


def answer_for(event_id: str) -> dict[str, Any]:
    with lock:
        text = SCRIPT.read_text()
        if text != state["text"]:
            state.update(text=text, script=json.loads(text), calls=0)
        script, n = state["script"], state["calls"]
        state["calls"] += 1
    if event_id in script.get("by_id", {}):
        return script["by_id"][event_id]
    answers = script.get("answers", [])
    return answers[n] if n < len(answers) else script.get("then", {"status": 204})


class Handler(QuietHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's method name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with lock, LOG.open("a") as log:
            log.write(json.dumps({"type": self.headers.get("Content-Type"), "body": body}) + "\n")
        try:
            event_id = json.loads(body).get("id", "")
        except ValueError:
            event_id = ""
        answer = answer_for(event_id)
        time.sleep(answer.get("delay", 0))
        data = answer.get("body", "").encode()
        self.send_response(answer.get("status", 200))
        if answer.get("type"):
            self.send_header("Content-Type", answer["type"])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    serve(Handler)
