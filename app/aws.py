"""AWS backend: SQS work queue and dead-letter queue, DynamoDB event table (boto3).

Credentials and region come from botocore's default chain (IRSA in the cluster). For emulators set
``AWS_ENDPOINT_URL`` (botocore honours it for every service) plus any dummy credentials.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config

from app.backend import Backend, Received
from app.events import Event
from app.settings import Settings

log = logging.getLogger("edw.aws")
SQS_BATCH = 10
DYNAMO_BATCH = 25
WRITE_ATTEMPTS = 8
# The table's TTL attribute (components/aws/results_table.py enables TTL on it).
TTL_ATTRIBUTE = "expiresAt"
REASON_ATTRIBUTE = "edw-dead-letter-reason"
MAX_ATTRIBUTE_CHARS = 1024


class WriteError(RuntimeError):
    """Some rows were not written; their messages stay on the queue to be retried."""


SQS_URL_REGION = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


def _client(service: str, pool_size: int, queue_url: str = "") -> Any:
    # Standard retry mode backs off on throttling; the pool must cover every worker thread.
    config = Config(max_pool_connections=pool_size, retries={"mode": "standard", "max_attempts": 5})
    # botocore reads AWS_DEFAULT_REGION; EKS (IRSA, Pod Identity) and people also set AWS_REGION.
    # Failing both, a real queue URL names its region (a laptop running the producer).
    from_url = SQS_URL_REGION.match(queue_url)
    region = os.environ.get("AWS_REGION") or None
    session = boto3.session.Session(region_name=region)
    if session.region_name is None and from_url:
        session = boto3.session.Session(region_name=from_url.group(1))
    return session.client(service, config=config)


def _count_failed(what: str, response: dict[str, Any]) -> int:
    """Log the failed entries of a batch call (codes only, no bodies) and count them."""
    failed = response.get("Failed", [])
    if failed:
        codes = sorted({entry.get("Code", "?") for entry in failed})
        log.warning("%s failed for some entries", what, extra={"fields": {"codes": codes}})
    return len(failed)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SqsQueue:
    max_batch = SQS_BATCH
    long_polls = True

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def receive(self, wait_seconds: int, visibility_seconds: int) -> list[Received]:
        response = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=SQS_BATCH,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_seconds,
        )
        return [
            Received(m["MessageId"], m["Body"], m["ReceiptHandle"], None)
            for m in response.get("Messages", [])
        ]

    def delete(self, messages: Sequence[Received]) -> int:
        failed = 0
        for chunk in _chunks(messages, SQS_BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            response = self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            failed += _count_failed("delete", response)
        return failed

    def extend(self, messages: Sequence[Received], seconds: int) -> None:
        for chunk in _chunks(messages, SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": seconds}
                for i, m in enumerate(chunk)
            ]
            response = self.client.change_message_visibility_batch(
                QueueUrl=self.url, Entries=entries
            )
            _count_failed("visibility change", response)

    def _send_entries(self, entries: list[dict[str, Any]]) -> int:
        failed = 0
        for chunk in _chunks(entries, SQS_BATCH):
            batch = [{"Id": str(i), **entry} for i, entry in enumerate(chunk)]
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=batch)
            failed += _count_failed("send", response)
        return failed

    def send(self, bodies: Sequence[str]) -> int:
        return self._send_entries([{"MessageBody": body} for body in bodies])

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> None:
        # The body is kept byte for byte; the reason travels as a message attribute.
        entries = [
            {
                "MessageBody": message.body,
                "MessageAttributes": {
                    REASON_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": reason[:MAX_ATTRIBUTE_CHARS],
                    }
                },
            }
            for message, reason in rejects
        ]
        failed = self._send_entries(entries)
        if failed:
            raise WriteError(f"{failed} of {len(rejects)} dead letters were not accepted")


class DynamoTable:
    def __init__(self, client: Any, name: str, ttl_days: int = 0) -> None:
        self.client = client
        self.name = name
        self.ttl_seconds = ttl_days * 86_400

    def item(self, event: Event) -> dict[str, dict[str, str]]:
        item = {name: {"S": value} for name, value in event.row().items()}
        if self.ttl_seconds:
            # DynamoDB's TTL deletes the row some time after this epoch second.
            item[TTL_ATTRIBUTE] = {"N": str(int(time.time()) + self.ttl_seconds)}
        return item

    def write(self, events: Sequence[Event]) -> None:
        for chunk in _chunks(events, DYNAMO_BATCH):
            self._write_chunk([{"PutRequest": {"Item": self.item(e)}} for e in chunk])

    def _write_chunk(self, requests: list[dict[str, Any]]) -> None:
        # BatchWriteItem may accept only part of a batch under throttling: retry the rest.
        pending = {self.name: requests}
        for attempt in range(WRITE_ATTEMPTS):
            response = self.client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(0.05 * 2**attempt, 2.0))
        left = len(pending.get(self.name, []))
        raise WriteError(f"{left} rows still unprocessed after {WRITE_ATTEMPTS} attempts")


def build(settings: Settings) -> Backend:
    pool_size = settings.concurrency * 2 + 4
    sqs = _client("sqs", pool_size, settings.queue)
    dynamodb = _client("dynamodb", pool_size, settings.queue)

    def close() -> None:
        sqs.close()
        dynamodb.close()

    return Backend(
        queue=SqsQueue(sqs, settings.queue),
        dead_letters=SqsQueue(sqs, settings.dead_letter_queue),
        table=DynamoTable(dynamodb, settings.table, settings.result_ttl_days),
        close=close,
    )


def open_queue(url: str, pool_size: int) -> SqsQueue:
    return SqsQueue(_client("sqs", pool_size, url), url)
