"""AWS backend: SQS work queue and dead-letter queue, DynamoDB event table (boto3).

Credentials and region come from botocore's default chain (IRSA in the cluster). For emulators set
``AWS_ENDPOINT_URL`` (botocore honours it for every service) plus any dummy credentials.

Every call is bounded: short connect and read timeouts and few SDK retries, so a network blip
surfaces quickly and the consumer retries in place within its batch's time budget (a long-poll
receive has a client of its own whose read timeout covers the wait).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.backend import (
    COPIES,
    MAX_REASON_CHARS,
    Backend,
    Received,
    RowRejected,
    batch_call_seconds,
    batches,
    copies_from,
    stored_row,
)
from app.events import Event
from app.settings import DEFAULT_WORKFLOW, SQS_MAX_VISIBILITY_SECONDS, Settings

log = logging.getLogger("edw.aws")
SQS_BATCH = 10
# Every message SQS holds: visible, in flight, delayed (GetQueueAttributes).
DEPTH = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
# SQS: a message, and a whole SendMessageBatch, may hold at most 1 MiB (body plus attributes).
SQS_BATCH_BYTES = 1_048_576
# SNS PublishBatch: the messages of one call total at most 256 KiB (SNS API reference).
SNS_BATCH_BYTES = 262_144
DYNAMO_BATCH = 25
# DynamoDB: an item may hold at most 400 KB, counting attribute names and values (UTF-8).
DYNAMO_ITEM_BYTES = 400 * 1024
WRITE_ATTEMPTS = 8
CALL_TIMEOUT_SECONDS = 5
# The table's TTL attribute (components/aws/results_table.py enables TTL on it).
TTL_ATTRIBUTE = "expiresAt"
REASON_ATTRIBUTE = "edw-dead-letter-reason"
# SQS counts every message attribute (name, type and value) toward a message's size (the
# MessageAttributeValue reference). A dead letter is its body plus the reason attribute, so the
# work queue keeps this much below the DLQ's 1 MiB (its MaximumMessageSize,
# components/aws/work_queue.py): any body the work queue took fits the DLQ with its reason.
DEAD_LETTER_RESERVE_BYTES = len(REASON_ATTRIBUTE) + len("String") + 4 * MAX_REASON_CHARS
# The one refusal an event's content can cause: its item over 400 KB. DynamoDB then refuses the
# whole BatchWriteItem ("An individual item in a batch exceeds 400 KB", BatchWriteItem API
# reference) with ValidationException and this message (the API reference gives no text; it is
# moto 5.2.5's ItemSizeTooLarge, moto/dynamodb/exceptions.py, as the service words it). Every
# other ValidationException (a key schema that does not match, a malformed request) is not the
# row's doing and would refuse every row alike: a table failure, never a dead letter. The
# key-size message is left out on purpose: the key is a 64-character digest (row_key).
ITEM_TOO_LARGE = "Item size has exceeded the maximum allowed size"


class WriteError(RuntimeError):
    """Some rows were not written; their messages stay on the queue to be retried."""


SQS_URL_REGION = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


def _client(
    service: str,
    pool_size: int,
    queue_url: str = "",
    read_timeout: float = 0,
    region: str = "",
    *,
    call_seconds: float | None = None,
) -> Any:
    config = Config(
        max_pool_connections=pool_size,
        # Standard mode backs off on throttling; few attempts, so an outage reaches the consumer's
        # own retry loop (bounded by the batch's time left) instead of blocking past it. With
        # ``call_seconds``, one attempt bounded by it: the caller's loop is the retry. Attempts
        # are counted by ``total_max_attempts``, the initial request included: ``max_attempts``
        # counts retries after it (botocore 1.44.5, botocore/config.py and args.py
        # _compute_retry_max_attempts), so its 1 was two attempts.
        retries={"mode": "standard", "total_max_attempts": 3 if call_seconds is None else 1},
        connect_timeout=call_seconds or CALL_TIMEOUT_SECONDS,
        read_timeout=call_seconds or read_timeout or CALL_TIMEOUT_SECONDS,
    )
    # botocore reads AWS_DEFAULT_REGION; EKS (IRSA, Pod Identity) and people also set AWS_REGION.
    # Failing both, a real queue URL names its region (a laptop running the producer).
    from_url = SQS_URL_REGION.match(queue_url)
    session = boto3.session.Session(region_name=region or os.environ.get("AWS_REGION") or None)
    if session.region_name is None and from_url:
        session = boto3.session.Session(region_name=from_url.group(1))
    return session.client(service, config=config)


def _failed_ids(what: str, response: dict[str, Any]) -> set[str]:
    """Log the failed entries of a batch call (codes only, no bodies); their entry ids."""
    failed = response.get("Failed", [])
    if failed:
        codes = sorted({entry.get("Code", "?") for entry in failed})
        log.warning("%s failed for some entries", what, extra={"fields": {"codes": codes}})
    return {entry["Id"] for entry in failed}


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _entry_bytes(entry: dict[str, Any]) -> int:
    """What SQS counts against the 1 MiB: the body and each attribute's name, type and value."""
    size = len(entry["MessageBody"].encode())
    for name, attribute in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(attribute["DataType"].encode())
        size += len(attribute.get("StringValue", "").encode())
    return size


class SqsQueue:
    max_batch = SQS_BATCH
    long_polls = True
    max_visibility_seconds = SQS_MAX_VISIBILITY_SECONDS

    def __init__(self, client: Any, url: str, receiver: Any = None) -> None:
        self.client = client
        self.receiver = receiver or client  # long polls need a longer read timeout
        self.url = url

    def receive(
        self, wait_seconds: int, visibility_seconds: int, max_messages: int
    ) -> list[Received]:
        response = self.receiver.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(max_messages, SQS_BATCH),
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_seconds,
            # The delivery number, so the consumer can dead-letter with a reason before the
            # redrive policy moves a message silently.
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=[COPIES],  # a fresh copy's counter
        )
        return [
            Received(
                m["MessageId"],
                m["Body"],
                m["ReceiptHandle"],
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                copies=_copies(m),
            )
            for m in response.get("Messages", [])
        ]

    def _per_message(
        self, what: str, call: Callable[..., Any], messages: Sequence[Received], **extra: Any
    ) -> list[Received]:
        """A batch call per 10 messages; the messages it failed for (a failed call: all)."""
        failed: list[Received] = []
        for chunk in _chunks(messages, SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt, **extra} for i, m in enumerate(chunk)
            ]
            try:
                response = call(QueueUrl=self.url, Entries=entries)
            except Exception as exc:
                log.warning("%s failed", what, extra={"fields": {"error": _short(exc)}})
                failed.extend(chunk)
                continue
            bad = _failed_ids(what, response)
            failed.extend(m for i, m in enumerate(chunk) if str(i) in bad)
        return failed

    def delete(self, messages: Sequence[Received]) -> list[Received]:
        return self._per_message("delete", self.client.delete_message_batch, messages)

    def depth(self) -> int:
        """Messages on the queue, visible, in flight or delayed (SQS's approximate counts)."""
        attributes = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=DEPTH)
        return sum(int(attributes["Attributes"].get(name, 0)) for name in DEPTH)

    def extend(self, messages: Sequence[Received], seconds: int) -> list[Received]:
        return self._per_message(
            "visibility change",
            self.client.change_message_visibility_batch,
            messages,
            VisibilityTimeout=seconds,
        )

    def _send_entries(self, entries: list[dict[str, Any]]) -> list[bool]:
        """Send in batches of 10 within 1 MiB; whether each entry was accepted, in order."""
        accepted: list[bool] = []
        for batch in batches(entries, SQS_BATCH, SQS_BATCH_BYTES, _entry_bytes):
            numbered = [{"Id": str(i), **entry} for i, entry in enumerate(batch)]
            try:
                response = self.client.send_message_batch(QueueUrl=self.url, Entries=numbered)
                bad = _failed_ids("send", response)
            except Exception as exc:
                log.warning("send failed", extra={"fields": {"error": _short(exc)}})
                bad = {entry["Id"] for entry in numbered}
            accepted.extend(entry["Id"] not in bad for entry in numbered)
        return accepted

    def send(self, bodies: Sequence[str]) -> int:
        return self._send_entries([{"MessageBody": body} for body in bodies]).count(False)

    def resend(self, messages: Sequence[Received]) -> list[Received]:
        entries = [
            {
                "MessageBody": m.content,
                "MessageAttributes": {
                    COPIES: {"DataType": "Number", "StringValue": str(m.copies + 1)}
                },
            }
            for m in messages
        ]
        accepted = self._send_entries(entries)
        return [m for m, ok in zip(messages, accepted, strict=True) if ok]

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> list[Received]:
        # The body is kept byte for byte; the reason travels as a message attribute.
        entries = [
            {
                "MessageBody": message.content,
                "MessageAttributes": {
                    REASON_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": reason[:MAX_REASON_CHARS],
                    }
                },
            }
            for message, reason in rejects
        ]
        accepted = self._send_entries(entries)
        return [message for (message, _), ok in zip(rejects, accepted, strict=True) if ok]


def _copies(message: dict[str, Any]) -> int:
    return copies_from(message.get("MessageAttributes", {}).get(COPIES, {}).get("StringValue", ""))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _row_too_large(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationException" and ITEM_TOO_LARGE in error.get("Message", "")


def item_bytes(item: dict[str, dict[str, str]]) -> int:
    """DynamoDB's item size: every attribute name plus its value, in UTF-8 (numbers are close
    enough counted as their digits)."""
    return sum(len(k.encode()) + len(next(iter(v.values())).encode()) for k, v in item.items())


class DynamoTable:
    def __init__(
        self, client: Any, name: str, ttl_days: int = 0, workflow: str = DEFAULT_WORKFLOW
    ) -> None:
        self.client = client
        self.name = name
        self.ttl_seconds = ttl_days * 86_400
        self.workflow = workflow

    def item(self, event: Event) -> dict[str, dict[str, str]]:
        key, row = stored_row(self.workflow, event)
        # The hash key keeps its name ("id", components/aws/results_table.py); it holds the
        # row_key, and the raw event id is the attribute "eventId".
        item = {"id": {"S": key}} | {name: {"S": value} for name, value in row.items()}
        if self.ttl_seconds:
            # DynamoDB's TTL deletes the row some time after this epoch second.
            item[TTL_ATTRIBUTE] = {"N": str(int(time.time()) + self.ttl_seconds)}
        return item

    def refusal(self, event: Event) -> str | None:
        size = item_bytes(self.item(event))
        if size > DYNAMO_ITEM_BYTES:
            return (
                f"row too large for DynamoDB: the item is {size} bytes, the limit is "
                f"{DYNAMO_ITEM_BYTES} (400 KB, attribute names and values)"
            )
        return None

    def write(self, events: Sequence[Event], until: float = math.inf) -> None:
        for chunk in _chunks(events, DYNAMO_BATCH):
            self._write_chunk([{"PutRequest": {"Item": self.item(e)}} for e in chunk], until)

    def _write_chunk(self, requests: list[dict[str, Any]], until: float) -> None:
        # BatchWriteItem may accept only part of a batch under throttling: retry the rest, but
        # start no call after ``until``: the batch's time to settle what is left must remain.
        pending = {self.name: requests}
        for attempt in range(WRITE_ATTEMPTS):
            if time.monotonic() >= until:
                left = len(pending[self.name])
                raise WriteError(f"{left} rows unprocessed at the batch's write deadline")
            try:
                response = self.client.batch_write_item(RequestItems=pending)
            except ClientError as exc:
                # DynamoDB refuses a whole BatchWriteItem when one item is too large: the
                # consumer splits the rows until that one is alone.
                if _row_too_large(exc):
                    rows = len(pending[self.name])
                    what = "the row" if rows == 1 else f"a write of {rows} rows"
                    raise RowRejected(f"DynamoDB refused {what}: {_short(exc)}") from exc
                raise
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(max(0.0, min(0.05 * 2**attempt, 2.0, until - time.monotonic())))
        left = len(pending.get(self.name, []))
        raise WriteError(f"{left} rows still unprocessed after {WRITE_ATTEMPTS} attempts")


def build(settings: Settings) -> Backend:
    pool_size = settings.concurrency * 2 + 4
    sqs = _client("sqs", pool_size, settings.queue)
    receiver = _client(
        "sqs", pool_size, settings.queue, read_timeout=settings.receive_wait_seconds + 10
    )
    # One attempt a call, bounded by the batch's time: a table that never answers must not hold
    # a batch past its processing timeout. Throttling is retried by the consumer's own loop, with
    # backoff and jitter, within the batch's write time.
    dynamodb = _client(
        "dynamodb",
        pool_size,
        settings.queue,
        call_seconds=batch_call_seconds(settings.processing_timeout_seconds),
    )

    def close() -> None:
        for client in (sqs, receiver, dynamodb):
            client.close()

    return Backend(
        queue=SqsQueue(sqs, settings.queue, receiver),
        dead_letters=SqsQueue(sqs, settings.dead_letter_queue),
        table=DynamoTable(
            dynamodb, settings.table, settings.result_ttl_days, workflow=settings.workflow
        ),
        close=close,
    )


class SnsRouter:
    """The stack's router topic, for publishing only (the producer): SNS PublishBatch, 10 events
    and 256 KiB a call. The topic fans each event out to the workflows whose filter it passes."""

    max_batch = SQS_BATCH

    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def send(self, bodies: Sequence[str]) -> int:
        failed = 0
        entries = [{"Message": body} for body in bodies]
        for batch in batches(
            entries, SQS_BATCH, SNS_BATCH_BYTES, lambda e: len(e["Message"].encode())
        ):
            numbered = [{"Id": str(i), **entry} for i, entry in enumerate(batch)]
            try:
                response = self.client.publish_batch(
                    TopicArn=self.topic_arn, PublishBatchRequestEntries=numbered
                )
                failed += len(_failed_ids("publish", response))
            except Exception as exc:
                log.warning("publish failed", extra={"fields": {"error": _short(exc)}})
                failed += len(numbered)
        return failed


def open_router(topic_arn: str, pool_size: int, call_seconds: float | None) -> SnsRouter:
    """The router of a stack, in the topic's own region (backend.open_router)."""
    region = topic_arn.split(":")[3] if topic_arn.count(":") >= 5 else ""
    client = _client("sns", pool_size, read_timeout=30, region=region, call_seconds=call_seconds)
    return SnsRouter(client, topic_arn)


def open_queue(url: str, pool_size: int) -> SqsQueue:
    """A queue on its own (producer, replay): a real queue URL's region wins over the
    configured one, so one process can reach queues in two regions (a region recovery)."""
    named = SQS_URL_REGION.match(url)
    region = named.group(1) if named else ""
    return SqsQueue(_client("sqs", pool_size, url, read_timeout=30, region=region), url)
