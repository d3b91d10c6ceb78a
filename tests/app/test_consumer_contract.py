"""The consumer's contract under partial failure, on an in-memory backend with scripted faults.

What the emulators cannot show: a write refused for one row mid-batch, a dead letter or an
extension that fails for one message only, a call that never returns.
"""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from botocore.stub import Stubber

from app import aws, events
from app.backend import Received, batches
from app.consumer import Consumer
from tests.app.fakes import (
    FakeQueue,
    FakeTable,
    backend,
    count,
    event_body,
    metrics,
    settings,
)


def consumer_for(
    table: FakeTable | None = None,
    queue: FakeQueue | None = None,
    dlq: FakeQueue | None = None,
    **changes: object,
) -> tuple[Consumer, FakeQueue, FakeQueue, FakeTable]:
    queue, dlq, table = queue or FakeQueue(), dlq or FakeQueue(), table or FakeTable()
    consumer = Consumer(settings(**changes), backend(queue, dlq, table), metrics())
    return consumer, queue, dlq, table


def test_a_refused_row_is_isolated_and_only_it_is_dead_lettered() -> None:
    consumer, queue, dlq, table = consumer_for(FakeTable(refused={"e3"}))
    messages = queue.put(*(event_body(i) for i in range(10)))
    consumer.process(messages)
    assert sorted(table.rows) == sorted(f"e{i}" for i in range(10) if i != 3)
    [(dead, reason)] = dlq.sent
    assert dead is messages[3]
    assert reason == "ValidationException: row e3 has an invalid attribute"
    assert queue.deleted == [m for m in messages if m is not messages[3]] + [messages[3]]
    assert table.writes[0] == [f"e{i}" for i in range(10)]  # whole batch first, then halves
    assert ["e3"] in table.writes
    m = consumer.metrics
    assert (count(m, "edw_messages_processed_total"), count(m, "edw_messages_failed_total")) == (
        9,
        0,
    )
    assert count(m, "edw_messages_dead_lettered_total") == 1


def test_an_outage_is_retried_in_place_and_costs_no_delivery() -> None:
    ends = time.monotonic() + 0.6
    consumer, queue, dlq, table = consumer_for(FakeTable(outage=lambda: time.monotonic() < ends))
    messages = queue.put(*(event_body(i) for i in range(5)), deliveries=5)  # last delivery
    consumer.process(messages)
    assert sorted(table.rows) == [f"e{i}" for i in range(5)]
    assert dlq.sent == []
    assert queue.deleted == messages
    assert len(table.writes) > 1  # retried, with backoff, within the same batch
    assert count(consumer.metrics, "edw_messages_failed_total") == 0


def test_an_outage_past_the_deadline_dead_letters_only_last_deliveries() -> None:
    consumer, queue, dlq, _ = consumer_for(
        FakeTable(outage=lambda: True), processing_timeout_seconds=1, max_deliveries=5
    )
    early = queue.put(event_body(1), deliveries=2)
    last = queue.put(event_body(2), deliveries=5)
    consumer.process(early + last)
    [(dead, reason)] = dlq.sent
    assert dead is last[0]
    assert reason == "delivery 5 of 5 failed: ConnectionError: table unreachable"
    assert queue.deleted == last  # the early one stays for its next delivery
    assert count(consumer.metrics, "edw_messages_failed_total") == 1


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
    batch = Batch(messages, now, now + 5, dict.fromkeys(messages, now + 1))
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
        FakeTable(delay=2.5),
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
    consumer, queue, _, table = consumer_for(FakeTable(delay=2.0), processing_timeout_seconds=1)
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


def test_an_unexpected_error_counts_every_message_as_failed() -> None:
    class Broken(FakeTable):
        def refusal(self, event: object) -> str | None:
            raise TypeError("bug")

    consumer, queue, _, _ = consumer_for(Broken())
    consumer.process(queue.put(event_body(0), event_body(1)))
    assert count(consumer.metrics, "edw_messages_failed_total") == 2
    assert queue.deleted == []


def test_liveness_fails_when_a_worker_stops_making_progress() -> None:
    stuck = threading.Event()
    queue = FakeQueue(block_receive=stuck)
    consumer = Consumer(
        settings(), backend(queue, FakeQueue(), FakeTable()), metrics(), stall_seconds=0.3
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
    consumer = Consumer(settings(), backend(FakeQueue(), FakeQueue(), FakeTable()), metrics())
    assert not consumer.ready()  # not started
    consumer.start()
    assert consumer.ready()
    consumer.drain(2)
    assert not consumer.ready()


def test_a_zero_wait_on_sqs_backs_off_when_idle() -> None:
    queue = FakeQueue(long_polls=True)
    consumer = Consumer(
        settings(receive_wait_seconds=0), backend(queue, FakeQueue(), FakeTable()), metrics()
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
