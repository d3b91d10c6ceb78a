"""Azure backend: Storage Queue work queue and poison queue, Cosmos DB for Table (or Azurite).

In the cluster the clients authenticate with ``DefaultAzureCredential`` (workload identity). For
emulators set ``EDW_AZURE_CONNECTION_STRING`` (e.g. ``UseDevelopmentStorage=true`` or an explicit
Azurite string); it then serves both the queue and the table.

Table key design: RowKey is the event id; PartitionKey is one of ``PARTITIONS`` buckets derived
from a CRC-32 of the id. A redelivered event always maps to the same (PartitionKey, RowKey) and
overwrites its row, while a received batch shares few enough partitions to be written as a handful
of entity-group transactions (a transaction may only span one PartitionKey).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from xml.sax.saxutils import escape as xml_escape

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient
from requests.adapters import HTTPAdapter

from app.backend import Backend, Received
from app.events import Event
from app.settings import Settings

AZURE_BATCH = 32  # the most one Get Messages call returns
TRANSACTION_LIMIT = 100
PARTITIONS = 8
MAX_MESSAGE_BYTES = 64 * 1024  # of the XML-escaped text, as the SDK sends it
log = logging.getLogger("edw.azure")
T = TypeVar("T")
R = TypeVar("R")


def partition_key(event_id: str) -> str:
    """Stable bucket of an event id: the same id always lands in the same partition."""
    return f"p{zlib.crc32(event_id.encode()) % PARTITIONS}"


class PoisonError(RuntimeError):
    """A poison message could not be stored; the original stays on the work queue."""


class _Pool:
    """One thread pool per process for the calls Azure has no batch form of (delete, send)."""

    def __init__(self, size: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="azure-io")

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        items = list(items)
        if len(items) == 1:  # skip the hand-off for single calls
            return [fn(items[0])]
        return list(self.executor.map(fn, items))


def _ok(call: Callable[[], object], what: str) -> bool:
    try:
        call()
    except Exception as exc:  # counted by the caller; an undeleted message comes back later
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("%s failed", what, extra={"fields": {"error": reason}})
        return False
    return True


class StorageQueue:
    max_batch = AZURE_BATCH
    long_polls = False  # Azure queues have no long polling: the consumer backs off when idle

    def __init__(self, client: QueueClient, pool: _Pool) -> None:
        self.client = client
        self.pool = pool

    def receive(self, wait_seconds: int, visibility_seconds: int) -> list[Received]:
        pages = self.client.receive_messages(
            messages_per_page=AZURE_BATCH,
            max_messages=AZURE_BATCH,
            visibility_timeout=visibility_seconds,
        ).by_page()
        return [Received(m.id, m.content, m.pop_receipt, m.dequeue_count) for m in next(pages, [])]

    def delete(self, messages: Sequence[Received]) -> int:
        results = self.pool.map(
            lambda m: _ok(lambda: self.client.delete_message(m.message_id, m.receipt), "delete"),
            messages,
        )
        return results.count(False)

    def extend(self, messages: Sequence[Received], seconds: int) -> None:
        def one(message: Received) -> None:
            updated = self.client.update_message(
                message.message_id, message.receipt, visibility_timeout=seconds
            )
            message.receipt = updated.pop_receipt  # the old receipt is void from now on

        self.pool.map(one, messages)

    def send(self, bodies: Sequence[str]) -> int:
        results = self.pool.map(lambda b: _ok(lambda: self.client.send_message(b), "send"), bodies)
        return results.count(False)

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> None:
        failed = self.send([poison_envelope(message, reason) for message, reason in rejects])
        if failed:
            raise PoisonError(f"{failed} of {len(rejects)} poison messages were not accepted")


def poison_envelope(message: Received, reason: str) -> str:
    """The poison-queue message: queue messages carry no attributes, so the reason, the
    original id and dequeue count and the body travel in one JSON document. JSON and XML
    escaping can inflate a body past the 64 KiB message limit, so it is halved until it fits."""
    body = message.body
    while True:
        text = json.dumps(
            {
                "reason": reason,
                "message_id": message.message_id,
                "dequeue_count": message.deliveries,
                "body": body,
                "truncated": len(body) < len(message.body),
            },
            ensure_ascii=False,
        )
        if len(xml_escape(text).encode()) <= MAX_MESSAGE_BYTES or not body:
            return text
        body = body[: len(body) // 2]


def _entity(event: Event) -> dict[str, str]:
    row = event.row()
    row["RowKey"] = row.pop("id")
    row["PartitionKey"] = partition_key(event.id)
    return row


class CosmosTable:
    def __init__(self, client: TableClient, pool: _Pool) -> None:
        self.client = client
        self.pool = pool

    def write(self, events: Sequence[Event]) -> None:
        groups: dict[str, list[tuple[str, dict[str, str], dict[str, Any]]]] = defaultdict(list)
        for event in events:
            entity = _entity(event)
            groups[entity["PartitionKey"]].append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
        transactions = [
            ops[i : i + TRANSACTION_LIMIT]
            for ops in groups.values()
            for i in range(0, len(ops), TRANSACTION_LIMIT)
        ]
        # Any failed transaction raises here, so the batch is not deleted and is redelivered.
        self.pool.map(self.client.submit_transaction, transactions)


def _session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _Clients:
    """Builds every client on one HTTP session and, in the cloud, one shared credential."""

    def __init__(self, session: requests.Session, connection: str | None) -> None:
        self.session = session
        self.connection = connection
        self.credential: Any = None
        if not connection:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - cloud only

            self.credential = DefaultAzureCredential()

    def _transport(self) -> RequestsTransport:
        # One transport per client (each pipeline closes its own), all on the shared pool.
        return RequestsTransport(session=self.session, session_owner=False)

    def queue(self, name: str, account: str | None) -> QueueClient:
        if self.connection:
            return QueueClient.from_connection_string(
                self.connection, name, transport=self._transport()
            )
        return QueueClient(
            f"https://{account}.queue.core.windows.net",
            name,
            credential=self.credential,
            transport=self._transport(),
        )

    def table(self, name: str, endpoint: str | None) -> TableClient:
        if self.connection:
            return TableClient.from_connection_string(
                self.connection, name, transport=self._transport()
            )
        return TableClient(
            endpoint=endpoint or "",
            table_name=name,
            credential=self.credential,
            transport=self._transport(),
        )


def _quiet_sdk_logs() -> None:
    # The SDK logs every request and response at INFO; keep the consumer's log readable.
    logging.getLogger("azure").setLevel(logging.WARNING)


def build(settings: Settings) -> Backend:
    _quiet_sdk_logs()
    io_threads = max(16, settings.concurrency * 4)
    pool = _Pool(io_threads)
    session = _session(io_threads + settings.concurrency + 4)
    clients = _Clients(session, settings.azure_connection_string)
    queue = clients.queue(settings.queue, settings.storage_account)
    poison = clients.queue(settings.dead_letter_queue, settings.storage_account)
    table = clients.table(settings.table, settings.table_endpoint)

    def close() -> None:
        for client in (queue, poison, table):
            client.close()
        pool.executor.shutdown(wait=False)
        session.close()

    return Backend(
        queue=StorageQueue(queue, pool),
        dead_letters=StorageQueue(poison, pool),
        table=CosmosTable(table, pool),
        close=close,
    )


def open_queue(
    name: str, connection: str | None, account: str | None, pool_size: int
) -> StorageQueue:
    _quiet_sdk_logs()
    clients = _Clients(_session(pool_size + 4), connection)
    return StorageQueue(clients.queue(name, account), _Pool(pool_size))
