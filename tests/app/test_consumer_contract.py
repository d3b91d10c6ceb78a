"""The consumer's contract under partial failure, on an in-memory backend with scripted faults.

What the emulators cannot show: a write refused for one row mid-batch, a dead letter or an
extension that fails for one message only, a call that never returns. The table is each cloud's
real backend on its real SDK client over fake HTTP (tests/app/fakes.py): the consumer meets
exactly what botocore and azure-data-tables raise.
"""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.stub import Stubber

from app import aws, events
from app.backend import Received, batches
from app.breaker import CLOSED, HALF_OPEN, OPEN, PROBE, Breaker
from app.consumer import Consumer
from tests.app.fakes import (
    CLOUDS,
    TOO_LARGE,
    FakeQueue,
    TableService,
    backend,
    count,
    event_body,
    metrics,
    settings,
    table_for,
)


def consumer_for(
    service: TableService | None = None,
    queue: FakeQueue | None = None,
    dlq: FakeQueue | None = None,
    cloud: str = "aws",
    **changes: object,
) -> tuple[Consumer, FakeQueue, FakeQueue, TableService]:
    queue, dlq, service = queue or FakeQueue(), dlq or FakeQueue(), service or TableService()
    table = table_for(cloud, service)
    consumer = Consumer(settings(**changes), backend(queue, dlq, table), metrics())
    return consumer, queue, dlq, service


REFUSED = {
    "aws": "DynamoDB refused the row: ClientError: An error occurred (ValidationException) when "
    "calling the BatchWriteItem operation: " + TOO_LARGE["aws"],
    "azure": "Azure Table refused the row: HttpResponseError: " + TOO_LARGE["azure"],
}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_refused_row_is_isolated_and_only_it_is_dead_lettered(cloud: str) -> None:
    """The table refuses a multi-row write for one row (DynamoDB the whole BatchWriteItem, Azure
    that row's upsert): the rows are split until it is alone, and only it is set aside."""
    consumer, queue, dlq, table = consumer_for(TableService(refused={"e3"}), cloud=cloud)
    messages = queue.put(*(event_body(i) for i in range(10)))
    consumer.process(messages)
    assert sorted(table.rows) == sorted(f"e{i}" for i in range(10) if i != 3)
    [(dead, reason)] = dlq.sent
    assert dead is messages[3]
    assert reason == REFUSED[cloud]
    assert sorted(queue.deleted, key=messages.index) == messages
    if cloud == "aws":  # refused with the others in one BatchWriteItem, then alone
        assert any(len(ids) > 1 and "e3" in ids for ids in table.writes)
        assert ["e3"] in table.writes
    else:  # one upsert per row: refused in the whole write, then again alone
        assert table.writes.count(["e3"]) >= 2
    m = consumer.metrics
    assert (count(m, "edw_messages_processed_total"), count(m, "edw_messages_failed_total")) == (
        9,
        0,
    )
    assert count(m, "edw_messages_dead_lettered_total") == 1
    assert consumer.breaker.state == CLOSED  # a refused row says nothing about the table


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("fault", ["outage", "throttled"])
def test_a_short_table_failure_is_retried_in_place_and_costs_no_delivery(
    cloud: str, fault: str
) -> None:
    ends = [0.0]
    service = TableService(**{fault: lambda: time.monotonic() < ends[0]})
    consumer, queue, dlq, table = consumer_for(service, cloud=cloud)
    messages = queue.put(*(event_body(i) for i in range(5)), deliveries=5)  # last delivery
    ends[0] = time.monotonic() + 0.6
    consumer.process(messages)
    assert sorted(table.rows) == [f"e{i}" for i in range(5)]
    assert dlq.sent == []
    assert queue.deleted == messages
    assert len(table.writes) > 1  # retried, with backoff, within the same batch
    assert count(consumer.metrics, "edw_messages_failed_total") == 0
    assert consumer.breaker.state == CLOSED  # opened by the failures, closed by the write
    assert count(consumer.metrics, "edw_breaker_open") == 0


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("fault", ["outage", "throttled"])
def test_a_table_failing_past_the_deadline_puts_messages_back_as_fresh_copies(
    cloud: str, fault: str
) -> None:
    """Never dead-lettered, even on its last allowed delivery: a fresh copy (delivery count 1)
    replaces the message, so neither the SQS redrive nor the delivery limit can move it."""
    consumer, queue, dlq, table = consumer_for(
        TableService(**{fault: lambda: True}),
        cloud=cloud,
        processing_timeout_seconds=1,
        max_deliveries=5,
    )
    early = queue.put(event_body(1), deliveries=2)
    last = queue.put(event_body(2), deliveries=5)
    consumer.process(early + last)
    assert dlq.sent == []
    assert queue.copies == [early[0].body, last[0].body]
    assert queue.deleted == early + last  # each original is gone once its copy is queued
    assert table.rows == {}
    m = consumer.metrics
    assert count(m, "edw_messages_requeued_total") == 2
    assert count(m, "edw_messages_failed_total") == 0
    assert count(m, "edw_messages_dead_lettered_total") == 0
    assert consumer.breaker.state == OPEN
    assert count(m, "edw_breaker_open") == 1


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_refusal_that_is_not_about_the_rows_is_a_table_failure(cloud: str) -> None:
    """DynamoDB ValidationException and Azure 400 are refusals of the row only for the row-size
    codes; any other (here: the table's key schema is not the rows', an invalid request) would
    refuse every row alike, so nothing is dead-lettered: the breaker opens and the messages go
    back as fresh copies."""
    consumer, queue, dlq, table = consumer_for(
        TableService(invalid=lambda: True), cloud=cloud, processing_timeout_seconds=1
    )
    messages = queue.put(*(event_body(i) for i in range(3)))
    consumer.process(messages)
    assert dlq.sent == []
    assert queue.copies == [m.body for m in messages]
    assert queue.deleted == messages
    assert table.rows == {}
    assert len(table.writes) > 1  # retried as a failing table, not split as refused rows
    assert consumer.breaker.state == OPEN
    assert count(consumer.metrics, "edw_messages_dead_lettered_total") == 0


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_message_put_back_max_copies_times_is_set_aside_with_its_reason(cloud: str) -> None:
    """A table failure no copy gets past (one only some rows meet, say) must not loop forever:
    the copy that would pass EDW_MAX_COPIES is a dead letter instead, counted and alerted on."""
    consumer, queue, dlq, _ = consumer_for(
        TableService(outage=lambda: True), cloud=cloud, processing_timeout_seconds=1, max_copies=3
    )
    below = queue.put(event_body(1), copies=2)
    at = queue.put(event_body(2), copies=3)
    consumer.process(below + at)
    assert queue.copies == [below[0].body]
    assert queue.inbox[-1].copies == 3  # the copy counts one more
    [(dead, reason)] = dlq.sent
    assert dead is at[0]
    assert reason == (
        "the table could not take it after 3 fresh copies (limit EDW_MAX_COPIES=3); the table is "
        "still failing"
    )
    assert set(queue.deleted) == {*below, *at}
    m = consumer.metrics
    assert count(m, "edw_messages_over_copy_limit_total") == 1
    assert count(m, "edw_messages_requeued_total") == 1
    assert count(m, "edw_messages_failed_total") == 0


def test_a_full_table_is_counted_for_its_alert_and_dead_letters_nothing() -> None:
    """Cosmos DB's full partition (403, substatus 1014): no retry or pause ends it, so besides
    the breaker it counts in edw_table_full_total, on which EdwTableFull pages at once."""
    consumer, queue, dlq, _ = consumer_for(
        TableService(full=lambda: True), cloud="azure", processing_timeout_seconds=1
    )
    messages = queue.put(event_body(0), event_body(1))
    consumer.process(messages)
    assert dlq.sent == []
    assert queue.copies == [m.body for m in messages]
    assert consumer.breaker.state == OPEN
    assert count(consumer.metrics, "edw_table_full_total") >= 1


def test_a_copy_that_is_refused_leaves_its_original_on_the_queue() -> None:
    consumer, queue, dlq, _ = consumer_for(
        TableService(outage=lambda: True),
        queue=FakeQueue(fail_send=lambda m: m.message_id == "m1"),
        processing_timeout_seconds=1,
    )
    messages = queue.put(event_body(0), event_body(1))
    consumer.process(messages)
    assert queue.copies == [messages[0].body]
    assert queue.deleted == [messages[0]]
    assert dlq.sent == []
    assert count(consumer.metrics, "edw_messages_failed_total") == 1


def test_an_azure_copy_and_dead_letter_keep_the_queue_content_not_the_decoded_text() -> None:
    consumer, queue, dlq, _ = consumer_for(
        TableService(outage=lambda: True), processing_timeout_seconds=1
    )
    valid = Received("m0", event_body(0), "r0", 1, raw="ZXZlbnQ=")
    invalid = Received("m1", "not json", "r1", 1, raw="bm90IGpzb24=")
    consumer.process([valid, invalid])
    assert queue.copies == ["ZXZlbnQ="]
    [(dead, _)] = dlq.sent
    assert dead.content == "bm90IGpzb24="


def test_the_open_breaker_stops_receiving_until_a_probe_writes() -> None:
    """While the table fails, the workers receive nothing but one probe batch per pause; the
    probe's successful write closes the breaker and receiving resumes."""
    down = threading.Event()
    down.set()
    service = TableService(outage=down.is_set)
    queue = FakeQueue()
    consumer, queue, dlq, table = consumer_for(
        service, queue=queue, processing_timeout_seconds=1, concurrency=2
    )
    queue.put(*(event_body(i) for i in range(40)))
    consumer.start()
    try:
        deadline = time.monotonic() + 5
        while consumer.breaker.state == CLOSED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert consumer.breaker.state != CLOSED
        receives = queue.receives
        time.sleep(2.0)  # about two pauses (1 s, then 2 s): at most a probe or two
        assert queue.receives - receives <= 2
        down.clear()
        deadline = time.monotonic() + 10
        while len(table.rows) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        consumer.drain(3)
    assert sorted(table.rows) == sorted(f"e{i}" for i in range(40))
    assert dlq.sent == []
    assert consumer.breaker.state == CLOSED
    assert count(consumer.metrics, "edw_breaker_open") == 0
    assert consumer.alive()


def test_the_breaker_admits_one_probe_after_its_pause_and_doubles_it_on_failure() -> None:
    now = [0.0]
    changes: list[str] = []
    breaker = Breaker((1.0, 3.0), changes.append, clock=lambda: now[0])
    assert breaker.admit() == CLOSED
    breaker.failed()
    assert (breaker.state, breaker.admit(), breaker.wait_seconds()) == (OPEN, None, 1.0)
    now[0] = 1.0
    assert breaker.admit() == PROBE
    assert breaker.admit() is None  # one probe at a time
    breaker.probe_done()  # it received nothing: the next worker probes
    assert breaker.admit() == PROBE
    breaker.failed()
    assert (breaker.state, breaker.wait_seconds()) == (OPEN, 2.0)
    breaker.failed()  # another batch failing meanwhile keeps the schedule
    assert breaker.wait_seconds() == 2.0
    now[0] = 3.0
    assert breaker.admit() is None  # the last probe's batch is not settled yet
    breaker.probe_done()
    assert breaker.admit() == PROBE
    breaker.failed()
    assert breaker.wait_seconds() == 3.0  # doubled, up to the longest
    breaker.succeeded()
    assert (breaker.state, breaker.admit()) == (CLOSED, CLOSED)
    breaker.failed()
    assert breaker.wait_seconds() == 1.0  # a fresh outage starts from the first pause
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, OPEN, CLOSED, OPEN]


def test_a_dead_letter_is_sent_once_and_deleted_only_once_sent() -> None:
    failures = {"m1": 1}  # m1's dead letter fails once, then goes through

    def fail_once(message: Received) -> bool:
        if failures.get(message.message_id, 0) > 0:
            failures[message.message_id] -= 1
            return True
        return False

    consumer, queue, dlq, _ = consumer_for(dlq=FakeQueue(fail_send=fail_once))
    messages = queue.put("not json", "{", "[]")
    consumer.process(messages)
    assert [m.message_id for m, _ in dlq.sent] == ["m0", "m2", "m1"]  # each exactly once
    assert sorted(m.message_id for m in queue.deleted) == ["m0", "m1", "m2"]


def test_a_dead_letter_that_never_goes_through_keeps_the_message() -> None:
    consumer, queue, dlq, _ = consumer_for(
        dlq=FakeQueue(fail_send=lambda m: m.message_id == "m1"), processing_timeout_seconds=1
    )
    messages = queue.put("not json", "{")
    consumer.process(messages)
    assert [m.message_id for m, _ in dlq.sent] == ["m0"]
    assert queue.deleted == [messages[0]]
    assert count(consumer.metrics, "edw_messages_failed_total") == 1


def test_one_failed_extension_neither_cancels_nor_counts_for_the_others() -> None:
    flaky = {"m1"}
    consumer, queue, _, _ = consumer_for(
        queue=FakeQueue(fail_extend=lambda m: m.message_id in flaky), visibility_timeout_seconds=30
    )
    messages = queue.put(*(event_body(i) for i in range(3)))
    from app.consumer import Batch

    now = time.monotonic()
    batch = Batch(messages, now, now + 5, now + 5, dict.fromkeys(messages, now + 1))
    consumer._extend(batch, messages)
    assert batch.hidden_until[messages[1]] == now + 1  # not marked extended
    assert all(batch.hidden_until[m] >= now + 30 for m in (messages[0], messages[2]))
    flaky.clear()
    consumer._extend(batch, [messages[1]])  # the next tick retries just that one
    assert batch.hidden_until[messages[1]] >= now + 30
    assert [m.message_id for m, s in queue.extended] == ["m0", "m2", "m1"]


def test_the_heartbeat_retries_a_failed_extension_at_its_next_tick() -> None:
    attempts: list[float] = []

    def fail_first(message: Received) -> bool:
        attempts.append(time.monotonic())
        return len(attempts) == 1

    consumer, queue, _, _ = consumer_for(
        TableService(delay=2.5),
        queue=FakeQueue(fail_extend=fail_first),
        visibility_timeout_seconds=2,
        processing_timeout_seconds=10,
    )
    [message] = queue.put(event_body(0))
    queue.inbox.clear()  # handed to process() below, not to the started workers
    consumer.start()
    try:
        threading.Thread(target=consumer.process, args=([message],), daemon=True).start()
        deadline = time.monotonic() + 8
        while not queue.deleted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        consumer.drain(1)
    assert queue.deleted == [message]
    assert len(attempts) >= 2
    assert attempts[1] - attempts[0] <= 1.0  # a tick later, not half a visibility timeout


def test_a_released_batch_is_neither_deleted_nor_extended_by_its_worker() -> None:
    consumer, queue, _, table = consumer_for(TableService(delay=2.0), processing_timeout_seconds=1)
    messages = queue.put(*(event_body(i) for i in range(4)))
    queue.inbox.clear()  # handed to process() below, not to the started workers
    consumer.start()
    try:
        consumer.process(messages)
    finally:
        consumer.drain(1)
    assert sorted(table.rows) == ["e0", "e1", "e2", "e3"]  # written (idempotent upserts)
    assert queue.deleted == []
    assert [(m, s) for m, s in queue.extended] == [(m, 0) for m in messages]  # the release
    assert count(consumer.metrics, "edw_messages_processed_total") == 0
    assert count(consumer.metrics, "edw_messages_failed_total") == 4


def test_processed_counts_settled_messages_and_latency_each_one() -> None:
    consumer, queue, _, _ = consumer_for(
        queue=FakeQueue(fail_delete=lambda m: m.message_id == "m2"), processing_timeout_seconds=1
    )
    messages = queue.put(event_body(0), event_body(0), event_body(1))  # a duplicate event
    consumer.process(messages)
    m = consumer.metrics
    assert count(m, "edw_messages_processed_total") == 2  # m2's row is written, not deleted
    assert count(m, "edw_messages_failed_total") == 1
    assert count(m, "edw_delete_failures_total") == 1
    assert count(m, "edw_end_to_end_seconds_count") == 2  # per message, duplicates included


def test_an_event_filtered_through_an_array_of_objects_is_stored_and_counted() -> None:
    """SNS routed it by looking into the array; Event Grid would not have: the operator sees
    it in edw_events_filtered_through_arrays_total."""
    consumer, queue, _, table = consumer_for(filter_paths=("data.region", "data.items.sku"))
    bodies = [
        events.make({"items": [{"sku": "a"}], "region": "eu"}, source="s", type_="t", event_id="a"),
        events.make({"items": {"sku": "a"}, "region": ["eu"]}, source="s", type_="t", event_id="b"),
        events.make([{"region": "eu"}], source="s", type_="t", event_id="c"),
    ]
    consumer.process(queue.put(*bodies))
    assert sorted(table.rows) == ["a", "b", "c"]
    assert count(consumer.metrics, "edw_events_filtered_through_arrays_total") == 2  # a and c


def test_data_is_never_parsed_again_after_the_batch_is_settled() -> None:
    """A 5000-digit integer is valid JSON (kept as sent) but more than ``int()`` takes from text
    (Python's 4300-digit limit): looking at the event's shape afterwards must not raise and
    cost its batch-mates their metrics."""
    consumer, queue, _, table = consumer_for(filter_paths=("data.items.sku",))
    huge = (
        '{"specversion":"1.0","id":"h","source":"s","type":"t","time":"2026-01-01T00:00:00Z",'
        '"data":{"n":' + "9" * 5000 + "}}"
    )
    through = events.make({"items": [{"sku": "a"}]}, source="s", type_="t", event_id="a")
    consumer.process(queue.put(huge, through))
    assert sorted(table.rows) == ["a", "h"]
    assert table.rows["h"]["data"] == '{"n":' + "9" * 5000 + "}"
    m = consumer.metrics
    assert count(m, "edw_messages_processed_total") == 2
    assert count(m, "edw_events_filtered_through_arrays_total") == 1
    assert count(m, "edw_end_to_end_seconds_count") == 2


def test_an_unexpected_error_counts_every_message_as_failed() -> None:
    consumer, queue, _, _ = consumer_for()

    def bug(event: object) -> str | None:
        raise TypeError("bug")

    consumer.backend.table.refusal = bug  # type: ignore[method-assign]
    consumer.process(queue.put(event_body(0), event_body(1)))
    assert count(consumer.metrics, "edw_messages_failed_total") == 2
    assert queue.deleted == []


def test_liveness_fails_when_a_worker_stops_making_progress() -> None:
    stuck = threading.Event()
    queue = FakeQueue(block_receive=stuck)
    consumer = Consumer(
        settings(),
        backend(queue, FakeQueue(), table_for("aws", TableService())),
        metrics(),
        stall_seconds=0.3,
    )
    consumer.start()
    try:
        assert consumer.alive()
        assert consumer.ready()
        time.sleep(0.6)
        assert not consumer.alive()  # the receive never returned
        assert consumer.ready()
    finally:
        stuck.set()
        consumer.drain(2)


def test_readiness_needs_every_worker_running() -> None:
    consumer = Consumer(
        settings(), backend(FakeQueue(), FakeQueue(), table_for("aws", TableService())), metrics()
    )
    assert not consumer.ready()  # not started
    consumer.start()
    assert consumer.ready()
    consumer.drain(2)
    assert not consumer.ready()


def test_a_zero_wait_on_sqs_backs_off_when_idle() -> None:
    queue = FakeQueue(long_polls=True)
    consumer = Consumer(
        settings(receive_wait_seconds=0),
        backend(queue, FakeQueue(), table_for("aws", TableService())),
        metrics(),
    )
    consumer.start()
    time.sleep(1.0)
    consumer.drain(2)
    assert 3 <= queue.receives <= 8  # 50 ms doubling to 1 s, not a busy loop


def stubbed_sqs(operation: str, response: dict[str, object]) -> object:
    client = boto3.session.Session(region_name="us-east-1").client(
        "sqs", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response(operation, response)
    stubber.activate()
    return client


def test_sqs_reports_exactly_the_messages_whose_extension_failed() -> None:
    failed = [{"Id": "1", "SenderFault": True, "Code": "ReceiptHandleIsInvalid"}]
    client = stubbed_sqs(
        "change_message_visibility_batch",
        {"Successful": [{"Id": "0"}, {"Id": "2"}], "Failed": failed},
    )
    queue = aws.SqsQueue(client, "https://sqs.us-east-1.amazonaws.com/123456789012/q")
    messages = [Received(f"m{i}", "b", f"r{i}", 1) for i in range(3)]
    assert queue.extend(messages, 30) == [messages[1]]


def test_sqs_reports_exactly_the_messages_whose_delete_failed() -> None:
    client = stubbed_sqs(
        "delete_message_batch",
        {"Successful": [{"Id": "1"}], "Failed": [{"Id": "0", "SenderFault": False, "Code": "X"}]},
    )
    queue = aws.SqsQueue(client, "https://sqs.us-east-1.amazonaws.com/123456789012/q")
    messages = [Received(f"m{i}", "b", f"r{i}", 1) for i in range(2)]
    assert queue.delete(messages) == [messages[0]]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([100] * 25, [10, 10, 5]),
        ([300_000] * 4, [3, 1]),  # 1 MiB per batch, not 10 messages
        ([1_048_570, 10], [1, 1]),
        ([2_000_000, 10], [1, 1]),  # too large alone: its own batch (SQS refuses it)
    ],
)
def test_sqs_batches_respect_ten_messages_and_one_mebibyte(
    sizes: list[int], expected: list[int]
) -> None:
    entries = [{"MessageBody": "x" * size} for size in sizes]
    found = batches(entries, aws.SQS_BATCH, aws.SQS_BATCH_BYTES, aws._entry_bytes)
    assert [len(b) for b in found] == expected


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([100] * 25, [10, 10, 5]),
        ([100_000] * 4, [2, 2]),  # 256 KiB per PublishBatch call
    ],
)
def test_router_publish_batches_respect_ten_messages_and_256_kib(
    sizes: list[int], expected: list[int]
) -> None:
    client = boto3.session.Session(region_name="us-east-1").client(
        "sns", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    bodies = ["x" * size for size in sizes]
    topic = "arn:aws:sns:us-east-1:123456789012:router"
    start = 0
    for batch in expected:
        entries = [
            {"Id": str(i), "Message": b} for i, b in enumerate(bodies[start : start + batch])
        ]
        stubber.add_response(
            "publish_batch",
            {"Successful": [{"Id": e["Id"], "MessageId": f"m{e['Id']}"} for e in entries]},
            expected_params={"TopicArn": topic, "PublishBatchRequestEntries": entries},
        )
        start += batch
    stubber.activate()
    assert aws.SnsRouter(client, topic).send(bodies) == 0
    stubber.assert_no_pending_responses()  # one call per expected batch, no more
