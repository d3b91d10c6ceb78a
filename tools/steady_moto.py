"""moto's server with SQS receives at a cost that does not grow with the queue (demo only).

Measured (tests/app/test_steady_moto.py, `python -m tools.steady_moto --measure`): moto 5.2.5's
ReceiveMessage checks each returned message's retention through ``get_queue_attributes``, which
computes *every* attribute of the queue, ApproximateNumberOfMessages and ...NotVisible included:
each walks all messages and asks each for its visibility. A receive of 10 therefore costs about
30 walks of the whole queue: ~10 ms at depth 10, ~0.6 s at depth 1,000, ~3 s at depth 5,000.

Two patches, neither of which changes a result (the same messages are retained, counted and
returned in the same order):
- the retention check reads the one attribute it needs (the queue's retention period) directly;
- ``Queue.messages`` becomes a lazy view: a receive walks the queue only up to the tenth visible
  message instead of building the list of all visible ones first (counting still walks it all).
A receive then costs about the same at any depth. The tests keep moto's costs; both servers get
``bench.emulators.faithful_sqs``, correctness fixes for concurrent deletes and receives.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from moto.core.utils import unix_time
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


def patch() -> None:
    faithful_sqs()  # correctness fixes the tests' in-thread server gets too
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    Queue.messages = property(_VisibleMessages)  # type: ignore[assignment,method-assign]


def receive_seconds(depth: int, rounds: int = 3) -> float:
    """Median time of a receive of 10 from an in-process queue ``depth`` deep."""
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    name = f"measure-{depth}-{time.monotonic_ns()}"
    backend.create_queue(name)
    for _ in range(depth):
        backend.send_message(name, "x" * 200)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        received = backend.receive_message(name, 10, 0, 0)
        timings.append(time.perf_counter() - started)
        assert len(received) == 10
    backend.delete_queue(name)
    return sorted(timings)[rounds // 2]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--measure"]:
        for label, patched in (("moto", False), ("steady", True)):
            if patched:
                patch()
            shallow, deep = receive_seconds(10), receive_seconds(2000)
            print(f"{label}: receive of 10 at depth 10 {shallow * 1000:.1f} ms, at depth 2000 "
                  f"{deep * 1000:.1f} ms (x{deep / shallow:.1f})")  # fmt: skip
        return
    patch()
    from moto.server import main as serve  # noqa: PLC0415

    serve(args)


if __name__ == "__main__":
    main()
