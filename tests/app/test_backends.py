"""Client wiring for the cloud (no emulator): endpoints, credentials and the table key design."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient
from azure.identity import DefaultAzureCredential
from botocore.stub import Stubber

from app import aws, azure
from app.backend import Received, RowRejected, TableFull, build, row_key
from app.events import parse
from app.settings import load
from bench.emulators import azurite_connection_string
from tests.app.conftest import SilentServer
from tests.app.test_settings import AWS, AZURE


def test_azure_uses_workload_identity_and_the_configured_endpoints() -> None:
    backend = build(load(AZURE))
    queue, poison, table = backend.queue.client, backend.dead_letters.client, backend.table.client
    try:
        assert queue.url == "https://edwstore01.queue.core.windows.net/edw-work"
        assert poison.url == "https://edwstore01.queue.core.windows.net/edw-work-poison"
        assert table.url.startswith("https://edwcosmos.table.cosmos.azure.com")
        assert table.table_name == "edwevents"
        # One credential object for all three clients: one token cache per process.
        assert isinstance(queue.credential, DefaultAzureCredential)
        assert queue.credential is poison.credential is table.credential
    finally:
        backend.close()


def test_aws_uses_the_default_chain_and_honours_endpoint_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    backend = build(load(AWS))
    assert backend.queue.client.meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    assert backend.table.client.meta.region_name == "eu-west-1"
    assert backend.queue.client.meta.config.max_pool_connections >= 4 * 2
    backend.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    backend = build(load(AWS))
    assert backend.table.client.meta.endpoint_url == "http://127.0.0.1:4566"
    backend.close()


def test_row_key_is_a_digest_of_workflow_source_and_id() -> None:
    """The key scheme is the table schema: pinned here so that it cannot change unnoticed."""
    digest = hashlib.sha256(b"4:work,5:urn:s,3:e-1,").hexdigest()
    assert row_key("work", "urn:s", "e-1") == digest
    assert re.fullmatch("[0-9a-f]{64}", row_key("orders", "/x", "a/b\\c#d?" + "é" * 300))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("work", "urn:a", "1"), ("work", "urn:b", "1")),  # same id, another source
        (("work", "s", "orders:123"), ("orders", "s", "123")),  # the old prefix collision
        (("work", "ab", "c"), ("work", "a", "bc")),  # where one part ends and the next begins
        (("work", "s1:", "x"), ("work", "s", "1:x")),  # a netstring's own syntax in a part
    ],
)
def test_distinct_triples_have_distinct_keys(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    assert row_key(*a) != row_key(*b)


def test_azure_entity_is_its_own_partition_keyed_by_the_triple() -> None:
    event = parse('{"specversion":"1.0","id":"o-1","source":"s","type":"t","data":{"a":1}}')
    key = row_key("orders", "s", "o-1")
    assert azure._entity(event, "orders") == {
        "PartitionKey": key,
        "RowKey": key,
        "eventId": "o-1",
        "source": "s",
        "type": "t",
        "data": '{"a":1}',
        "workflow": "orders",
    }


def test_dynamodb_item_is_keyed_by_the_triple_and_keeps_the_raw_values() -> None:
    item = aws.DynamoTable(None, "events", workflow="orders").item(EVENTS[0])
    assert item["id"] == {"S": row_key("orders", "s", "e0")}
    assert (item["eventId"], item["source"], item["workflow"]) == (
        {"S": "e0"},
        {"S": "s"},
        {"S": "orders"},
    )
    assert aws.DynamoTable(None, "events").item(EVENTS[0])["workflow"] == {"S": "work"}


def test_azure_entity_size_counts_utf16_as_the_service_does() -> None:
    """4 bytes, keys as UTF-16, per property 8 bytes + name and value as UTF-16 + 4: an ASCII
    character is 2 bytes there, a CJK one 2 (not the 1 and 3 of UTF-8)."""
    entity = {"PartitionKey": "k", "RowKey": "k", "data": "a東"}
    assert azure.entity_bytes(entity) == 4 + 2 + 2 + (8 + 8 + 4 + 4)


def _dynamo_with_canned_responses(responses: list[dict[str, object]]) -> tuple[object, Stubber]:
    # Stubber validates each request against DynamoDB's model; moto never throttles, so this is
    # how the unprocessed-items path is exercised.
    client = boto3.session.Session(region_name="us-east-1").client(
        "dynamodb", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    for response in responses:
        stubber.add_response("batch_write_item", response)
    stubber.activate()
    return client, stubber


EVENTS = [parse(f'{{"specversion":"1.0","id":"e{i}","source":"s","type":"t"}}') for i in range(3)]


def test_dynamodb_unprocessed_items_are_retried_until_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aws.time, "sleep", lambda _: None)
    leftover = {"events": [{"PutRequest": {"Item": {"id": {"S": "e2"}}}}]}
    client, stubber = _dynamo_with_canned_responses(
        [{"UnprocessedItems": leftover}, {"UnprocessedItems": leftover}, {"UnprocessedItems": {}}]
    )
    aws.DynamoTable(client, "events").write(EVENTS)
    stubber.assert_no_pending_responses()  # three calls: the batch, then the leftover twice


def test_dynamodb_write_fails_loudly_when_items_stay_unprocessed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aws.time, "sleep", lambda _: None)
    leftover = {"events": [{"PutRequest": {"Item": {"id": {"S": "e2"}}}}]}
    client, _ = _dynamo_with_canned_responses([{"UnprocessedItems": leftover}] * aws.WRITE_ATTEMPTS)
    with pytest.raises(aws.WriteError, match="1 rows still unprocessed after 8 attempts"):
        aws.DynamoTable(client, "events").write(EVENTS)


def test_dynamodb_retries_unprocessed_items_only_until_the_write_deadline() -> None:
    """The retry of unprocessed items starts no call past ``until``: the batch's time to settle
    what is left (fresh copies, deletes) must remain."""
    leftover = {"events": [{"PutRequest": {"Item": {"id": {"S": "e2"}}}}]}
    client, stubber = _dynamo_with_canned_responses(
        [{"UnprocessedItems": leftover}, {"UnprocessedItems": {}}]
    )
    with pytest.raises(aws.WriteError, match="1 rows unprocessed at the batch's write deadline"):
        aws.DynamoTable(client, "events").write(EVENTS, until=time.monotonic() + 0.02)
    with pytest.raises(AssertionError):  # the second answer was never asked for
        stubber.assert_no_pending_responses()


def test_an_azure_upsert_queued_past_the_write_deadline_never_starts() -> None:
    table = azure.CosmosTable(
        TableClient.from_connection_string(azurite_connection_string(1, 1), "t"), azure._Pool(2)
    )
    with pytest.raises(TimeoutError, match="write deadline passed"):
        table.write(EVENTS, until=time.monotonic())


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_a_table_call_is_one_attempt_within_the_batchs_settling_time(
    cloud: str, silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EDW_PROCESSING_TIMEOUT_SECONDS=2 keeps 0.5 s to settle a batch after its write deadline:
    a write to a table that never answers waits 0.4 s, once (no SDK retry), then fails."""
    if cloud == "aws":
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", silent_server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env = AWS
    else:
        connection = azurite_connection_string(1, silent_server.port)
        env = {**AZURE, "EDW_AZURE_CONNECTION_STRING": connection}
    backend = build(load({**env, "EDW_PROCESSING_TIMEOUT_SECONDS": "2"}))
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        backend.table.write(EVENTS[:1])
    elapsed = time.monotonic() - started
    backend.close()
    assert 0.35 < elapsed < 0.7
    assert len(silent_server.connections) == 1


def test_dynamodb_rows_carry_an_expiry_only_when_a_ttl_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aws.time, "time", lambda: 1_700_000_000.5)
    assert aws.TTL_ATTRIBUTE not in aws.DynamoTable(None, "events").item(EVENTS[0])
    item = aws.DynamoTable(None, "events", ttl_days=2).item(EVENTS[0])
    assert item[aws.TTL_ATTRIBUTE] == {"N": str(1_700_000_000 + 2 * 86_400)}
    assert item["eventId"] == {"S": "e0"}


def test_ttl_days_reach_the_table_from_the_environment() -> None:
    backend = build(load({**AWS, "EDW_RESULT_TTL_DAYS": "30"}))
    try:
        assert backend.table.ttl_seconds == 30 * 86_400
    finally:
        backend.close()


@pytest.mark.parametrize("body", ["not json {", "&<>" * 20_000, 'é"' * 15_000])
def test_azure_poison_envelope_carries_the_whole_body_when_it_fits(body: str) -> None:
    """Measured as the service measures a message: UTF-8 bytes of the decoded text (XML escaping
    of the request does not count), so these fit whole."""
    message = Received("m-1", body, "receipt", 6)
    text = azure.poison_envelope(message, "not valid JSON")
    assert text is not None
    doc = json.loads(text)
    assert doc == {
        "reason": "not valid JSON",
        "message_id": "m-1",
        "dequeue_count": 6,
        "body": body,
    }
    assert len(text.encode()) <= azure.MAX_MESSAGE_BYTES


def test_azure_poison_envelope_never_drops_the_body() -> None:
    """JSON escaping can push a body that fit the work queue past the limit: no envelope then,
    and the pointer form names the poison message that holds the body instead."""
    body = '"' * 40_000  # 40,000 bytes as a message, 80,000 once escaped in JSON
    message = Received("m-2", body, "receipt", 1)
    assert azure.poison_envelope(message, "too big") is None
    pointer = json.loads(azure.poison_envelope(message, "too big", body_message_id="p-9") or "")
    assert pointer == {
        "reason": "too big",
        "message_id": "m-2",
        "dequeue_count": 1,
        "body_message_id": "p-9",
    }


def test_azure_dead_letter_reasons_are_capped_like_aws() -> None:
    text = azure.poison_envelope(Received("m", "b", "r", 1), "x" * 5000) or ""
    assert len(json.loads(text)["reason"]) == azure.MAX_REASON_CHARS == aws.MAX_REASON_CHARS


def test_aws_region_falls_back_to_the_queue_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    backend = build(load(AWS))  # the queue URL names eu-west-1
    assert backend.table.client.meta.region_name == "eu-west-1"
    assert backend.queue.client.meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    backend.close()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")  # configuration wins over the URL
    backend = build(load(AWS))
    assert backend.queue.client.meta.region_name == "us-east-2"
    backend.close()


class CosmosReplies:
    """A Cosmos DB for Table endpoint on loopback that answers every write with one canned
    reply, so the real azure-data-tables client raises exactly what it raises for it."""

    def __init__(self, status: int, headers: dict[str, str], body: dict[str, object]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def table(self) -> azure.CosmosTable:
        port = self.httpd.server_address[1]
        client = TableClient.from_connection_string(
            azurite_connection_string(port, port), "events", retry_total=0
        )
        return azure.CosmosTable(client, azure._Pool(2))

    def close(self) -> None:
        self.httpd.shutdown()


def odata_error(code: str, message: str) -> dict[str, object]:
    return {"odata.error": {"code": code, "message": {"lang": "en-us", "value": message}}}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-ms-substatus": "1014"}, "Partition key reached maximum size of 20 GB"),
        ({}, "Partition key reached maximum size of 20 GB\nActivityId: 1"),
        ({"x-ms-substatus": "1014"}, "Forbidden"),
    ],
)
def test_a_full_cosmos_partition_is_table_full_not_a_refused_row(
    headers: dict[str, str], message: str
) -> None:
    """Cosmos DB: 403, substatus 1014, "Partition key reached maximum size of {...} GB"
    (learn.microsoft.com/azure/cosmos-db/nosql/troubleshoot-forbidden; the Table API's exact
    body is not documented, so either sign is enough)."""
    replies = CosmosReplies(403, headers, odata_error("Forbidden", message))
    try:
        with pytest.raises(TableFull, match="Cosmos DB has no room for the row") as err:
            replies.table().write(EVENTS[:2])
        assert isinstance(err.value.__cause__, HttpResponseError)
        assert err.value.__cause__.status_code == 403
    finally:
        replies.close()


def test_other_forbidden_writes_are_not_table_full() -> None:
    """A 403 for a missing data-plane role is an outage to retry, not a full table."""
    body = odata_error("Forbidden", "Request blocked by Auth edwcosmos: principal lacks role")
    replies = CosmosReplies(403, {"x-ms-substatus": "5301"}, body)
    try:
        with pytest.raises(HttpResponseError) as err:
            replies.table().write(EVENTS[:1])
        assert not isinstance(err.value, TableFull | RowRejected)
    finally:
        replies.close()


@pytest.mark.parametrize(
    ("status", "code", "row_refused"),
    [
        (400, "PropertyValueTooLarge", True),
        (400, "EntityTooLarge", True),
        (413, "RequestBodyTooLarge", True),
        # Not something an event's content can cause (the entity's names and types are fixed):
        # they would refuse every row alike, so they are table failures.
        (400, "InvalidInput", False),
        (400, "InvalidValueType", False),
        (400, "PropertyNameTooLong", False),
        (400, "TooManyProperties", False),
        (400, "OutOfRangeInput", False),
    ],
)
def test_only_the_row_size_codes_make_an_azure_refusal_the_rows_fault(
    status: int, code: str, row_refused: bool
) -> None:
    """Table service and common REST API error codes (learn.microsoft.com/rest/api/
    storageservices/table-service-error-codes, common-rest-api-error-codes)."""
    replies = CosmosReplies(status, {"x-ms-error-code": code}, odata_error(code, "refused"))
    try:
        with pytest.raises(Exception) as err:  # noqa: PT011 - which one is the assertion
            replies.table().write(EVENTS[:2])
    finally:
        replies.close()
    assert isinstance(err.value, RowRejected) is row_refused
    http = err.value.__cause__ if row_refused else err.value
    assert isinstance(http, HttpResponseError)
    assert http.status_code == status


@pytest.mark.parametrize(
    ("message", "row_refused"),
    [
        (aws.ITEM_TOO_LARGE, True),
        ("One or more parameter values were invalid: Missing the key id in the item", False),
        ("1 validation error detected: Value null at 'requestItems' failed to satisfy", False),
    ],
)
def test_only_the_item_size_message_makes_a_dynamodb_refusal_the_rows_fault(
    message: str, row_refused: bool
) -> None:
    client, stubber = _dynamo_with_canned_responses([])
    stubber.add_client_error(
        "batch_write_item", "ValidationException", message, http_status_code=400
    )
    with pytest.raises(Exception) as err:  # noqa: PT011 - which one is the assertion
        aws.DynamoTable(client, "events").write(EVENTS[:2])
    assert isinstance(err.value, RowRejected) is row_refused


EVENT_TEXT = '{"specversion":"1.0","id":"e","source":"s","type":"t","data":"edw-copies:3\\n"}'


@pytest.mark.parametrize(
    "content",
    [
        EVENT_TEXT,
        " \n" + EVENT_TEXT,  # JSON may start with blanks, a newline among them
        base64.b64encode(EVENT_TEXT.encode()).decode(),  # as Event Grid writes it
        base64.b64encode(b"edw-copies:3\n" + EVENT_TEXT.encode()).decode(),
    ],
)
def test_an_event_is_never_mistaken_for_an_azure_copy_line(content: str) -> None:
    """JSON starts with "{" after blanks; Base64 has neither "-" nor ":": no event, sent as is or
    by Event Grid, starts with "edw-copies:"."""
    message = azure._received("m", content, "r", 1)
    assert (message.copies, message.content) == (0, content)


@pytest.mark.parametrize(
    ("content", "copies", "kept"),
    [
        ("edw-copies:12\n" + EVENT_TEXT, 12, EVENT_TEXT),
        ("edw-copies:1\nZXZlbnQ=", 1, "ZXZlbnQ="),
        ("edw-copies:" + "9" * 5000 + "\n" + EVENT_TEXT, 1_000_000, EVENT_TEXT),  # no int() of it
        ("edw-copies:x\n" + EVENT_TEXT, 0, "edw-copies:x\n" + EVENT_TEXT),  # not a copy: kept
        ("edw-copies:12", 0, "edw-copies:12"),
    ],
)
def test_an_azure_copy_line_is_parsed_and_stripped(content: str, copies: int, kept: str) -> None:
    message = azure._received("m", content, "r", 1)
    assert (message.copies, message.content) == (copies, kept)
    if copies:
        assert azure.copy_text(message) == f"edw-copies:{copies + 1}\n{kept}"
