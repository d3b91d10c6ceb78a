"""The handler contract (docs/handlers.md) against real processes on both emulators: the consumer
(``python -m app.consumer``), a handler (tests.app.handler_server, scripted while it runs) and
the router (moto's SNS -> SQS; on Azure the Event Grid stand-in, bench/event_grid.py, writing
into Azurite queues)."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import events
from app.azure import event_grid_text
from app.handler import emitted_id
from bench.chain import HandlerProcess, Workflow, router
from bench.emulators import Target, free_port
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
FAST = {"EDW_RECEIVE_WAIT_SECONDS": "1", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "5"}
WORKFLOW = "orders"
NEXT_TYPE = "com.example.next"


@dataclass
class Rig:
    """One workflow with a handler, and the next workflow its emitted events reach."""

    cloud: str
    trigger: Target
    downstream: Target
    router: str
    tmp: Path
    handler: HandlerProcess
    received: list[dict[str, Any]] = field(default_factory=list)  # the next workflow's events

    def script(self, **script: Any) -> None:
        path = self.tmp / "script.json"
        path.write_text(json.dumps(script))

    def requests(self) -> list[dict[str, str]]:
        log = self.tmp / "requests.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **self.trigger.env,
            **FAST,
            "EDW_WORKFLOW": WORKFLOW,
            "EDW_HANDLER_URL": self.handler.url,
            "EDW_ROUTER": self.router,
            **extra,
        }

    def emitted(self) -> list[dict[str, Any]]:
        """Every event the next workflow's queue got so far (read and removed)."""
        target: Any = self.downstream
        if self.cloud == "aws":
            while batch := target.sqs.receive_message(
                QueueUrl=target.queue_url, MaxNumberOfMessages=10
            ).get("Messages"):
                for m in batch:
                    self.received.append(json.loads(m["Body"]))
                    target.sqs.delete_message(
                        QueueUrl=target.queue_url, ReceiptHandle=m["ReceiptHandle"]
                    )
        else:
            for m in target.queue.receive_messages(messages_per_page=32):
                self.received.append(json.loads(event_grid_text(m.content)))
                target.queue.delete_message(m)
        return self.received


@pytest.fixture(params=CLOUDS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    cloud = request.param
    trigger, downstream = provision(request, cloud), provision(request, cloud)
    emulator = request.getfixturevalue("moto" if cloud == "aws" else "azurite")
    with router(emulator, [Workflow("next", downstream, {"type": [NEXT_TYPE]})]) as address:
        command = [sys.executable, "-m", "tests.app.handler_server", str(tmp_path / "script.json")]
        command.append(str(tmp_path / "requests.jsonl"))
        handler = HandlerProcess(command, free_port(), tmp_path / "handler.log")
        rig = Rig(cloud, trigger, downstream, address, tmp_path, handler)
        rig.script(then={"status": 204})
        yield rig
        handler.stop()


def calls(consumer: ConsumerProcess, outcome: str) -> float:
    _, text = consumer.get("/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "edw_handler_calls_total" and sample.labels["outcome"] == outcome:
                return sample.value
    return 0.0


def event(event_id: str, **data: Any) -> str:
    return events.make(
        data or {"n": 1}, source="urn:shop", type_="com.example.t", event_id=event_id
    )


def started(rig: Rig, start_consumer: Start, **extra: str) -> ConsumerProcess:
    rig.handler.start()
    consumer = start_consumer(rig.env(**extra))
    consumer.wait_ready()
    return consumer


def stored(rig: Rig, n: int) -> list[dict[str, str]]:
    wait_until(lambda: len(rig.trigger.row_ids()) == n, 30, f"{n} rows")
    wait_until(lambda: rig.trigger.depth() == 0, 30, "an empty work queue")
    return rig.trigger.rows()


def test_a_2xx_without_a_body_stores_the_event_sent_structured_and_exact(
    rig: Rig, start_consumer: Start
) -> None:
    rig.script(answers=[{"status": 200}], then={"status": 204})
    bodies = [event("e1"), event("e2", text="ü \\u00e9 1.50")]
    consumer = started(rig, start_consumer)
    rig.trigger.send(bodies)
    rows = stored(rig, 2)
    assert all("result" not in r and "emitted" not in r for r in rows)
    requests = rig.requests()
    assert sorted(r["body"] for r in requests) == sorted(bodies)  # the event's exact text
    assert {r["type"] for r in requests} == {"application/cloudevents+json; charset=utf-8"}
    assert rig.trigger.dead_letters() == []
    assert calls(consumer, "ok") == 2


def test_a_json_object_answer_is_the_rows_result(rig: Rig, start_consumer: Start) -> None:
    result = '{"shipped": true, "cost": 12.50}'
    rig.script(then={"status": 200, "type": "application/json", "body": result})
    started(rig, start_consumer)
    rig.trigger.send([event("e1")])
    (row,) = stored(rig, 1)
    assert row["result"] == result  # the handler's text, numbers as written
    assert row["data"] == '{"n":1}'  # the event as without a handler


def test_one_emitted_event_reaches_the_next_workflow_with_a_derived_id(
    rig: Rig, start_consumer: Start
) -> None:
    emitted = {"specversion": "1.0", "type": NEXT_TYPE, "data": {"total": 10.10}}
    rig.script(
        then={"status": 201, "type": "application/cloudevents+json", "body": json.dumps(emitted)}
    )
    consumer = started(rig, start_consumer)
    trigger = event("e1")
    rig.trigger.send([trigger])
    (row,) = stored(rig, 1)
    wait_until(lambda: len(rig.emitted()) == 1, 20, "the emitted event at the next workflow")
    (got,) = rig.received
    expected_id = emitted_id(WORKFLOW, events.parse(trigger), 0)
    assert got["id"] == expected_id
    assert got["source"] == f"urn:edw:workflow:{WORKFLOW}"
    assert got["data"] == {"total": 10.10}
    assert json.loads(row["emitted"]) == [expected_id]
    assert consumer.metric("edw_events_emitted_total") == 1


def test_several_emitted_events_are_published_and_recorded(rig: Rig, start_consumer: Start) -> None:
    batch = [
        {"specversion": "1.0", "type": NEXT_TYPE, "data": {"line": 1}},
        {"specversion": "1.0", "type": NEXT_TYPE, "id": "own-id", "source": "urn:mine"},
        {"specversion": "1.0", "type": "com.example.elsewhere"},  # no workflow takes it
    ]
    rig.script(
        then={
            "status": 200,
            "type": "application/cloudevents-batch+json",
            "body": json.dumps(batch),
        }
    )
    consumer = started(rig, start_consumer)
    trigger = event("e1")
    rig.trigger.send([trigger])
    (row,) = stored(rig, 1)
    wait_until(lambda: len(rig.emitted()) == 2, 20, "two emitted events at the next workflow")
    parsed = events.parse(trigger)
    ids = [emitted_id(WORKFLOW, parsed, 0), "own-id", emitted_id(WORKFLOW, parsed, 2)]
    assert json.loads(row["emitted"]) == ids
    assert sorted(e["id"] for e in rig.received) == sorted(ids[:2])
    assert {e["source"] for e in rig.received} == {f"urn:edw:workflow:{WORKFLOW}", "urn:mine"}
    assert consumer.metric("edw_events_emitted_total") == 3


def test_a_4xx_dead_letters_that_event_alone_with_the_status_and_a_kib_of_body(
    rig: Rig, start_consumer: Start
) -> None:
    refusal = "invalid order: " + "x" * 2000
    rig.script(
        by_id={"bad": {"status": 422, "type": "text/plain", "body": refusal}},
        then={"status": 204},
    )
    consumer = started(rig, start_consumer)
    bad = event("bad")
    rig.trigger.send([event("good1"), bad, event("good2")])
    wait_until(lambda: len(rig.trigger.row_ids()) == 2, 30, "the two good rows")
    (dead,) = dead_letters(rig, 1)
    assert dead.body == bad
    # The status and the body's first KiB, whole (the reason holds app.backend.MAX_REASON_CHARS).
    assert dead.reason == f"handler answered 422: {refusal[:1024]}"
    assert sorted(rig.trigger.row_ids()) == ["good1", "good2"]
    assert calls(consumer, "rejected") == 1


def dead_letters(rig: Rig, n: int) -> list[Any]:
    found: list[Any] = []

    def enough() -> bool:
        found.extend(rig.trigger.dead_letters())  # each read removes what it returns
        return len(found) >= n

    wait_until(enough, 30, f"{n} dead letters")
    return found


def test_408_429_and_5xx_are_retried_and_never_dead_lettered(
    rig: Rig, start_consumer: Start
) -> None:
    failing = [{"status": s, "body": "busy"} for s in (408, 429, 500, 503)]
    rig.script(answers=failing, then={"status": 204})
    consumer = started(rig, start_consumer)
    rig.trigger.send([event("e1")])
    stored(rig, 1)
    assert calls(consumer, "failed") == 4
    assert calls(consumer, "ok") == 1
    assert rig.trigger.dead_letters() == []
    assert "handler failing: breaker open, receiving paused" in consumer.output()


def test_a_handler_slower_than_the_batch_times_out_and_the_event_comes_back(
    rig: Rig, start_consumer: Start
) -> None:
    """Processing timeout 2 s: the call's deadline is the batch's write time (1.5 s); the event
    goes back as a fresh copy (never dead-lettered) and is handled once the handler is fast."""
    rig.script(answers=[{"status": 204, "delay": 5}], then={"status": 204})
    consumer = started(rig, start_consumer, EDW_PROCESSING_TIMEOUT_SECONDS="2")
    rig.trigger.send([event("e1")])
    (row,) = stored(rig, 1)
    assert row["eventId"] == "e1"
    assert calls(consumer, "timeout") == 1
    assert consumer.metric("edw_messages_requeued_total") == 1
    assert rig.trigger.dead_letters() == []


def test_a_handler_down_then_up_loses_nothing_and_dead_letters_nothing(
    rig: Rig, start_consumer: Start
) -> None:
    consumer = start_consumer(rig.env(EDW_PROCESSING_TIMEOUT_SECONDS="2"))
    wait_until(
        lambda: "waiting for the handler to accept connections" in consumer.output(),
        20,
        "the consumer to wait for its handler",
    )
    rig.trigger.send([event("before")])
    wait_until(lambda: rig.trigger.depth() == 1, 10, "the event on the queue")
    assert rig.requests() == []
    assert rig.trigger.row_ids() == []
    rig.handler.start()
    consumer.wait_ready()
    stored(rig, 1)
    # Down while it runs: refused connections, fresh copies, an open breaker; never a dead letter.
    rig.handler.kill()
    rig.trigger.send([event("during")])
    wait_until(lambda: calls(consumer, "unreachable") >= 2, 20, "calls that find no handler")
    assert "handler failing: breaker open, receiving paused" in consumer.output()
    rig.handler.start()
    assert sorted(r["eventId"] for r in stored(rig, 2)) == ["before", "during"]
    assert rig.trigger.dead_letters() == []
    assert "handler works again (a row was written): breaker closed" in consumer.output()


def test_a_2xx_whose_body_does_not_match_its_type_is_a_defect_dead_lettered(
    rig: Rig, start_consumer: Start
) -> None:
    answers = {
        "plain": {"status": 200, "type": "text/plain", "body": "done"},
        "array": {"status": 200, "type": "application/json", "body": "[1, 2]"},
        "notce": {"status": 200, "type": "application/cloudevents+json", "body": '{"type": "x"}'},
        "notjson": {"status": 200, "type": "application/cloudevents-batch+json", "body": "[{"},
    }
    rig.script(by_id=answers)
    consumer = started(rig, start_consumer)
    rig.trigger.send([event(i) for i in answers])
    reasons = {json.loads(d.body)["id"]: d.reason for d in dead_letters(rig, 4)}
    assert reasons["plain"].startswith("handler answered 200 with text/plain: a body of content")
    assert reasons["array"] == (
        "handler answered 200 with application/json: the body is JSON but not an object"
    )
    assert re.match(
        r"handler answered 200 with application/cloudevents\+json: emitted event 0 is not a "
        r"CloudEvent: specversion must be '1.0'",
        reasons["notce"],
    )
    assert "the body is not JSON" in reasons["notjson"]
    assert rig.trigger.row_ids() == []
    assert rig.emitted() == []
    assert calls(consumer, "defect") == 4


def unreachable_table(rig: Rig) -> dict[str, str]:
    """The consumer's environment with the table at a port where nothing listens."""
    return table_at(rig.cloud, rig.trigger.env, f"http://127.0.0.1:{free_port()}")


def test_a_crash_between_emit_and_delete_publishes_the_same_ids_again_and_one_row(
    rig: Rig, start_consumer: Start
) -> None:
    emitted = [{"specversion": "1.0", "type": NEXT_TYPE}, {"specversion": "1.0", "type": NEXT_TYPE}]
    rig.script(
        then={
            "status": 200,
            "type": "application/cloudevents-batch+json",
            "body": json.dumps(emitted),
        }
    )
    # The first consumer publishes, then cannot write the row (its table is unreachable), and
    # is killed: the message was neither stored nor deleted.
    first = started(
        rig, start_consumer, EDW_VISIBILITY_TIMEOUT_SECONDS="3", **unreachable_table(rig)
    )
    rig.trigger.send([event("e1")])
    wait_until(lambda: len(rig.emitted()) == 2, 20, "the first publication")
    first.signal(signal.SIGKILL)
    first.wait(10)
    assert rig.trigger.row_ids() == []
    # The message comes back to a healthy consumer: the handler answers the same, the same ids
    # are published again, and the event has one row.
    second = start_consumer(rig.env())
    second.wait_ready()
    (row,) = stored(rig, 1)
    wait_until(lambda: len(rig.emitted()) == 4, 20, "the second publication")
    first_ids = [e["id"] for e in rig.received[:2]]
    assert sorted(e["id"] for e in rig.received[2:]) == sorted(first_ids)
    assert sorted(json.loads(row["emitted"])) == sorted(first_ids)


def router_port(rig: Rig) -> int:
    """The port the router listens on: moto's (SNS) or the Event Grid stand-in's."""
    address = rig.env().get("AWS_ENDPOINT_URL", rig.router)
    return int(re.search(r"127\.0\.0\.1:(\d+)", address)[1])  # type: ignore[index]


def router_at(rig: Rig, port: int) -> dict[str, str]:
    """The consumer's environment reaching the router at ``port`` on loopback (a link to it,
    or a server that never answers)."""
    if rig.cloud == "aws":  # botocore's per-service endpoint: only SNS goes there
        return {"AWS_ENDPOINT_URL_SNS": f"http://127.0.0.1:{port}"}
    return {"EDW_ROUTER": rig.router.replace(f":{router_port(rig)}/", f":{port}/")}


def test_a_failing_router_holds_the_event_and_never_dead_letters_it(
    rig: Rig, start_consumer: Start
) -> None:
    """The handler answers with an event to publish while the router is unreachable: nothing is
    stored or deleted (the row would claim an emission that did not happen), the breaker opens
    for the router, the message outlives the batch's time as a fresh copy, and once the router
    is back the event is published and stored once."""
    emitted = {"specversion": "1.0", "type": NEXT_TYPE}
    rig.script(
        then={"status": 200, "type": "application/cloudevents+json", "body": json.dumps(emitted)}
    )
    with CuttingProxy(router_port(rig)) as link:
        link.cut()
        consumer = started(
            rig, start_consumer, EDW_PROCESSING_TIMEOUT_SECONDS="2", **router_at(rig, link.port)
        )
        rig.trigger.send([event("e1")])
        wait_until(
            lambda: "router failing: breaker open, receiving paused" in consumer.output(),
            20,
            "the breaker to open for the router",
        )
        # Down past the batch's time (2 s): the message goes back as a fresh copy.
        wait_until(lambda: consumer.metric("edw_messages_requeued_total") >= 1, 20, "a fresh copy")
        assert rig.trigger.row_ids() == []
        assert rig.emitted() == []
        assert rig.trigger.dead_letters() == []
        link.restore()
        (row,) = stored(rig, 1)
        wait_until(lambda: len(rig.emitted()) == 1, 20, "the emitted event at the next workflow")
    assert json.loads(row["emitted"]) == [rig.received[0]["id"]]
    assert rig.trigger.dead_letters() == []
    assert consumer.metric("edw_messages_dead_lettered_total") == 0
    assert "router works again (a row was written): breaker closed" in consumer.output()


@pytest.mark.parametrize("failing", ["handler", "router"])
def test_a_copy_over_the_limit_is_set_aside_naming_what_failed(
    rig: Rig, start_consumer: Start, failing: str
) -> None:
    """The one way an outage dead-letters: a message put back EDW_MAX_COPIES times. Its reason
    names what failed, the handler or the router (not the table, which never failed)."""
    if failing == "handler":
        rig.script(then={"status": 503, "body": "down"})
    else:
        emitted = json.dumps({"specversion": "1.0", "type": NEXT_TYPE})
        rig.script(then={"status": 200, "type": "application/cloudevents+json", "body": emitted})
    with CuttingProxy(router_port(rig)) as link:
        link.cut()
        env = {"EDW_PROCESSING_TIMEOUT_SECONDS": "2", "EDW_MAX_COPIES": "1"}
        consumer = started(rig, start_consumer, **env, **router_at(rig, link.port))
        rig.trigger.send([event("e1")])
        (dead,) = dead_letters(rig, 1)
    assert json.loads(dead.body)["id"] == "e1"
    assert dead.reason == (
        f"the {failing} could not take it after 1 fresh copies (limit EDW_MAX_COPIES=1); "
        f"the {failing} is still failing"
    )
    assert consumer.metric("edw_messages_over_copy_limit_total") == 1
    assert rig.trigger.row_ids() == []


def test_a_router_that_never_answers_never_outlasts_the_batch(
    rig: Rig, start_consumer: Start, silent_server: SilentServer
) -> None:
    """A publish attempt ends before the batch's processing time does (it may start until the
    write deadline, 1.5 s of 2, and waits at most 0.8 of the 0.5 s left): the event goes back as
    a fresh copy. Were the batch released instead, its deliveries would count up to the DLQ."""
    emitted = json.dumps({"specversion": "1.0", "type": NEXT_TYPE})
    rig.script(then={"status": 200, "type": "application/cloudevents+json", "body": emitted})
    env = router_at(rig, silent_server.port)
    consumer = started(rig, start_consumer, EDW_PROCESSING_TIMEOUT_SECONDS="2", **env)
    rig.trigger.send([event("e1")])
    wait_until(lambda: consumer.metric("edw_messages_requeued_total") >= 2, 15, "fresh copies")
    assert "releasing batch" not in consumer.output()
    assert rig.trigger.dead_letters() == []
    assert rig.trigger.row_ids() == []
