"""The consumer against real emulators: moto (SQS + DynamoDB) and Azurite (Queue + Table)."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from azure.core.exceptions import HttpResponseError

from app import backend as backends
from app import events
from app.backend import COPIES, MAX_EVENT_BYTES, Received, open_queue
from app.consumer import Consumer
from app.observability import Metrics
from app.producer import body as producer_body
from app.settings import MAX_COPIES_LIMIT, load
from bench.emulators import REPO, Target, azurite_connection_string, child_env
from tests.app.conftest import (
    CLOUDS,
    ConsumerProcess,
    SilentServer,
    provision,
    table_at,
    wait_until,
)
from tests.app.cutting_proxy import CuttingProxy

pytestmark = pytest.mark.emulator
Start = Callable[[dict[str, str]], ConsumerProcess]
FAST = {"EDW_RECEIVE_WAIT_SECONDS": "1", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "10"}


def make_events(n: int) -> tuple[list[str], list[str]]:
    ids = [f"evt-{i:05d}" for i in range(n)]
    bodies = [
        events.make({"seq": i}, source="urn:test", type_="t", event_id=e) for i, e in enumerate(ids)
    ]
    return ids, bodies


def too_large_for_the_table(target: Target, azure_blob: str) -> str:
    """An event whose row the table cannot hold: a 420 KB item on DynamoDB, ``azure_blob`` as
    data on Azure. The stack's SQS work queue takes 256 KiB, less than an item holds; this one is
    set to take what SQS allows (1 MiB), as a queue of someone else's could be."""
    if target.cloud == "aws":
        target.sqs.set_queue_attributes(  # type: ignore[attr-defined]
            QueueUrl=target.queue_url,  # type: ignore[attr-defined]
            Attributes={"MaximumMessageSize": "1048576"},
        )
    blob = "x" * 420_000 if target.cloud == "aws" else azure_blob
    return events.make({"blob": blob}, source="urn:test", type_="t", event_id="big")


def drained(target: Target, n: int) -> bool:
    return len(target.row_ids()) == n and target.depth() == 0


def test_end_to_end_producer_to_rows(target: Target, start_consumer: Start) -> None:
    n = 150
    produced = subprocess.run(
        [sys.executable, "-m", "app.producer", "--count", str(n), "--json", "--no-progress"],
        env=child_env(target.env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(produced.stdout)["sent"] == n

    consumer = start_consumer({**target.env, **FAST})
    consumer.wait_ready()
    wait_until(lambda: drained(target, n), 30, f"{n} rows and an empty queue")

    rows = target.rows()
    assert sorted(json.loads(r["data"])["seq"] for r in rows) == list(range(n))
    assert {r["source"] for r in rows} == {"urn:edw:producer"}
    assert consumer.get("/healthz")[0] == 200
    # Delivery is at-least-once: real SQS may deliver a message twice, and moto's ReceiveMessage
    # marks messages received without a lock (moto/sqs/models.py, receive_message), so two
    # workers polling at once can get the same one. The contract is one row per event and every
    # delivery settled, not one delivery per message.
    received = consumer.metric("edw_messages_received_total")
    assert received >= n
    assert consumer.metric("edw_messages_processed_total") == received
    assert consumer.metric("edw_end_to_end_seconds_count") >= n
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0, consumer.output()
    assert target.dead_letters() == []


def test_a_table_that_never_answers_never_outlasts_the_batch(
    target: Target, start_consumer: Start, silent_server: SilentServer
) -> None:
    """The table takes requests and never answers. A write call is one attempt that must
    connect and answer within 0.8 of the batch's settling time (it may start until the write
    deadline, 1.5 s of 2, and waits at most 0.8 of the 0.5 s left), so it fails before the batch's
    time is up and the message goes back as fresh copies. Were the batch released instead, each
    release would count a delivery, and a long hang would dead-letter the message as delivered
    too often."""
    silent = table_at(target.cloud, target.env, silent_server.url)
    consumer = start_consumer(
        {**target.env, **FAST, "EDW_PROCESSING_TIMEOUT_SECONDS": "2", **silent}
    )
    consumer.wait_ready()
    target.send(make_events(1)[1])
    wait_until(lambda: consumer.metric("edw_messages_requeued_total") >= 2, 12, "fresh copies")
    assert "releasing batch" not in consumer.output()
    assert consumer.metric("edw_messages_dead_lettered_total") == 0
    assert target.dead_letters() == []


def test_sigkill_mid_batch_loses_nothing(target: Target, start_consumer: Start) -> None:
    n = 200
    ids, bodies = make_events(n)
    target.send(bodies)
    # Short visibility so the killed consumer's batches come back quickly; simulated work keeps
    # each batch busy long enough for the kill to land inside it.
    env = {
        **target.env,
        **FAST,
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "2",
        "EDW_SIMULATED_WORK_MS": "10",
        "EDW_CONCURRENCY": "2",
    }
    for _ in range(3):
        consumer = start_consumer(env)
        consumer.wait_ready()
        before = len(target.row_ids())
        wait_until(lambda: len(target.row_ids()) > before, 20, "progress")  # noqa: B023
        wait_until(lambda: consumer.metric("edw_messages_in_flight") > 0, 10, "a batch in flight")  # noqa: B023
        consumer.signal(signal.SIGKILL)
        assert consumer.wait(10) == -signal.SIGKILL
        assert len(target.row_ids()) < n, "the kill must leave work behind"

    final = start_consumer(env)
    final.wait_ready()
    wait_until(lambda: drained(target, n), 40, "every message stored after the crashes")
    final.signal(signal.SIGTERM)
    assert final.wait(15) == 0, final.output()
    assert sorted(target.row_ids()) == ids  # exactly one row per message
    assert target.depth() == 0
    assert target.dead_letters() == []


def test_sigterm_finishes_in_flight_and_exits_zero(target: Target, start_consumer: Start) -> None:
    n = 40
    ids, bodies = make_events(n)
    target.send(bodies)
    env = {**target.env, **FAST, "EDW_SIMULATED_WORK_MS": "100", "EDW_CONCURRENCY": "2"}
    consumer = start_consumer(env)
    consumer.wait_ready()
    wait_until(lambda: consumer.metric("edw_messages_in_flight") > 0, 10, "a batch in flight")
    in_flight = consumer.metric("edw_messages_in_flight")
    consumer.signal(signal.SIGTERM)
    wait_until(lambda: consumer.get("/readyz")[0] == 503, 5, "readiness to drop while draining")
    assert consumer.wait(15) == 0, consumer.output()

    stored = target.row_ids()
    assert len(stored) >= in_flight
    assert set(stored) <= set(ids)
    # Every stored message was deleted and nothing else was: the rest waits, visible, for others.
    assert target.depth() == n - len(stored)
    assert '"drained": true' in consumer.output()


def test_poison_malformed_and_duplicates(target: Target, start_consumer: Start) -> None:
    ids, valid = make_events(3)
    bad = {
        "not json {": "not valid JSON",
        "[1, 2]": "expected an object",
        json.dumps({"specversion": "0.3", "id": "a", "source": "s", "type": "t"}): "specversion",
        json.dumps({"specversion": "1.0", "id": "b", "type": "t"}): "'source'",
        json.dumps({"specversion": "1.0", "id": "c\td", "source": "s", "type": "t"}): "'id'",
        json.dumps(
            {"specversion": "1.0", "id": "e", "source": "s", "type": "t", "time": "yesterday"}
        ): "'time'",
    }
    # A duplicate of a valid event rides in the same receive: batch writes refuse repeated keys,
    # so the consumer must collapse it to one row and still delete both messages.
    target.send([*valid, valid[0], *bad])
    consumer = start_consumer({**target.env, **FAST})
    consumer.wait_ready()
    wait_until(lambda: drained(target, len(valid)), 20, "valid rows and an empty queue")
    wait_until(lambda: consumer.metric("edw_messages_dead_lettered_total") == len(bad), 10, "dlq")
    assert consumer.metric("edw_messages_processed_total") == len(valid) + 1
    assert consumer.metric("edw_messages_received_total") == len(valid) + 1 + len(bad)
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0

    assert sorted(target.row_ids()) == ids
    letters = {d.body: d.reason for d in target.dead_letters()}
    assert set(letters) == set(bad)
    for body, expected in bad.items():
        assert expected in letters[body], (body, letters[body])


def deliver_unsettled(target: Target, times: int) -> None:
    """Receive the only message ``times`` times and let it go each time, as crashed consumers
    would: its delivery count rises."""
    for _ in range(times):
        if target.cloud == "aws":
            wait_until(
                lambda: bool(
                    target.sqs.receive_message(  # type: ignore[attr-defined]
                        QueueUrl=target.queue_url, VisibilityTimeout=0, MaxNumberOfMessages=1
                    ).get("Messages")
                ),
                5,
                "a delivery",
            )
        else:
            (message,) = list(target.queue.receive_messages(max_messages=1))  # type: ignore[attr-defined]
            target.queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)  # type: ignore[attr-defined]


def test_message_over_the_delivery_limit_is_dead_lettered_with_a_reason(
    target: Target, start_consumer: Start
) -> None:
    """EDW_MAX_DELIVERIES holds on both clouds: SQS hands the consumer the receive count, so a
    message is set aside with a reason before the redrive policy would move it without one."""
    _, (body,) = make_events(1)
    target.send([body])
    deliver_unsettled(target, 3)
    consumer = start_consumer({**target.env, **FAST, "EDW_MAX_DELIVERIES": "3"})
    consumer.wait_ready()
    wait_until(lambda: target.depth() == 0, 20, "the work queue to empty")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0

    assert target.row_ids() == []
    (letter,) = target.dead_letters()
    assert letter.body == body
    assert letter.reason == "delivered 4 times (limit 3)"


def test_hostile_bodies_are_set_aside_without_taking_their_batch(
    target: Target, start_consumer: Start
) -> None:
    """Each bad message is dead-lettered with its reason; every valid one beside it is stored
    and nothing is left on the queue (the batch is not redelivered because of one message)."""
    ids, valid = make_events(4)
    base = {"specversion": "1.0", "source": "urn:test", "type": "t"}
    nested = '{"specversion":"1.0","id":"n","source":"s","type":"t","data":' + (
        "[" * 20_000 + "]" * 20_000 + "}"
    )
    bad = {
        nested: "nested too deeply",
        '{"specversion":"1.0","id":"s\\ud800","source":"s","type":"t"}': "lone surrogate",
        '{"specversion":"1.0","id":"u","source":"\\udc00x","type":"t"}': "lone surrogate",
        '{"specversion":"1.0","id":"v","source":"s","type":"t","data":NaN}': "NaN is not JSON",
        json.dumps({**base, "id": "w", "time": "2026-W01-2T03:04:05Z"}): "not RFC 3339",
    }
    binary = json.dumps({**base, "id": "bin", "data_base64": "AAECAw==", "subject": "s/1"})
    extended = json.dumps({**base, "id": "ext", "data": {"a": 1}, "region": "eu", "prio": 2})
    target.send([*valid, *bad, binary, extended])
    consumer = start_consumer({**target.env, **FAST})
    consumer.wait_ready()
    wait_until(lambda: drained(target, len(valid) + 2), 30, "valid rows and an empty queue")
    wait_until(lambda: consumer.metric("edw_messages_dead_lettered_total") == len(bad), 10, "dlq")
    assert consumer.metric("edw_messages_processed_total") == len(valid) + 2
    assert consumer.metric("edw_messages_failed_total") == 0
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0

    assert sorted(target.row_ids()) == sorted([*ids, "bin", "ext"])
    rows = {r["eventId"]: r for r in target.rows()}
    assert (rows["bin"]["data_base64"], rows["bin"]["subject"]) == ("AAECAw==", "s/1")
    assert "data" not in rows["bin"]
    assert json.loads(rows["ext"]["extensions"]) == {"region": "eu", "prio": 2}
    letters = {d.body: d.reason for d in target.dead_letters()}
    assert set(letters) == set(bad)
    for body, expected in bad.items():
        assert expected in letters[body], (body[:80], letters[body])


def test_a_row_too_large_for_the_table_is_dead_lettered_whole(
    target: Target, start_consumer: Start
) -> None:
    """DynamoDB items hold 400 KB; Azure Table string properties 32K UTF-16 units. The body is
    kept whole on the dead-letter path (on Azure, escaping makes this one too large for an
    envelope: it is stored on its own and the envelope points at it)."""
    ids, valid = make_events(3)
    big = too_large_for_the_table(target, azure_blob='"' * 30_000)
    limit = {
        "aws": "row too large for DynamoDB",
        "azure": "row too large for Azure Table: property 'data'",
    }[target.cloud]
    target.send([*valid, big])
    consumer = start_consumer({**target.env, **FAST})
    consumer.wait_ready()
    wait_until(lambda: drained(target, len(valid)), 30, "valid rows and an empty queue")
    wait_until(lambda: consumer.metric("edw_messages_dead_lettered_total") == 1, 10, "dlq")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0

    assert sorted(target.row_ids()) == ids
    (letter,) = target.dead_letters()
    assert letter.body == big
    assert letter.reason.startswith(limit), letter.reason


def test_a_row_the_table_refuses_beside_others_is_split_out_on_the_emulator(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator refuses a multi-row write for one row (moto: ValidationException "Item size
    has exceeded the maximum allowed size" for the whole BatchWriteItem; Azurite: 400
    PropertyValueTooLarge for that row's upsert). The consumer's own size check is switched
    off so the row reaches the table, as one would whose limit the check got wrong: the rows are
    split until the refused one is alone, it alone is dead-lettered with the table's error, and
    every batch-mate is stored, on its first delivery."""
    ids, valid = make_events(9)
    big = too_large_for_the_table(target, azure_blob="x" * 33_000)
    refused = {
        "aws": "DynamoDB refused the row: ClientError: An error occurred (ValidationException)",
        "azure": "Azure Table refused the row: HttpResponseError: The property value exceeds",
    }[target.cloud]
    target.send([*valid, big])
    for name, value in target.env.items():
        monkeypatch.setenv(name, value)
    settings = load({**target.env, "EDW_PROCESSING_TIMEOUT_SECONDS": "10"})
    backend = backends.build(settings)
    backend.table.refusal = lambda event: None  # type: ignore[method-assign]
    consumer = Consumer(settings, backend, Metrics(settings.cloud))
    try:
        batch: list[Received] = []  # all ten in one batch, as one receive would bring them
        deadline = time.monotonic() + 10
        while len(batch) < 10 and time.monotonic() < deadline:
            batch += backend.queue.receive(1, 60, 10 - len(batch))
        consumer.process(batch)
    finally:
        backend.close()
    assert sorted(target.row_ids()) == ids
    assert target.depth() == 0
    (letter,) = target.dead_letters()
    assert letter.body == big
    assert letter.reason.startswith(refused), letter.reason


def test_a_validation_error_that_is_not_about_the_row_dead_letters_nothing_on_moto(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table's key is not the one the rows carry (replaced by hand, say): moto refuses every
    BatchWriteItem with ValidationException "Missing the key id in the item". That is the
    table's fault, not the rows': nothing is split or dead-lettered, the breaker opens and the
    messages go back as fresh copies; on the same table, the right key stores them."""
    target = provision(request, "aws")
    ids, bodies = make_events(4)
    target.send(bodies)
    dynamodb = target.dynamodb  # type: ignore[attr-defined]
    dynamodb.delete_table(TableName=target.table)  # type: ignore[attr-defined]
    dynamodb.create_table(
        TableName=target.table,  # type: ignore[attr-defined]
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for name, value in target.env.items():
        monkeypatch.setenv(name, value)
    settings = load({**target.env, "EDW_PROCESSING_TIMEOUT_SECONDS": "2"})
    backend = backends.build(settings)
    consumer = Consumer(settings, backend, Metrics(settings.cloud))
    try:
        batch: list[Received] = []
        deadline = time.monotonic() + 10
        while len(batch) < 4 and time.monotonic() < deadline:
            batch += backend.queue.receive(1, 60, 4 - len(batch))
        consumer.process(batch)
        copies: list[Received] = []
        while len(copies) < 4 and time.monotonic() < deadline + 10:
            copies += backend.queue.receive(1, 60, 4 - len(copies))
    finally:
        backend.close()
    assert target.dead_letters() == []
    assert sorted(events.parse(m.body).id for m in copies) == ids
    assert consumer.breaker.state == "open"
    assert consumer.metrics.registry.get_sample_value(
        "edw_messages_requeued_total", {"cloud": "aws", "workflow": "work"}
    ) == len(ids)


# Longer than SQS's redrive (maxReceiveCount, bench.emulators.MAX_RECEIVE_COUNT = 5) and the
# consumer's delivery limit (2 here) times the 2 s visibility timeout: without the breaker, every
# valid message would be dead-lettered meanwhile.
OUTAGE_SECONDS = 12
THROTTLED = {
    "aws": (
        "400 Bad Request",
        "application/x-amz-json-1.0",
        json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was "
                "exceeded. Consider increasing your provisioning level with the UpdateTable API.",
            }
        ),
    ),
    "azure": (
        "429 Too Many Requests",
        "application/json",
        json.dumps(
            {
                "odata.error": {
                    "code": "TooManyRequests",
                    "message": {"lang": "en-US", "value": "Request rate is large."},
                }
            }
        ),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["cut", "throttled"])
@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_table_failing_past_every_delivery_limit_dead_letters_nothing(
    cloud: str, fault: str, request: pytest.FixtureRequest, start_consumer: Start
) -> None:
    """Only the table fails (unreachable, or throttling with the service's own error) for
    longer than any delivery limit allows. The breaker opens (its metric says so), the consumer
    stops receiving but for one probe batch per pause, whose messages go back as fresh copies;
    when the table answers again every event is stored once and nothing, neither the consumer
    nor SQS's redrive, has dead-lettered a thing."""
    n = 30
    ids, bodies = make_events(n)
    env = {
        **FAST,
        "EDW_CONCURRENCY": "2",
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "2",
        "EDW_PROCESSING_TIMEOUT_SECONDS": "1",
        "EDW_MAX_DELIVERIES": "2",
    }
    with contextlib.ExitStack() as stack:
        target, table, _ = behind_proxies(request, stack, cloud, table_only=True)
        env.update(target.env)
        target.send(bodies)
        if fault == "cut":
            table.cut()
        else:
            table.answer(*THROTTLED[cloud])
        consumer = start_consumer(env)
        consumer.wait_ready()
        wait_until(lambda: consumer.metric("edw_breaker_open") == 1, 15, "the breaker to open")
        time.sleep(OUTAGE_SECONDS)  # the failure's length is what is tested
        assert consumer.metric("edw_breaker_open") == 1
        assert consumer.metric("edw_messages_dead_lettered_total") == 0
        assert len(target.row_ids()) == 0
        assert table.cuts or table.answered
        table.restore()
        wait_until(lambda: drained(target, n), 40, f"{n} rows and an empty queue")
        assert consumer.metric("edw_breaker_open") == 0
        assert consumer.metric("edw_messages_requeued_total") >= 1
        assert consumer.metric("edw_messages_dead_lettered_total") == 0
        assert "table failing: breaker open, receiving paused" in consumer.output()
        consumer.signal(signal.SIGTERM)
        assert consumer.wait(15) == 0, consumer.output()
    assert sorted(target.row_ids()) == ids
    assert target.dead_letters() == []  # the redrive moved nothing either


def test_azure_dead_letters_and_sends_never_expire_and_keep_the_queue_content(
    request: pytest.FixtureRequest, start_consumer: Start
) -> None:
    """Put Message keeps a message 7 days unless told otherwise (-1: never). An Event Grid
    message (Base64) that is not an event is set aside as it was queued: its decoded text holds
    U+FFFF, which XML 1.0 forbids, so it could not travel in a queue message."""
    target = provision(request, "azure")
    text = '{"specversion":"1.0","id":"a","source":"s\uffff"}'
    raw = base64.b64encode(text.encode()).decode()
    target.send([raw])
    consumer = start_consumer({**target.env, **FAST})
    consumer.wait_ready()
    wait_until(lambda: target.depth() == 0, 20, "the work queue to empty")
    assert consumer.metric("edw_messages_dead_lettered_total") == 1
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0
    expiry = {m.expires_on.year for m in target.poison.peek_messages(max_messages=32)}  # type: ignore[attr-defined]
    assert expiry == {9999}
    (letter,) = target.dead_letters()
    assert letter.body == raw
    assert "'type'" in letter.reason
    # What the producer sends straight to a queue never expires either.
    sender = open_queue(
        "azure",
        target.env["EDW_QUEUE"],
        connection_string=target.env["EDW_AZURE_CONNECTION_STRING"],
    )
    assert sender.send(make_events(1)[1]) == 0
    (sent,) = target.queue.peek_messages()  # type: ignore[attr-defined]
    assert sent.expires_on.year == 9999


@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_producer_holds_both_clouds_to_one_event_size_limit(
    cloud: str, request: pytest.FixtureRequest
) -> None:
    """The producer refuses an event over the limit on both clouds with the reason, before
    sending anything; an event at the limit is sent. On Azure, the queue's own bound (app/
    backend.py): a fresh copy, with the longest copy line, of what Event Grid writes for a
    49,137-byte event fits an Azurite queue message, one byte more does not; the limit (32 KiB,
    the table's) is below it."""
    target = provision(request, cloud)

    def produce(size: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "app.producer", "--count", "3", "--target", "queue"),
                *("--payload-bytes", str(size), "--json", "--no-progress"),
            ],
            env=child_env(target.env),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    over = produce(MAX_EVENT_BYTES + 1)
    assert over.returncode == 2, over.stdout + over.stderr
    assert f"--payload-bytes {MAX_EVENT_BYTES + 1}: the event is {MAX_EVENT_BYTES + 1} bytes" in (
        over.stderr
    )
    assert "an Azure Table string property holds 32K UTF-16 code units" in over.stderr
    assert target.depth() == 0
    at = produce(MAX_EVENT_BYTES)
    assert at.returncode == 0, at.stderr
    assert json.loads(at.stdout)["sent"] == 3
    assert target.depth() == 3
    if cloud == "azure":
        longest = f"{COPIES}:{MAX_COPIES_LIMIT}\n"
        target.queue.send_message(longest + as_event_grid_writes(49_137))  # type: ignore[attr-defined]
        with pytest.raises(HttpResponseError, match="RequestBodyTooLarge"):
            target.queue.send_message(longest + as_event_grid_writes(49_138))  # type: ignore[attr-defined]
        assert MAX_EVENT_BYTES < 49_137


def as_event_grid_writes(size: int) -> str:
    """A producer event of ``size`` bytes of JSON as Event Grid puts it on a Storage queue."""
    event = producer_body(0, size, "urn:p", "t")
    assert len(event.encode()) == size
    return base64.b64encode(event.encode()).decode()


def queue_copy(target: Target, content: str, copies: int) -> None:
    """A message as the consumer's fresh copy number ``copies`` of ``content`` is queued."""
    if target.cloud == "aws":
        target.sqs.send_message(  # type: ignore[attr-defined]
            QueueUrl=target.queue_url,  # type: ignore[attr-defined]
            MessageBody=content,
            MessageAttributes={COPIES: {"DataType": "Number", "StringValue": str(copies)}},
        )
    else:
        target.queue.send_message(f"{COPIES}:{copies}\n{content}")  # type: ignore[attr-defined]


def drop_table(target: Target) -> Callable[[], None]:
    """Delete the event table (every write fails: not found); returns what re-creates it."""
    if target.cloud == "aws":
        dynamodb, name = target.dynamodb, target.table  # type: ignore[attr-defined]
        dynamodb.delete_table(TableName=name)
        return lambda: dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    table = target.table  # type: ignore[attr-defined]
    table.delete_table()
    return table.create_table


def in_process(
    target: Target, monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[backends.Backend, Consumer]:
    for name, value in target.env.items():
        monkeypatch.setenv(name, value)
    settings = load({**target.env, **env})
    backend = backends.build(settings)
    return backend, Consumer(settings, backend, Metrics(settings.cloud))


def receive(backend: backends.Backend, n: int) -> list[Received]:
    found: list[Received] = []
    deadline = time.monotonic() + 10
    while len(found) < n and time.monotonic() < deadline:
        found += backend.queue.receive(1, 60, n - len(found))
    return found


@pytest.mark.parametrize("cloud", CLOUDS)
def test_fresh_copies_carry_a_counter_and_stop_at_the_copy_limit(
    cloud: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table fails for good (deleted): each fresh copy carries its number (SQS: the
    edw-copies attribute; Azure: a first line, stripped on receive) and the content as first
    queued (Event Grid's Base64 stays Base64); the copy past EDW_MAX_COPIES is set aside with
    its reason instead."""
    target = provision(request, cloud)
    _, (event,) = make_events(1)
    queued = event if cloud == "aws" else base64.b64encode(event.encode()).decode()
    target.send([queued])
    drop_table(target)
    backend, consumer = in_process(
        target, monkeypatch, EDW_PROCESSING_TIMEOUT_SECONDS="1", EDW_MAX_COPIES="2"
    )
    try:
        for copies in (0, 1, 2):
            (message,) = receive(backend, 1)
            assert (message.copies, message.content, message.body) == (copies, queued, event)
            consumer.process([message])
        assert receive(backend, 1) == []
    finally:
        backend.close()
    (letter,) = target.dead_letters()
    assert letter.body == queued
    assert letter.reason.startswith("the table could not take it after 2 fresh copies"), letter
    metric = consumer.metrics.registry.get_sample_value
    labels = {"cloud": cloud, "workflow": "work"}
    assert metric("edw_messages_requeued_total", labels) == 2
    assert metric("edw_messages_over_copy_limit_total", labels) == 1


@pytest.mark.parametrize("cloud", CLOUDS)
def test_an_event_at_the_size_limit_survives_a_copy_with_the_longest_counter(
    cloud: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The producer's largest event, as it reaches the work queue (on Azure: Event Grid's
    Base64), put back once more with the longest counter the consumer writes, then stored (on
    Azure its data is near the table's 32K UTF-16 units per property)."""
    target = provision(request, cloud)
    event = producer_body(0, MAX_EVENT_BYTES, "urn:p", "t")
    assert len(event.encode()) == MAX_EVENT_BYTES
    queued = event if cloud == "aws" else base64.b64encode(event.encode()).decode()
    queue_copy(target, queued, MAX_COPIES_LIMIT - 1)
    recreate = drop_table(target)
    backend, consumer = in_process(
        target,
        monkeypatch,
        EDW_PROCESSING_TIMEOUT_SECONDS="1",
        EDW_MAX_COPIES=str(MAX_COPIES_LIMIT),
    )
    try:
        consumer.process(receive(backend, 1))
        (copy,) = receive(backend, 1)
        assert (copy.copies, copy.content) == (MAX_COPIES_LIMIT, queued)
        recreate()
        consumer.process([copy])
    finally:
        backend.close()
    assert target.row_ids() == [events.parse(event).id]
    assert target.dead_letters() == []
    assert target.depth() == 0


def test_a_message_at_the_work_queue_size_limit_is_dead_lettered_with_its_reason(
    request: pytest.FixtureRequest, start_consumer: Start
) -> None:
    """SQS counts message attributes toward its size limit (the emulator is made to, too:
    bench.emulators.count_sqs_attribute_bytes). A body as large as the work queue takes, plus
    the reason attribute, must still fit the DLQ."""
    target = provision(request, "aws")
    limit = int(
        target.sqs.get_queue_attributes(  # type: ignore[attr-defined]
            QueueUrl=target.queue_url,  # type: ignore[attr-defined]
            AttributeNames=["MaximumMessageSize"],
        )["Attributes"]["MaximumMessageSize"]
    )
    body = "x" * limit  # not JSON
    target.send([body])
    consumer = start_consumer({**target.env, **FAST})
    consumer.wait_ready()
    wait_until(lambda: target.depth() == 0, 20, "the work queue to empty")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0
    (letter,) = target.dead_letters()
    assert letter.body == body
    assert letter.reason.startswith("not valid JSON"), letter.reason


def test_long_processing_extends_visibility_without_duplicates(
    target: Target, start_consumer: Start
) -> None:
    n = 8
    ids, bodies = make_events(n)
    target.send(bodies)
    # One batch takes 8 x 0.5 s = 4 s, twice the 2 s visibility timeout; a second idle worker
    # would receive the batch again if the heartbeat did not keep it hidden.
    env = {
        **target.env,
        **FAST,
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "2",
        "EDW_SIMULATED_WORK_MS": "500",
        "EDW_CONCURRENCY": "2",
    }
    consumer = start_consumer(env)
    consumer.wait_ready()
    wait_until(lambda: drained(target, n), 20, "rows and an empty queue")
    assert consumer.metric("edw_messages_received_total") == n
    assert consumer.metric("edw_messages_processed_total") == n
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0
    assert sorted(target.row_ids()) == ids


def test_batch_over_processing_timeout_is_released_to_others(
    target: Target, start_consumer: Start
) -> None:
    _, bodies = make_events(1)
    target.send(bodies)
    # Work (3 s) outlasts the processing timeout (1 s) though the visibility timeout is 60 s:
    # the heartbeat must hand the message back, and the idle second worker picks it up again.
    env = {
        **target.env,
        **FAST,
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "60",
        "EDW_PROCESSING_TIMEOUT_SECONDS": "1",
        "EDW_SIMULATED_WORK_MS": "3000",
        "EDW_CONCURRENCY": "2",
    }
    consumer = start_consumer(env)
    consumer.wait_ready()
    wait_until(lambda: consumer.metric("edw_messages_received_total") >= 2, 6, "a redelivery")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0, consumer.output()
    assert "processing timeout exceeded; releasing batch" in consumer.output()
    assert len(target.row_ids()) == 1


def behind_proxies(
    request: pytest.FixtureRequest, stack: contextlib.ExitStack, cloud: str, *, table_only: bool
) -> tuple[Target, CuttingProxy, CuttingProxy]:
    """A fresh target whose consumer environment reaches the table, and unless ``table_only``
    the queue, through cutting proxies: (target, the table's link, the queue's link, which
    is the table's when only the table is proxied or one endpoint serves both)."""
    if cloud == "aws":
        moto = request.getfixturevalue("moto")
        proxy = stack.enter_context(CuttingProxy(moto.port))
        target = provision(request, "aws")
        # botocore's per-service endpoint sends only DynamoDB through the proxy; one endpoint
        # serves both services otherwise.
        name = "AWS_ENDPOINT_URL_DYNAMODB" if table_only else "AWS_ENDPOINT_URL"
        target.env[name] = f"http://127.0.0.1:{proxy.port}"
        return target, proxy, proxy
    azurite = request.getfixturevalue("azurite")
    table = stack.enter_context(CuttingProxy(azurite.ports["table"]))
    queue = table if table_only else stack.enter_context(CuttingProxy(azurite.ports["queue"]))
    queue_port = azurite.ports["queue"] if table_only else queue.port
    target = azurite.provision(
        f"cut{uuid.uuid4().hex[:8]}", azurite_connection_string(queue_port, table.port)
    )
    return target, table, queue


def cut_twice(
    link: Callable[[], CuttingProxy], progress: Callable[[], int], seconds: float
) -> None:
    """Cut the consumer's link for ``seconds``, twice, each time after some progress."""
    for _ in range(2):
        before = progress()
        wait_until(lambda: progress() >= before + 20, 30, "progress before a cut")  # noqa: B023
        proxy = link()
        proxy.cut()
        time.sleep(seconds)
        proxy.restore()


@pytest.mark.slow
@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_network_cuts_lose_nothing_and_dead_letter_nothing(
    cloud: str, request: pytest.FixtureRequest, start_consumer: Start
) -> None:
    """~8 s without the queue or the table, twice, while draining: every message ends as exactly
    one row, none is dead-lettered, and the process keeps running (retries in place, within the
    batch's time, while the heartbeat keeps the batch hidden)."""
    n = 300
    ids, bodies = make_events(n)
    # A receive whose response the cut swallowed comes back after the visibility timeout: keep
    # it short enough for the test, longer than a cut.
    env = {
        **FAST,
        "EDW_SIMULATED_WORK_MS": "50",
        "EDW_CONCURRENCY": "2",
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "20",
        "EDW_PROCESSING_TIMEOUT_SECONDS": "15",
    }
    with contextlib.ExitStack() as stack:
        target, table, queue = behind_proxies(request, stack, cloud, table_only=False)
        env.update(target.env)
        links = [table, queue]  # the table blip first, then the queue (on AWS one endpoint)
        target.send(bodies)
        consumer = start_consumer(env)
        consumer.wait_ready()
        order = iter(links)
        cut_twice(lambda: next(order), lambda: len(target.row_ids()), seconds=8)
        wait_until(lambda: drained(target, n), 90, f"{n} rows and an empty queue")
        assert consumer.process.poll() is None, consumer.output()
        assert consumer.get("/healthz")[0] == 200
        assert consumer.metric("edw_messages_dead_lettered_total") == 0
        assert sum(link.cuts for link in set(links)) == 2
        assert "retrying in place" in consumer.output() or "failed" in consumer.output()
        consumer.signal(signal.SIGTERM)
        assert consumer.wait(15) == 0
    assert sorted(target.row_ids()) == ids
    assert target.dead_letters() == []
