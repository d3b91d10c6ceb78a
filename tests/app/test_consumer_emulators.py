"""The consumer against real emulators: moto (SQS + DynamoDB) and Azurite (Queue + Table)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest

from app import events
from bench.emulators import REPO, Target, azurite_connection_string, child_env
from tests.app.conftest import ConsumerProcess, provision, wait_until
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
    if target.cloud == "aws":
        big = events.make({"blob": "x" * 420_000}, source="urn:test", type_="t", event_id="big")
        limit = "row too large for DynamoDB"
    else:
        big = events.make({"blob": '"' * 30_000}, source="urn:test", type_="t", event_id="big")
        limit = "row too large for Azure Table: property 'data'"
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


def test_a_table_that_never_answers_spends_the_budget_with_the_error_as_reason(
    target: Target, start_consumer: Start
) -> None:
    """Every delivery fails for a reason outside the message (no such table): it is retried in
    place within the processing timeout, and on its last allowed delivery it is set aside with
    the error, not silently by the redrive."""
    _, (body,) = make_events(1)
    target.send([body])
    env = {
        **target.env,
        **FAST,
        "EDW_TABLE": "missingtable",
        "EDW_MAX_DELIVERIES": "2",
        "EDW_PROCESSING_TIMEOUT_SECONDS": "1",
        "EDW_VISIBILITY_TIMEOUT_SECONDS": "2",
    }
    consumer = start_consumer(env)
    consumer.wait_ready()
    wait_until(lambda: target.depth() == 0, 30, "the message to leave the work queue")
    assert consumer.metric("edw_messages_failed_total") == 1  # the first delivery
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0

    (letter,) = target.dead_letters()
    assert letter.body == body
    assert letter.reason.startswith("delivery 2 of 2 failed: "), letter.reason


def test_the_producer_sends_large_events_within_the_batch_limit(
    request: pytest.FixtureRequest,
) -> None:
    """SQS refuses a SendMessageBatch over 1 MiB in total: batches are split by size too."""
    target = provision(request, "aws")
    produced = subprocess.run(
        [
            *(sys.executable, "-m", "app.producer", "--count", "8"),
            *("--payload-bytes", "300000", "--json", "--no-progress"),
        ],
        env=child_env(target.env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert produced.returncode == 0, produced.stderr
    assert json.loads(produced.stdout)["sent"] == 8
    assert target.depth() == 8


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
        if cloud == "aws":
            moto = request.getfixturevalue("moto")
            proxy = stack.enter_context(CuttingProxy(moto.port))
            target = provision(request, "aws")
            env.update(target.env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
            links = [proxy, proxy]  # one endpoint serves SQS and DynamoDB
        else:
            azurite = request.getfixturevalue("azurite")
            queue = stack.enter_context(CuttingProxy(azurite.ports["queue"]))
            table = stack.enter_context(CuttingProxy(azurite.ports["table"]))
            target = azurite.provision(
                f"cut{uuid.uuid4().hex[:8]}", azurite_connection_string(queue.port, table.port)
            )
            env.update(target.env)
            links = [table, queue]  # the table blip first, then the queue
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
