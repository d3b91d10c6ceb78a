"""In-memory queue and table with scripted failures, for consumer behaviour no emulator can show
(a call that fails for one message only, a write refused mid-batch, a call that never returns).

The table is served to the real backends (``app.aws.DynamoTable``, ``app.azure.CosmosTable``)
through their real SDK clients over fake HTTP, so the consumer meets exactly what botocore and
azure-data-tables raise for the same input:

- DynamoDB (botocore ``before-send`` hook, JSON 1.0 protocol): an invalid item refuses the whole
  ``BatchWriteItem`` with HTTP 400 ``ValidationException`` (the BatchWriteItem API reference:
  "DynamoDB rejects the entire batch write operation" when an item exceeds 400 KB); throttling is
  HTTP 400 ``ProvisionedThroughputExceededException``; a table that refuses every row alike (its
  key schema is not the one the rows carry) is HTTP 400 ``ValidationException`` with moto's
  "Missing the key" message; an outage is the ``EndpointConnectionError`` botocore raises for a
  refused connection.
- Azure Table (a ``requests`` adapter under azure-core's ``RequestsTransport``): each upsert is
  answered 204, or 400 ``PropertyValueTooLarge`` for a refused entity, which azure-data-tables
  raises as ``HttpResponseError`` with that status; throttling is HTTP 429 (Cosmos DB's); a
  table that refuses every row alike answers 400 ``InvalidInput`` (common REST API error codes);
  a full Cosmos DB partition answers 403 with substatus 1014 (app/azure.py cites it);
  an outage is ``requests.ConnectionError``, which azure-core raises as ``ServiceRequestError``.
  The formats are Azurite 3.37.0's, recorded.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
import urllib3
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from requests.adapters import HTTPAdapter

from app import aws, azure
from app.backend import Backend, EventTable, Received
from app.events import make
from app.observability import Metrics
from app.settings import Settings

Fail = Callable[[Received], bool]
CLOUDS = ("aws", "azure")
TABLE = "events"
TOO_LARGE = {
    "aws": "Item size has exceeded the maximum allowed size",
    "azure": "The property value exceeds the maximum allowed size (64KB). If the property value "
    "is a string, it is UTF-16 encoded and the maximum number of characters should be 32K or less.",
}

# A 400 that is not about the rows: every write is refused alike.
INVALID = {
    "aws": "One or more parameter values were invalid: Missing the key id in the item",
    "azure": "One of the request inputs is not valid.",
}


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
    copies: list[str] = field(default_factory=list)
    receives: int = 0
    fail_delete: Fail = lambda _: False
    fail_extend: Fail = lambda _: False
    fail_send: Fail = lambda _: False
    block_receive: threading.Event | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def put(self, *bodies: str, deliveries: int = 1, copies: int = 0) -> list[Received]:
        with self.lock:
            numbers = [next(self.numbers) for _ in bodies]
            messages = [
                Received(f"m{n}", body, f"r{n}", deliveries, copies=copies)
                for n, body in zip(numbers, bodies, strict=True)
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

    def resend(self, messages: Sequence[Received]) -> list[Received]:
        """A copy is a new message at the back of the queue, delivered for the first time, with
        its copy counter one higher."""
        accepted = [m for m in messages if not self.fail_send(m)]
        self.copies.extend(m.content for m in accepted)
        for m in accepted:
            self.put(m.content, copies=m.copies + 1)
        return accepted


@dataclass
class TableService:
    """What the fake table holds and how it misbehaves: ``refused`` event ids make any write
    holding them refused whole; while ``outage`` returns True the table is unreachable, while
    ``throttled`` returns True it throttles, while ``invalid`` returns True it refuses every
    write with a 400 that is not about the rows, while ``full`` returns True (Azure only) it has
    no room; ``delay`` makes every write that slow."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> stored row
    refused: set[str] = field(default_factory=set)
    outage: Callable[[], bool] = lambda: False
    throttled: Callable[[], bool] = lambda: False
    invalid: Callable[[], bool] = lambda: False
    full: Callable[[], bool] = lambda: False
    delay: float = 0.0
    writes: list[list[str]] = field(default_factory=list)  # event ids of each write request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, ids: list[str]) -> str | None:
        """Record a write request; what goes wrong ("outage", "throttled", "invalid",
        "refused:<index>")."""
        with self.lock:
            self.writes.append(ids)
        if self.delay:
            threading.Event().wait(self.delay)
        if self.outage():
            return "outage"
        if self.throttled():
            return "throttled"
        if self.invalid():
            return "invalid"
        if self.full():
            return "full"
        bad = [i for i, event_id in enumerate(ids) if event_id in self.refused]
        return f"refused:{bad[0]}" if bad else None

    def store(self, rows: dict[str, dict[str, Any]]) -> None:
        with self.lock:
            self.rows.update(rows)


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Iterator[bytes]:
        yield self.data


def _dynamo_reply(status: int, doc: dict[str, Any]) -> AWSResponse:
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fake"}
    return AWSResponse("", status, headers, _Raw(json.dumps(doc).encode()))


def dynamo_table(service: TableService) -> aws.DynamoTable:
    """The real DynamoTable on a real botocore client whose HTTP is ``service``."""
    client = boto3.session.Session(region_name="us-east-1").client(
        "dynamodb",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        # One attempt: the SDK's own retries are not under test, the consumer's are.
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )

    def batch_write_item(request: Any, **_: Any) -> AWSResponse:
        items = [r["PutRequest"]["Item"] for r in json.loads(request.body)["RequestItems"][TABLE]]
        ids = [item["eventId"]["S"] for item in items]
        problem = service.attempt(ids)
        if problem == "outage":
            raise EndpointConnectionError(endpoint_url=request.url)
        if problem == "throttled":
            return _dynamo_reply(
                400,
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#"
                    "ProvisionedThroughputExceededException",
                    "message": "The level of configured provisioned throughput for the table "
                    "was exceeded. Consider increasing your provisioning level with the "
                    "UpdateTable API.",
                },
            )
        if problem:
            return _dynamo_reply(
                400,
                {
                    "__type": "com.amazon.coral.validate#ValidationException",
                    "message": INVALID["aws"] if problem == "invalid" else TOO_LARGE["aws"],
                },
            )
        rows = [{k: v["S"] for k, v in item.items() if "S" in v} for item in items]
        service.store(dict(zip(ids, rows, strict=True)))
        return _dynamo_reply(200, {"UnprocessedItems": {}})

    client.meta.events.register("before-send.dynamodb.BatchWriteItem", batch_write_item)
    return aws.DynamoTable(client, TABLE)


class _TableAdapter(HTTPAdapter):
    """Answers Azure Table upserts (``PUT .../table(PartitionKey=...,RowKey=...)``) from
    ``service``, as Azurite 3.37.0 does (recorded): 204 with an ETag, or the error as JSON."""

    def __init__(self, service: TableService) -> None:
        super().__init__()
        self.service = service

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        entity = json.loads(request.body or b"{}")
        problem = self.service.attempt([entity["eventId"]])
        if problem == "outage":
            raise requests.ConnectionError("[Errno 111] Connection refused")
        if problem == "throttled":
            return self._error(request, 429, "TooManyRequests", "Request rate is large.")
        if problem == "invalid":
            return self._error(request, 400, "InvalidInput", INVALID["azure"])
        if problem == "full":
            message = "Partition key reached maximum size of 20 GB"
            return self._error(request, 403, "Forbidden", message, {"x-ms-substatus": "1014"})
        if problem:
            return self._error(request, 400, "PropertyValueTooLarge", TOO_LARGE["azure"])
        self.service.store({entity["eventId"]: entity})
        return self._reply(request, 204, {"ETag": "W/\"datetime'2026-01-01T00%3A00%3A00Z'\""})

    def _error(
        self,
        request: requests.PreparedRequest,
        status: int,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> requests.Response:
        error = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}
        headers = {
            "Content-Type": "application/json;odata=minimalmetadata;streaming=true;charset=utf-8",
            "x-ms-error-code": code,
            **(extra or {}),
        }
        return self._reply(request, status, headers, json.dumps(error).encode())

    def _reply(
        self,
        request: requests.PreparedRequest,
        status: int,
        headers: dict[str, str],
        data: bytes = b"",
    ) -> requests.Response:
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(data),
            headers={**headers, "Content-Length": str(len(data))},
            status=status,
            preload_content=False,
        )
        return self.build_response(request, raw)


def cosmos_table(service: TableService) -> azure.CosmosTable:
    """The real CosmosTable on a real TableClient whose HTTP is ``service``."""
    session = requests.Session()
    session.mount("http://", _TableAdapter(service))
    client = TableClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=fake;AccountKey=ZmFrZQ==;"
        "TableEndpoint=http://fake.table.local/fake;",
        TABLE,
        transport=RequestsTransport(session=session, session_owner=False),
        retry_total=0,  # the SDK's own retries are not under test, the consumer's are
    )
    return azure.CosmosTable(client, azure._Pool(4))


def table_for(cloud: str, service: TableService) -> EventTable:
    return dynamo_table(service) if cloud == "aws" else cosmos_table(service)


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


def backend(queue: FakeQueue, dead_letters: FakeQueue, table: EventTable) -> Backend:
    return Backend(queue=queue, dead_letters=dead_letters, table=table, close=lambda: None)


def metrics() -> Metrics:
    return Metrics("aws")


def count(m: Metrics, name: str) -> float:
    value = m.registry.get_sample_value(name, {"cloud": "aws", "workflow": "work"})
    return value or 0.0
