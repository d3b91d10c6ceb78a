"""moto's server with SQS receives at a cost that does not grow with the queue (demo only).

Measured (tests/app/test_steady_moto.py, `python -m tools.steady_moto --measure`): moto 5.2.5's
ReceiveMessage checks each returned message's retention through ``get_queue_attributes``, which
computes *every* attribute of the queue, ApproximateNumberOfMessages and ...NotVisible included:
each walks all messages and asks each for its visibility. A receive of 10 therefore costs about
30 walks of the whole queue: ~10 ms at depth 10, ~0.6 s at depth 1,000, ~3 s at depth 5,000.

SendMessage has the same problem: it reads ``queue.attributes`` (for ContentBasedDeduplication
only, in ``send_message`` and ``_validate_message``), so every message sent walks the queue three
times: a batch of 10 cost ~100 ms of server CPU at a depth of a few hundred. And the server
matches every request's host against the URL patterns of every service it knows, under a lock.

Patches, none of which changes a result (the same messages are retained, counted and returned in
the same order; the same backend serves each host):
- the retention check reads the one attribute it needs (the queue's retention period) directly;
- ``Queue.messages`` becomes a lazy view: a receive walks the queue only up to the tenth visible
  message instead of building the list of all visible ones first (counting still walks it all);
- while a send runs, the attributes it reads leave out the three approximate counts, which it
  never reads (``Queue.BASE_ATTRIBUTES`` answers per thread);
- the backend found for a host is remembered (the patterns never change while it serves).
A receive or a send then costs about the same at any depth. The tests keep moto's costs; both
servers get ``bench.emulators.faithful_sqs``, correctness fixes for concurrent deletes and
receives.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from moto.core.utils import unix_time
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs.models import Message, Queue, SQSBackend

from bench.emulators import faithful_sqs


def _retained(self: SQSBackend, queue_name: str, message: Message) -> bool:
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > unix_time()


class _VisibleMessages:
    """What ``Queue.messages`` returned as a list, produced lazily, in the same order."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def __iter__(self) -> Iterator[Message]:
        return (m for m in self.queue._messages if m.visible and not m.delayed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None


_SENDING: ContextVar[bool] = ContextVar("sending", default=False)
COUNTS = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
)


class _BaseAttributes:
    """``Queue.BASE_ATTRIBUTES``, without the counts in a thread that is sending."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def __get__(self, queue: Queue | None, owner: type[Queue]) -> list[str]:
        if _SENDING.get():
            return [n for n in self.names if n not in COUNTS]
        return self.names


def _sending(send: Callable[..., Message]) -> Callable[..., Message]:
    def send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
        token = _SENDING.set(True)
        try:
            return send(self, *args, **kwargs)
        finally:
            _SENDING.reset(token)

    return send_message


def _remembered(find: Callable[[Any, str | None], Any]) -> Callable[[Any, str | None], Any]:
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in found:
            found[host] = find(self, host)
        return found[host]

    return get_backend_for_host


def patch() -> None:
    faithful_sqs()  # correctness fixes the tests' in-thread server gets too
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    Queue.messages = property(_VisibleMessages)  # type: ignore[assignment,method-assign]
    Queue.BASE_ATTRIBUTES = _BaseAttributes(list(Queue.BASE_ATTRIBUTES))  # type: ignore[assignment]
    SQSBackend.send_message = _sending(SQSBackend.send_message)  # type: ignore[method-assign]
    app = DomainDispatcherApplication
    app.get_backend_for_host = _remembered(app.get_backend_for_host)  # type: ignore[method-assign]


def seconds(action: str, depth: int, rounds: int = 3) -> float:
    """Median CPU time of one ``action`` (a receive of 10, or a send of 10 in one batch) on an
    in-process queue ``depth`` deep. CPU time of this thread, not wall time: on a busy machine
    another process's turn would land in a wall-clock timing and skew the ratio."""
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    name = f"measure-{depth}-{time.monotonic_ns()}"
    backend.create_queue(name)
    for _ in range(depth):
        backend.send_message(name, "x" * 200)
    batch = {
        str(i): {
            "Id": str(i),
            "MessageBody": "x" * 200,
            "MessageAttributes": {},
            "DelaySeconds": None,
        }
        for i in range(10)
    }
    timings = []
    for _ in range(rounds):
        started = time.thread_time()
        if action == "receive":
            assert len(backend.receive_message(name, 10, 0, 0)) == 10
        else:
            backend.send_message_batch(name, batch)
        timings.append(time.thread_time() - started)
    backend.delete_queue(name)
    return sorted(timings)[rounds // 2]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--measure"]:
        for label, patched in (("moto", False), ("steady", True)):
            if patched:
                patch()
            for action in ("receive", "send"):
                shallow, deep = seconds(action, 10), seconds(action, 2000)
                print(f"{label}: {action} of 10 at depth 10 {shallow * 1000:.1f} ms, at depth "
                      f"2000 {deep * 1000:.1f} ms (x{deep / shallow:.1f})")  # fmt: skip
        return
    patch()
    # One log line per request costs the server time the demo would rather spend on requests.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import main as serve  # noqa: PLC0415

    serve(args)


if __name__ == "__main__":
    main()
