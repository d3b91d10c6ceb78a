"""In-memory queue and table with scripted failures, for consumer behaviour no emulator can show
(a call that fails for one message only, a write refused mid-batch, a call that never returns)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.backend import Backend, Received, RowRejected
from app.events import Event, make
from app.observability import Metrics
from app.settings import Settings

Fail = Callable[[Received], bool]


def event_body(i: int) -> str:
    return make({"seq": i}, source="urn:test", type_="t", event_id=f"e{i}")


@dataclass
class FakeQueue:
    """Records every call; ``fail_*`` decide per message whether a call fails for it."""

    long_polls: bool = True
    max_batch: int = 10
    max_visibility_seconds: int = 43_200
    inbox: list[Received] = field(default_factory=list)
    deleted: list[Received] = field(default_factory=list)
    extended: list[tuple[Received, int]] = field(default_factory=list)
    sent: list[tuple[Received, str]] = field(default_factory=list)
    receives: int = 0
    fail_delete: Fail = lambda _: False
    fail_extend: Fail = lambda _: False
    fail_send: Fail = lambda _: False
    block_receive: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, *bodies: str, deliveries: int = 1) -> list[Received]:
        messages = [
            Received(f"m{len(self.inbox) + i}", body, f"r{len(self.inbox) + i}", deliveries)
            for i, body in enumerate(bodies)
        ]
        self.inbox.extend(messages)
        return messages

    def receive(
        self, wait_seconds: int, visibility_seconds: int, max_messages: int
    ) -> list[Received]:
        self.receives += 1
        if self.block_receive is not None:
            self.block_receive.wait()
        take = min(self.max_batch, max_messages)
        with self.lock:
            batch, self.inbox = self.inbox[:take], self.inbox[take:]
        return batch

    def delete(self, messages: Sequence[Received]) -> list[Received]:
        failed = [m for m in messages if self.fail_delete(m)]
        self.deleted.extend(m for m in messages if m not in failed)
        return failed

    def extend(self, messages: Sequence[Received], seconds: int) -> list[Received]:
        failed = [m for m in messages if self.fail_extend(m)]
        self.extended.extend((m, seconds) for m in messages if m not in failed)
        return failed

    def send(self, bodies: Sequence[str]) -> int:
        return 0

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> list[Received]:
        accepted = [(m, r) for m, r in rejects if not self.fail_send(m)]
        self.sent.extend(accepted)
        return [m for m, _ in accepted]


@dataclass
class FakeTable:
    """Refuses rows whose id is in ``refused`` (like a 400 for that row); ``outage`` raises a
    transient error for every write while it returns True."""

    rows: dict[str, Event] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    outage: Callable[[], bool] = lambda: False
    writes: list[list[str]] = field(default_factory=list)
    delay: float = 0.0

    def refusal(self, event: Event) -> str | None:
        return None

    def write(self, events: Sequence[Event]) -> None:
        self.writes.append([e.id for e in events])
        if self.delay:
            threading.Event().wait(self.delay)
        if self.outage():
            raise ConnectionError("table unreachable")
        bad = [e.id for e in events if e.id in self.refused]
        if bad:
            raise RowRejected(f"ValidationException: row {bad[0]} has an invalid attribute")
        self.rows.update((e.id, e) for e in events)


def settings(**changes: object) -> Settings:
    base = Settings(
        cloud="aws",
        queue="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        dead_letter_queue="https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        table="t",
        concurrency=1,
        receive_wait_seconds=1,
        processing_timeout_seconds=5,
        visibility_timeout_seconds=30,
    )
    return Settings(**{**base.__dict__, **changes})


def backend(queue: FakeQueue, dead_letters: FakeQueue, table: FakeTable) -> Backend:
    return Backend(queue=queue, dead_letters=dead_letters, table=table, close=lambda: None)


def metrics() -> Metrics:
    return Metrics("aws")


def count(m: Metrics, name: str) -> float:
    value = m.registry.get_sample_value(name, {"cloud": "aws", "workflow": "work"})
    return value or 0.0
