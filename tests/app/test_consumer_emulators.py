"""The consumer against real emulators: moto (SQS + DynamoDB) and Azurite (Queue + Table)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from app import events
from bench.emulators import REPO, Target, child_env
from tests.app.conftest import ConsumerProcess, wait_until

pytestmark = pytest.mark.emulator
Start = Callable[[dict[str, str]], ConsumerProcess]
FAST = {"EDW_RECEIVE_WAIT_SECONDS": "1", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "10"}


def make_events(n: int) -> tuple[list[str], list[str]]:
    ids = [f"evt-{i:05d}" for i in range(n)]
    bodies = [
        events.make({"seq": i}, source="urn:test", type_="t", event_id=e) for i, e in enumerate(ids)
    ]
    return ids, bodies


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
        json.dumps({"specversion": "1.0", "id": "c/d", "source": "s", "type": "t"}): "'id'",
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


def test_azure_message_over_delivery_limit_goes_to_poison(
    request: pytest.FixtureRequest, start_consumer: Start
) -> None:
    from tests.app.conftest import provision

    target = provision(request, "azure")
    _, (body,) = make_events(1)
    target.send([body])
    for _ in range(3):  # deliver it three times without settling it
        (message,) = list(target.queue.receive_messages(max_messages=1))
        target.queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)
    consumer = start_consumer({**target.env, **FAST, "EDW_MAX_DELIVERIES": "3"})
    consumer.wait_ready()
    wait_until(lambda: target.depth() == 0, 20, "the work queue to empty")
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0

    assert target.row_ids() == []
    (letter,) = target.dead_letters()
    assert letter.body == body
    assert letter.reason == "delivered 4 times (limit 3)"


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
