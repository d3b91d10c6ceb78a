"""What the consumer needs from a cloud: a work queue, a dead-letter queue and an event table.

Both clouds implement the same small protocols, so the consumer has one code path. The SDK modules
are imported only for the chosen cloud (an AWS pod never loads the Azure SDK and vice versa).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.events import Event
from app.settings import Settings


@dataclass
class Received:
    """One received message. ``receipt`` changes on Azure each time visibility is extended."""

    message_id: str
    body: str
    receipt: str
    deliveries: int | None  # Azure dequeue count; None on SQS, where the redrive policy counts


class WorkQueue(Protocol):
    max_batch: int
    long_polls: bool  # False: an empty receive returns at once and the caller backs off

    def receive(self, wait_seconds: int, visibility_seconds: int) -> list[Received]: ...

    def delete(self, messages: Sequence[Received]) -> int:
        """Delete messages; returns how many could not be deleted (they will be redelivered)."""
        ...

    def extend(self, messages: Sequence[Received], seconds: int) -> None: ...

    def send(self, bodies: Sequence[str]) -> int:
        """Send bodies in as few calls as the API allows; returns how many failed."""
        ...

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> None:
        """Put rejected messages (with their reason) on this queue; raise if any failed."""
        ...


class EventTable(Protocol):
    def write(self, events: Sequence[Event]) -> None:
        """Durably upsert one row per event (keyed by event id); raise if any row failed."""
        ...


@dataclass(frozen=True)
class Backend:
    queue: WorkQueue
    dead_letters: WorkQueue
    table: EventTable
    close: Callable[[], None]  # releases the shared HTTP pools


def build(settings: Settings) -> Backend:
    """One set of clients per process, shared by every worker thread."""
    if settings.cloud == "aws":
        from app import aws  # noqa: PLC0415 - load only the SDK of the chosen cloud

        return aws.build(settings)
    from app import azure  # noqa: PLC0415 - load only the SDK of the chosen cloud

    return azure.build(settings)


def open_queue(
    cloud: str,
    queue: str,
    *,
    connection_string: str | None = None,
    storage_account: str | None = None,
    pool_size: int = 10,
) -> WorkQueue:
    """A queue for sending only (the producer): no table, no dead-letter queue."""
    if cloud == "aws":
        from app import aws  # noqa: PLC0415 - load only the SDK of the chosen cloud

        return aws.open_queue(queue, pool_size)
    from app import azure  # noqa: PLC0415 - load only the SDK of the chosen cloud

    return azure.open_queue(queue, connection_string, storage_account, pool_size)
