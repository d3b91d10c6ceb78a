"""What the consumer needs from a cloud: a work queue, a dead-letter queue and an event table.

Both clouds implement the same small protocols, so the consumer has one code path. The SDK modules
are imported only for the chosen cloud (an AWS pod never loads the Azure SDK and vice versa).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from app.events import Event
from app.settings import MAX_COPIES_LIMIT, Settings

T = TypeVar("T")
# The copy counter: the SQS message attribute of a fresh copy, and on Azure (queue messages carry
# no attributes) the first line of a copy's content, "edw-copies:<n>\n", stripped on receive. An
# event cannot be mistaken for it: JSON starts with "{" (after blanks) and Event Grid's Base64
# has neither "-" nor ":".
COPIES = "edw-copies"
# The longest copy line the consumer writes (EDW_MAX_COPIES is at most MAX_COPIES_LIMIT).
MAX_COPY_LINE_BYTES = len(f"{COPIES}:{MAX_COPIES_LIMIT}\n")
# One event size limit on both clouds, enforced by the producer: every event it lets through
# must reach the work queue, survive a fresh copy, and fit a row, on either cloud. The bounds:
# - Azure Table (app/azure.py; the consumer holds Cosmos DB for Table to it): a string property
#   holds at most 32K UTF-16 code units. A text never has more UTF-16 code units than UTF-8
#   bytes, and every stored property (data, extensions, each attribute) is at most the event's
#   text, so an event of at most 32,768 bytes fits whatever it holds; 48 KiB of ASCII data is
#   dead-lettered there ("row too large").
# - Azure queue: Event Grid writes the JSON Base64-encoded (4 characters per 3 bytes) into a
#   64 KiB message, and a fresh copy adds its copy line (at most MAX_COPY_LINE_BYTES = 19):
#   4 * ceil(n / 3) <= 65,536 - 19 gives n <= 49,137 bytes.
# - SQS: the stack's work queue takes 256 KiB, counting attributes (a copy's counter, about 30
#   bytes; a dead letter's reason is reserved in app/aws.py); DynamoDB items 400 KB.
# The smallest is the table's: 32 KiB. It leaves the queue bound 16,369 bytes of margin for what
# Event Grid may change in the JSON it writes (not documented; not checkable without a topic).
MAX_EVENT_BYTES = 32 * 1024
# A dead letter's reason, in characters, on both clouds: room for the longest reason the app
# writes, a handler's "handler answered <status>: " and the first KiB of its answer
# (app/handler.py), which decodes to at most 1024 characters.
MAX_REASON_CHARS = 2048
# A batch's table writes (and handler calls) may start until this share of its processing
# timeout; the rest is kept to settle it (dead letters, fresh copies, deletes) before the
# heartbeat would release it.
WRITE_SHARE = 0.75
# The longest a call to the table or the router, made while a batch is worked on, waits to
# connect and for its answer (less when the batch's settling time is short: batch_call_seconds).
CALL_SECONDS = 5
EVENT_LIMIT_REASON = (
    f"the limit is {MAX_EVENT_BYTES} bytes (32 KiB) of JSON on both clouds: an Azure Table "
    "string property holds 32K UTF-16 code units, and Event Grid writes each event into a 64 KiB "
    "Azure Storage queue message Base64-encoded (docs/app.md, event size)"
)


def copies_from(text: str) -> int:
    """A copy counter's value: 0 unless ASCII digits; never ``int()`` of an unbounded text
    (Python refuses more than 4300 digits), a longer number counts as MAX_COPIES_LIMIT."""
    if not (text.isascii() and text.isdigit()):
        return 0
    return int(text) if len(text) <= len(str(MAX_COPIES_LIMIT)) else MAX_COPIES_LIMIT


def batch_call_seconds(processing_timeout_seconds: float) -> float:
    """How long one table or router call of a batch may last: one attempt (the consumer's loop
    retries with backoff within the batch's write time), at most CALL_SECONDS, and at most 0.8 of
    the settling time, so a call started at the write deadline ends before the processing
    timeout. Past it the batch is released and delivered again: a table or router that hangs
    would count deliveries up to the dead-letter limit, an outage dead-lettering messages."""
    return min(CALL_SECONDS, 0.8 * (1 - WRITE_SHARE) * processing_timeout_seconds)


def event_size_problem(body: str) -> str | None:
    """Why an event is too large to send (the producer's contract), or None."""
    size = len(body.encode("utf-8", "surrogatepass"))
    if size <= MAX_EVENT_BYTES:
        return None
    return f"the event is {size} bytes; {EVENT_LIMIT_REASON}"


@dataclass(eq=False)
class Received:
    """One received message. ``receipt`` changes on Azure each time visibility is extended."""

    message_id: str
    body: str  # the text the consumer parses (on Azure, Event Grid's Base64 decoded)
    receipt: str
    deliveries: int  # this delivery's number: SQS ApproximateReceiveCount, Azure dequeue count
    raw: str | None = None  # the queue's content, when it differs from ``body``
    copies: int = 0  # fresh copies the consumer made before this one (the counter, COPIES)

    @property
    def content(self) -> str:
        """The message as it was first queued (on Azure, without a copy's counter line): what a
        dead letter or a copy carries."""
        return self.body if self.raw is None else self.raw


def row_key(workflow: str, source: str, event_id: str) -> str:
    """A row's key on both clouds: the SHA-256, in lower-case hex, of the (workflow, source, id)
    triple written as three netstrings of their UTF-8 bytes (``<length>:<bytes>,`` each).

    CloudEvents makes ``source`` + ``id`` unique (spec 1.0.2, ``id``), and one event routed to
    several workflows leaves one row per workflow, so the triple is the row's identity. The
    netstrings make the encoding unambiguous (no two triples share one), and the digest makes
    every key 64 characters of ``0-9a-f``: within DynamoDB's 2048-byte partition key and Cosmos
    DB for Table's 255-byte RowKey, and free of the characters Azure Table keys forbid
    (``/ \\ # ?`` and control characters), whatever the id holds. A redelivery derives the
    same key and overwrites its own row. This is the table schema: never change it."""
    digest = hashlib.sha256()
    for part in (workflow, source, event_id):
        data = part.encode()
        digest.update(b"%d:%b," % (len(data), data))
    return digest.hexdigest()


def stored_row(workflow: str, event: Event) -> tuple[str, dict[str, str]]:
    """(key, attributes) of an event's row: the event's attributes (``eventId`` and ``source``
    raw among them) and the ``workflow`` that stored it."""
    return row_key(workflow, event.source, event.id), {**event.row(), "workflow": workflow}


class RowRejected(Exception):  # noqa: N818 - reads as "raise RowRejected(reason)"
    """The table refused a write for what its rows hold (only a row-size refusal counts, the
    one thing an event's content can cause: app/aws.py, app/azure.py): retrying the same rows
    cannot help. A multi-row write is refused whole (DynamoDB's BatchWriteItem) or raises for
    its first refused row (Azure's parallel upserts), so the consumer splits the rows until the
    refused one is alone; only it is dead-lettered, with this text as reason. Every other
    exception of a write is the table's fault, not the rows': the consumer retries it and never
    dead-letters for it."""


class TableFull(Exception):  # noqa: N818 - reads as "raise TableFull(reason)"
    """The table takes no more rows where this one goes until an operator acts (Cosmos DB: a
    logical partition at its 20 GB cap, HTTP 403 with substatus 1014). Not the message's fault:
    the consumer never dead-letters for it. It fails the write like any table failure (the
    breaker opens, receiving pauses, the messages go back as fresh copies) and also counts it in
    ``edw_table_full_total``, on which the alert EdwTableFull pages at once, naming the cause,
    instead of after EdwTableFailing's 5 minutes. Raised by ``EventTable.write``; the text is the
    service's error."""


class Sender(Protocol):
    """Where the producer sends: a work queue, or the router in front of the workflows."""

    max_batch: int

    def send(self, bodies: Sequence[str]) -> int:
        """Send bodies in as few calls as the API allows; returns how many failed."""
        ...


class WorkQueue(Sender, Protocol):
    long_polls: bool  # False: an empty receive returns at once and the caller backs off
    max_visibility_seconds: int  # the most a message may stay hidden (SQS: 12 h; Azure: 7 days)

    def receive(
        self, wait_seconds: int, visibility_seconds: int, max_messages: int
    ) -> list[Received]:
        """At most ``max_messages`` (no more than ``max_batch``), hidden for the timeout."""
        ...

    def delete(self, messages: Sequence[Received]) -> list[Received]:
        """Delete messages; returns those that could not be deleted (they will come back)."""
        ...

    def depth(self) -> int:
        """Messages the queue holds, visible or in flight (approximate, as the service counts)."""
        ...

    def extend(self, messages: Sequence[Received], seconds: int) -> list[Received]:
        """Set each message's visibility to ``seconds`` from now; returns those that failed."""
        ...

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> list[Received]:
        """Put rejected messages, each with its reason and its whole content, on this queue;
        returns exactly the messages whose dead letter was accepted."""
        ...

    def resend(self, messages: Sequence[Received]) -> list[Received]:
        """Put a copy of each message's content on this queue as a new message (its delivery
        count starts again); returns exactly the messages whose copy was accepted."""
        ...


class EventTable(Protocol):
    def refusal(self, event: Event) -> str | None:
        """Why the table cannot hold this event's row (its size limits), or None."""
        ...

    def write(self, events: Sequence[Event], until: float = math.inf) -> None:
        """Durably upsert one row per event (keyed by ``row_key``), starting no call after
        ``until`` (monotonic): each call is one attempt bounded by ``batch_call_seconds``. Raises
        ``RowRejected`` when the table refuses the write for what the rows hold, ``TableFull``
        when the table has no room for them; any other exception means the table is failing (an
        outage, throttling, a 5xx, a lost connection, no time left for a call) and is worth
        retrying."""
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


def batches(
    items: Sequence[T], max_count: int, max_bytes: int, measure: Callable[[T], int]
) -> Iterator[list[T]]:
    """Send batches in order: at most ``max_count`` items and ``max_bytes`` in total (a lone
    larger item is its own batch: the service refuses it, and the caller counts it failed)."""
    batch: list[T] = []
    size = 0
    for item in items:
        item_size = measure(item)
        if batch and (len(batch) == max_count or size + item_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


def open_router(
    cloud: str, address: str, *, pool_size: int = 10, call_seconds: float | None = None
) -> Sender:
    """The stack's router for publishing: an SNS topic ARN on aws, an Event Grid topic endpoint
    on azure. The producer's (no ``call_seconds``) waits up to 30 s for an answer, and the SDK
    retries once; with ``call_seconds`` (the consumer publishing a handler's events) a call is
    one attempt that connects and answers within that time: its caller retries."""
    if cloud == "aws":
        from app import aws  # noqa: PLC0415 - load only the SDK of the chosen cloud

        return aws.open_router(address, pool_size, call_seconds)
    from app import azure  # noqa: PLC0415 - load only the SDK of the chosen cloud

    return azure.open_router(address, pool_size, call_seconds)


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
