"""Azure backend: Storage Queue work queue and poison queue, Cosmos DB for Table (or Azurite).

In the cluster the clients authenticate with ``DefaultAzureCredential`` (workload identity). For
emulators set ``EDW_AZURE_CONNECTION_STRING`` (e.g. ``UseDevelopmentStorage=true`` or an explicit
Azurite string); it then serves both the queue and the table.

Table key design: PartitionKey and RowKey are both the row's key (``app.backend.row_key``), so
every row is a logical partition of its own: Cosmos DB caps a logical partition at 20 GB but
allows any number of them, so the table grows with the data instead of filling a fixed set of
partitions. A redelivered event maps to the same entity and overwrites it. Rows are upserted one
call each, in parallel (an entity-group transaction may only span one PartitionKey).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient
from requests.adapters import HTTPAdapter

from app.backend import (
    COPIES,
    MAX_REASON_CHARS,
    Backend,
    Received,
    RowRejected,
    TableFull,
    batch_call_seconds,
    batches,
    copies_from,
    stored_row,
)
from app.events import Event
from app.settings import DEFAULT_WORKFLOW, Settings

AZURE_BATCH = 32  # the most one Get Messages call returns
# A queue message holds at most 64 KiB of text, measured as the service does: the UTF-8 bytes of
# the decoded text (not of the XML-escaped request body).
MAX_MESSAGE_BYTES = 64 * 1024
# Azure Table: a string property holds at most 64 KiB of UTF-16 (32K code units), an entity 1 MiB
# (learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
# Cosmos DB for Table allows more; the stricter limits keep one row format for both services.
MAX_PROPERTY_UTF16_UNITS = 32 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
CALL_TIMEOUT_SECONDS = 5
# Event Grid custom topics: a publish request carries at most 1 MB of events.
EVENT_GRID_BATCH = 100
EVENT_GRID_BATCH_BYTES = 1_000_000
EVENT_GRID_SCOPE = "https://eventgrid.azure.net/.default"
CLOUD_EVENTS_BATCH = "application/cloudevents-batch+json; charset=utf-8"
# The refusals an event's content can cause: its entity, a property of it, or the one-entity
# request too large (Table service error codes page, learn.microsoft.com/rest/api/
# storageservices/table-service-error-codes: EntityTooLarge and PropertyValueTooLarge, 400;
# common REST error codes: RequestBodyTooLarge, 413; all three in azure-data-tables 12.7.0's
# TableErrorCode). Codes about names, types and property counts (PropertyNameTooLong,
# TooManyProperties, InvalidValueType, ...) cannot come from an event: the entity's property
# names and types are fixed by this code, so such a refusal would refuse every row alike. It and
# every other 400 are table failures, never a dead letter.
ROW_REFUSED_CODES = frozenset({"EntityTooLarge", "PropertyValueTooLarge", "RequestBodyTooLarge"})
# Cosmos DB refuses a write into a logical partition at its 20 GB cap with 403, substatus 1014,
# "Partition key reached maximum size of {...} GB" (learn.microsoft.com/azure/cosmos-db/nosql/
# troubleshoot-forbidden). That page is for the NoSQL API; the Table API's exact body could not
# be checked here, so either the substatus header or the message identifies it.
PARTITION_FULL_SUBSTATUS = "1014"
PARTITION_FULL_MESSAGE = "partition key reached maximum size"
# Put Message's messagettl: -1 keeps a message until it is deleted (API version 2017-07-29 and
# later; without it a message expires silently after 7 days). Every message this app sends carries
# it: dead letters, copies of messages the table could not take, the producer's events.
NEVER_EXPIRES = -1
COPY_LINE_PREFIX = f"{COPIES}:"
log = logging.getLogger("edw.azure")
T = TypeVar("T")
R = TypeVar("R")
# Every call: short timeouts and one SDK retry; the consumer retries in place within the batch's
# time budget, so an outage never runs a batch past its processing timeout inside the SDK.
CALL = {"connection_timeout": CALL_TIMEOUT_SECONDS, "read_timeout": CALL_TIMEOUT_SECONDS}
SDK_RETRIES = 1


class _Pool:
    """One thread pool per process for the calls Azure has no batch form of (delete, send)."""

    def __init__(self, size: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="azure-io")

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        items = list(items)
        if len(items) == 1:  # skip the hand-off for single calls
            return [fn(items[0])]
        return list(self.executor.map(fn, items))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _ok(call: Callable[[], object], what: str) -> bool:
    """Run one call; False (logged) when it raised, so each message's outcome is its own."""
    try:
        call()
    except Exception as exc:  # counted by the caller; an undeleted message comes back later
        log.warning("%s failed", what, extra={"fields": {"error": _short(exc)}})
        return False
    return True


def event_grid_text(content: str) -> str:
    """A queue message's text as the consumer parses it. Event Grid writes each event into a
    Storage queue Base64-encoded (the Azure SDK's own "consume from storage queue" sample decodes
    it with BinaryBase64DecodePolicy); producers sending to the queue write the JSON as is. JSON
    text starts with "{" (after blanks), which Base64 never contains, so the two cannot be
    confused; anything else stays as received and is set aside by the parser with its reason."""
    if content.lstrip().startswith("{"):
        return content
    try:
        decoded = base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return content
    return decoded if decoded.lstrip().startswith("{") else content


def message_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class StorageQueue:
    max_batch = AZURE_BATCH
    long_polls = False  # Azure queues have no long polling: the consumer backs off when idle
    max_visibility_seconds = 7 * 24 * 3600

    def __init__(self, client: QueueClient, pool: _Pool) -> None:
        self.client = client
        self.pool = pool

    def receive(
        self, wait_seconds: int, visibility_seconds: int, max_messages: int
    ) -> list[Received]:
        count = min(max_messages, AZURE_BATCH)
        pages = self.client.receive_messages(
            messages_per_page=count,
            max_messages=count,
            visibility_timeout=visibility_seconds,
            **CALL,
        ).by_page()
        return [_received(m.id, m.content, m.pop_receipt, m.dequeue_count) for m in next(pages, [])]

    def _delete(self, message: Received) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # already gone: nothing left to settle
            self.client.delete_message(message.message_id, message.receipt, **CALL)

    def delete(self, messages: Sequence[Received]) -> list[Received]:
        results = self.pool.map(lambda m: _ok(lambda: self._delete(m), "delete"), messages)
        return [m for m, ok in zip(messages, results, strict=True) if not ok]

    def depth(self) -> int:
        """Messages on the queue, visible or not (the approximate count KEDA also reads)."""
        return int(self.client.get_queue_properties(**CALL).approximate_message_count or 0)

    def extend(self, messages: Sequence[Received], seconds: int) -> list[Received]:
        def one(message: Received) -> None:
            updated = self.client.update_message(
                message.message_id, message.receipt, visibility_timeout=seconds, **CALL
            )
            message.receipt = updated.pop_receipt  # the old receipt is void from now on

        # Each message on its own: one failed update neither cancels nor hides the others.
        results = self.pool.map(lambda m: _ok(lambda: one(m), "visibility change"), messages)
        return [m for m, ok in zip(messages, results, strict=True) if not ok]

    def _put(self, content: str) -> Any:
        return self.client.send_message(content, time_to_live=NEVER_EXPIRES, **CALL)

    def send(self, bodies: Sequence[str]) -> int:
        results = self.pool.map(lambda b: _ok(lambda: self._put(b), "send"), bodies)
        return results.count(False)

    def resend(self, messages: Sequence[Received]) -> list[Received]:
        results = self.pool.map(lambda m: _ok(lambda: self._put(copy_text(m)), "resend"), messages)
        return [m for m, ok in zip(messages, results, strict=True) if ok]

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> list[Received]:
        results = self.pool.map(lambda r: self._dead_letter(*r), rejects)
        return [message for (message, _), ok in zip(rejects, results, strict=True) if ok]

    def _dead_letter(self, message: Received, reason: str) -> bool:
        """The envelope with the whole content; when that cannot fit a queue message, the
        original content as a message of its own (it fit the work queue, so it fits here) and an
        envelope that points at it. Never an envelope that lost the body."""
        envelope = poison_envelope(message, reason)
        if envelope is not None:
            return _ok(lambda: self._put(envelope), "dead letter")
        try:
            original = self._put(message.content)
        except Exception as exc:
            log.warning("dead letter failed", extra={"fields": {"error": _short(exc)}})
            return False
        pointer = poison_envelope(message, reason, body_message_id=original.id)
        if _ok(lambda: self._put(pointer), "dead letter"):
            return True
        # Without its envelope the body would sit there unexplained; the message stays on the
        # work queue and is dead-lettered again.
        _ok(lambda: self.client.delete_message(original.id, original.pop_receipt), "cleanup")
        return False


def copy_text(message: Received) -> str:
    """A fresh copy's content: the copy line, then the content as first queued."""
    return f"{COPY_LINE_PREFIX}{message.copies + 1}\n{message.content}"


def _received(message_id: str, content: str, receipt: str, dequeue_count: int) -> Received:
    copies = 0
    if content.startswith(COPY_LINE_PREFIX):  # never an event: see app.backend.COPIES
        line, newline, rest = content.partition("\n")
        value = line.removeprefix(COPY_LINE_PREFIX)
        if newline and value.isascii() and value.isdigit():  # else: kept whole, set aside
            copies, content = copies_from(value), rest
    text = event_grid_text(content)
    raw = None if text == content else content
    return Received(message_id, text, receipt, dequeue_count, raw, copies)


def poison_envelope(
    message: Received, reason: str, body_message_id: str | None = None
) -> str | None:
    """The poison-queue message: queue messages carry no attributes, so the reason, the
    original id and dequeue count and the body travel in one JSON document. The body is the
    queue's content as received (Event Grid's Base64 stays Base64): a decoded text may hold
    characters XML 1.0 forbids, which a queue message cannot carry. None when the body does not
    fit in one; with ``body_message_id`` the envelope names the poison message that holds the
    body instead of carrying it."""
    doc: dict[str, Any] = {
        "reason": reason[:MAX_REASON_CHARS],
        "message_id": message.message_id,
        "dequeue_count": message.deliveries,
    }
    if body_message_id is None:
        doc["body"] = message.content
    else:
        doc["body_message_id"] = body_message_id
    text = json.dumps(doc, ensure_ascii=False)
    return text if message_bytes(text) <= MAX_MESSAGE_BYTES else None


def _entity(event: Event, workflow: str) -> dict[str, str]:
    key, row = stored_row(workflow, event)
    return {"PartitionKey": key, "RowKey": key, **row}


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def entity_bytes(entity: dict[str, str]) -> int:
    """Azure Table's size of an all-string entity: 4 bytes, plus PartitionKey and RowKey in
    UTF-16, plus per property 8 bytes, its name in UTF-16 and its value in UTF-16 with a 4-byte
    length (the formula of "How the size of an entity is calculated in Windows Azure table
    storage", learn.microsoft.com/archive/blogs/avkashchauhan)."""
    size = 4
    for name, value in entity.items():
        units = _utf16_units(value)
        if name in ("PartitionKey", "RowKey"):
            size += 2 * units
        else:
            size += 8 + 2 * _utf16_units(name) + 4 + 2 * units
    return size


def _refused(exc: BaseException) -> bool:
    """An upsert refused for what its entity holds: azure-data-tables raises HttpResponseError
    with the service's code in ``error_code`` (a TableErrorCode, or the text when unknown)."""
    code = getattr(exc, "error_code", None)
    return getattr(code, "value", code) in ROW_REFUSED_CODES


def _partition_full(exc: BaseException) -> bool:
    if getattr(exc, "status_code", None) != 403:
        return False
    response = getattr(exc, "response", None)
    substatus = response.headers.get("x-ms-substatus") if response is not None else None
    return substatus == PARTITION_FULL_SUBSTATUS or PARTITION_FULL_MESSAGE in str(exc).lower()


class CosmosTable:
    def __init__(
        self,
        client: TableClient,
        pool: _Pool,
        workflow: str = DEFAULT_WORKFLOW,
        call_seconds: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        self.client = client
        self.pool = pool
        self.workflow = workflow
        self.call = {"connection_timeout": call_seconds, "read_timeout": call_seconds}

    def refusal(self, event: Event) -> str | None:
        entity = _entity(event, self.workflow)
        for name, value in entity.items():
            units = _utf16_units(value)
            if units > MAX_PROPERTY_UTF16_UNITS:
                return (
                    f"row too large for Azure Table: property {name!r} is {units} UTF-16 code "
                    f"units, the limit is {MAX_PROPERTY_UTF16_UNITS} (64 KiB)"
                )
        size = entity_bytes(entity)
        if size > MAX_ENTITY_BYTES:
            return (
                f"row too large for Azure Table: the entity is {size} bytes, the limit is "
                f"{MAX_ENTITY_BYTES} (1 MiB)"
            )
        return None

    def _upsert(self, entity: dict[str, str], until: float) -> None:
        # An upsert queued behind others in the shared pool starts no later than ``until``: the
        # batch's time to settle what is left must remain.
        if time.monotonic() >= until:
            raise TimeoutError("the batch's write deadline passed before the upsert could start")
        self.client.upsert_entity(entity, mode=UpdateMode.REPLACE, **self.call)

    def write(self, events: Sequence[Event], until: float = math.inf) -> None:
        entities = [_entity(event, self.workflow) for event in events]
        try:
            # Any failed upsert raises here, so the batch is not deleted.
            self.pool.map(lambda entity: self._upsert(entity, until), entities)
        except Exception as exc:
            if _partition_full(exc):
                raise TableFull(f"Cosmos DB has no room for the row: {_short(exc)}") from exc
            if _refused(exc):  # the consumer splits the rows until the refused one is alone
                what = "the row" if len(events) == 1 else f"a write of {len(events)} rows"
                raise RowRejected(f"Azure Table refused {what}: {_short(exc)}") from exc
            raise


def http_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Clients:
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

    def _options(self, retries: int = SDK_RETRIES) -> dict[str, Any]:
        return {"transport": self._transport(), "retry_total": retries}

    def queue(self, name: str, account: str | None) -> QueueClient:
        if self.connection:
            return QueueClient.from_connection_string(self.connection, name, **self._options())
        return QueueClient(
            f"https://{account}.queue.core.windows.net",
            name,
            credential=self.credential,
            **self._options(),
        )

    def table(self, name: str, endpoint: str | None) -> TableClient:
        """The consumer's table: one attempt a call (azure-core's retry_total counts retries
        after the first attempt); the consumer's loop retries with backoff and jitter within the
        batch's write time, so throttling is still retried, and a table that never answers
        cannot hold a batch past its processing timeout."""
        if self.connection:
            return TableClient.from_connection_string(self.connection, name, **self._options(0))
        return TableClient(
            endpoint=endpoint or "",
            table_name=name,
            credential=self.credential,
            **self._options(0),
        )


def _quiet_sdk_logs() -> None:
    # The SDK logs every request and response at INFO; keep the consumer's log readable.
    logging.getLogger("azure").setLevel(logging.WARNING)


def build(settings: Settings) -> Backend:
    _quiet_sdk_logs()
    io_threads = max(16, settings.concurrency * 4)
    pool = _Pool(io_threads)
    session = http_session(io_threads + settings.concurrency + 4)
    clients = Clients(session, settings.azure_connection_string)
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
        table=CosmosTable(
            table,
            pool,
            settings.workflow,
            batch_call_seconds(settings.processing_timeout_seconds),
        ),
        close=close,
    )


class EventGridRouter:
    """The stack's Event Grid topic, for publishing only (the producer): CloudEvents batches of
    at most 1 MB a request (the Event Grid limit for custom topics), authenticated with Entra
    (the topic has local keys off). A batch is accepted or refused whole."""

    max_batch = EVENT_GRID_BATCH

    def __init__(
        self,
        session: requests.Session,
        endpoint: str,
        credential: Any,
        call_seconds: float | None = None,
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.credential = credential
        # (connect, read): the producer's, or both bounded by the consumer's call_seconds.
        self.timeout = (
            (CALL_TIMEOUT_SECONDS, 30) if call_seconds is None else (call_seconds, call_seconds)
        )

    def send(self, bodies: Sequence[str]) -> int:
        failed = 0
        for batch in batches(bodies, EVENT_GRID_BATCH, EVENT_GRID_BATCH_BYTES, message_bytes):
            token = self.credential.get_token(EVENT_GRID_SCOPE).token
            try:
                response = self.session.post(
                    self.endpoint,
                    data=("[" + ",".join(batch) + "]").encode(),
                    headers={
                        "Content-Type": CLOUD_EVENTS_BATCH,
                        "Authorization": f"Bearer {token}",
                    },
                    timeout=self.timeout,
                )
                refused = response.status_code != 200
                reason = f"HTTP {response.status_code}: {response.text[:200]}"
            except requests.RequestException as exc:
                refused, reason = True, _short(exc)
            if refused:
                log.warning("publish failed", extra={"fields": {"error": reason}})
                failed += len(batch)
        return failed


def open_router(endpoint: str, pool_size: int, call_seconds: float | None) -> EventGridRouter:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - cloud only

    credential = DefaultAzureCredential()
    return EventGridRouter(http_session(pool_size), endpoint, credential, call_seconds)


def open_queue(
    name: str, connection: str | None, account: str | None, pool_size: int
) -> StorageQueue:
    _quiet_sdk_logs()
    clients = Clients(http_session(pool_size + 4), connection)
    return StorageQueue(clients.queue(name, account), _Pool(pool_size))
