"""Client wiring for the cloud (no emulator): endpoints, credentials and the table key design."""

from __future__ import annotations

import json

import boto3
import pytest
from azure.identity import DefaultAzureCredential
from botocore.stub import Stubber

from app import aws, azure
from app.backend import Received, build
from app.events import parse
from app.settings import load
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


def test_azure_partition_key_is_stable_and_spreads_ids() -> None:
    ids = [f"order-{i}" for i in range(2000)]
    keys = [azure.partition_key(i) for i in ids]
    assert keys == [azure.partition_key(i) for i in ids]  # redelivery hits the same row
    counts = {k: keys.count(k) for k in set(keys)}
    assert len(counts) == azure.PARTITIONS
    assert min(counts.values()) > 2000 / azure.PARTITIONS * 0.8


def test_azure_entity_is_keyed_by_workflow_and_event_id() -> None:
    event = parse('{"specversion":"1.0","id":"o-1","source":"s","type":"t","data":{"a":1}}')
    entity = azure._entity(event, "orders")
    assert entity == {
        "RowKey": "orders:o-1",
        "PartitionKey": azure.partition_key("o-1"),
        "source": "s",
        "type": "t",
        "data": '{"a":1}',
        "workflow": "orders",
    }


def test_dynamodb_item_names_its_workflow() -> None:
    assert aws.DynamoTable(None, "events").item(EVENTS[0])["workflow"] == {"S": "work"}
    item = aws.DynamoTable(None, "events", workflow="orders").item(EVENTS[0])
    assert item["workflow"] == {"S": "orders"}
    # Another workflow's row of the same event has a key of its own.
    assert item["id"] == {"S": f"orders:{EVENTS[0].id}"}
    assert aws.DynamoTable(None, "events").item(EVENTS[0])["id"] == {"S": EVENTS[0].id}


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


def test_dynamodb_rows_carry_an_expiry_only_when_a_ttl_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aws.time, "time", lambda: 1_700_000_000.5)
    assert aws.TTL_ATTRIBUTE not in aws.DynamoTable(None, "events").item(EVENTS[0])
    item = aws.DynamoTable(None, "events", ttl_days=2).item(EVENTS[0])
    assert item[aws.TTL_ATTRIBUTE] == {"N": str(1_700_000_000 + 2 * 86_400)}
    assert item["id"] == {"S": "e0"}


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
