"""Row identity and what a row keeps, on moto and Azurite, with the consumer as a real process:
rows are keyed by (workflow, source, id), any id the CloudEvents spec allows is stored, ``data``
is kept as the exact text sent, each Cosmos row is a partition of its own, and bodies that are
no event this consumer accepts are set aside with a reason that says why."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from app.backend import row_key
from bench.emulators import MotoEmulator, Target
from tests.app.conftest import ConsumerProcess, provision

pytestmark = pytest.mark.emulator
Start = Callable[[dict[str, str]], ConsumerProcess]
# Job mode: the consumer exits 0 by itself once nothing is left (tests/app/test_consumer_jobs.py).
JOB = {
    "EDW_RECEIVE_WAIT_SECONDS": "1",
    "EDW_SHUTDOWN_TIMEOUT_SECONDS": "10",
    "EDW_EXIT_WHEN_IDLE_SECONDS": "2",
    "EDW_CONCURRENCY": "1",
}


def cloud_event(
    event_id: str, source: str = "urn:test", data: str | None = None, **extra: Any
) -> str:
    """Structured-mode JSON built by hand, so that ``data`` is exactly the text given."""
    attributes = {"specversion": "1.0", "id": event_id, "source": source, "type": "t", **extra}
    text = json.dumps(attributes, ensure_ascii=False)
    return text if data is None else f'{text[:-1]},"data":{data}}}'


def run_job(target: Target, start_consumer: Start, **env: str) -> ConsumerProcess:
    job = start_consumer({**target.env, **JOB, **env})
    assert job.wait(60) == 0, job.output()
    assert target.depth() == 0
    return job


def rows_by_event(target: Target) -> dict[tuple[str, str], dict[str, str]]:
    rows = target.rows()
    by_event = {(r["source"], r["eventId"]): r for r in rows}
    assert len(by_event) == len(rows), "two rows for one event"
    return by_event


def test_events_that_share_an_id_but_not_a_source_are_two_rows(
    target: Target, start_consumer: Start
) -> None:
    """CloudEvents makes source + id unique, not id: both events are stored, in one batch
    (the duplicate of one of them collapses into its row, the other is not dropped)."""
    a = cloud_event("order-1", "urn:shop:a", '{"from":"a"}')
    b = cloud_event("order-1", "urn:shop:b", '{"from":"b"}')
    target.send([a, b, a])
    run_job(target, start_consumer)

    assert len(target.rows()) == 2
    rows = rows_by_event(target)
    assert set(rows) == {("urn:shop:a", "order-1"), ("urn:shop:b", "order-1")}
    assert rows["urn:shop:a", "order-1"]["data"] == '{"from":"a"}'
    assert rows["urn:shop:b", "order-1"]["data"] == '{"from":"b"}'
    assert target.dead_letters() == []


def test_a_prefixed_id_and_another_workflow_do_not_share_a_row(
    target: Target, start_consumer: Start
) -> None:
    """Event ``orders:123`` in workflow ``work`` and event ``123`` in workflow ``orders`` were
    both keyed ``orders:123``; the key now covers the whole triple. One table, as in a stack."""
    target.send([cloud_event("orders:123", data='"work"')])
    run_job(target, start_consumer)
    target.send([cloud_event("123", data='"orders"')])
    run_job(target, start_consumer, EDW_WORKFLOW="orders")

    assert len(target.rows()) == 2
    rows = {(r["workflow"], r["eventId"]): r for r in target.rows()}
    assert set(rows) == {("work", "orders:123"), ("orders", "123")}
    assert rows["work", "orders:123"]["data"] == '"work"'
    assert rows["orders", "123"]["data"] == '"orders"'
    for (workflow, event_id), row in rows.items():
        assert row["id"] == row_key(workflow, "urn:test", event_id)


SPEC_VALID_IDS = [
    "a/b",
    "c\\d",
    "e#f",
    "g?h",
    "x" * 300,  # past the old 255-character limit
    "東" * 90,  # 90 characters, 270 bytes: past Cosmos DB for Table's 255-byte RowKey
    "é" * 600,  # 1,200 bytes: past Azure Table's 1 KiB key
]


def test_every_id_the_spec_allows_and_long_extension_names_are_stored(
    target: Target, start_consumer: Start
) -> None:
    """Ids with characters table keys forbid or longer than a key may be are stored as they
    are (the key is a digest); extension names past the 20 characters the spec advises too."""
    long_name = "comexampleextensionattribute"
    bodies = [cloud_event(i, data="1") for i in SPEC_VALID_IDS]
    bodies.append(cloud_event("ext", **{long_name: "v"}))
    target.send(bodies)
    run_job(target, start_consumer)

    assert target.dead_letters() == []
    rows = rows_by_event(target)
    assert sorted(i for _, i in rows) == sorted([*SPEC_VALID_IDS, "ext"])
    assert json.loads(rows["urn:test", "ext"]["extensions"]) == {long_name: "v"}
    for (source, event_id), row in rows.items():
        assert row["id"] == row_key("work", source, event_id)
        assert row["workflow"] == "work"


def test_data_is_stored_as_the_exact_json_text_sent(target: Target, start_consumer: Start) -> None:
    """Parsing and re-serialising rounded 12345678901234567.25 and dead-lettered 1e400; an
    absent ``data`` was stored as null. Spacing, escapes and number forms are kept too."""
    sent = {
        "float": "12345678901234567.25",
        "huge": "1e400",
        "text": '{ "name" : "Zo\\u00eb",\n  "n": [1.0, -0, 1E+2] }',
        "null": "null",  # an explicit null payload (JSON format 1.0.2, 3.1.1)
    }
    target.send([*(cloud_event(k, data=v) for k, v in sent.items()), cloud_event("none")])
    run_job(target, start_consumer)

    assert target.dead_letters() == []
    rows = rows_by_event(target)
    assert {i: r["data"] for (_, i), r in rows.items() if i in sent} == sent
    assert "data" not in rows["urn:test", "none"]


def test_each_row_is_a_partition_of_its_own(target: Target, start_consumer: Start) -> None:
    """Cosmos DB caps a logical partition at 20 GB and 8 fixed partition keys capped the table
    near 160 GB: now every row is its own partition, so the table grows with the data. The key
    is the same on both clouds."""
    ids = [f"p-{i:03d}" for i in range(40)]
    target.send([cloud_event(i) for i in ids])
    run_job(target, start_consumer)

    rows = target.rows()
    assert len({r["partition" if target.cloud == "azure" else "id"] for r in rows}) == len(ids)
    assert sorted(r["eventId"] for r in rows) == ids
    for row in rows:
        assert row["id"] == row_key("work", "urn:test", row["eventId"])
        if target.cloud == "azure":
            assert row["partition"] == row["id"]


REFUSED = {
    '{"specversion":"1.0","id":"d","id":"e","source":"s","type":"t"}': "'id' appears twice",
    '{"specversion":"1.0","id":"f","source":"s","type":"t","data":{"k":1,"k":2}}': "'k' appears",
    cloud_event("g", time="\uff12\uff10\uff12\uff16-01-02T03:04:05Z"): "'time' is not RFC 3339",
    cloud_event("h", time="2026-01-02T03:04:05Z\n"): "'time' is not RFC 3339",
    cloud_event("i", **{"Ext": 1}): "'Ext' is not lower-case ASCII letters or digits",
    cloud_event("j\u0007"): "'id' holds a control character",
}


def test_bodies_that_are_no_acceptable_event_are_set_aside_with_the_reason(
    target: Target, start_consumer: Start
) -> None:
    target.send([*REFUSED, cloud_event("ok")])
    run_job(target, start_consumer)

    assert target.row_ids() == ["ok"]
    letters = {d.body: d.reason for d in target.dead_letters()}
    assert set(letters) == set(REFUSED)
    for body, reason in REFUSED.items():
        assert reason in letters[body], (body, letters[body])


def test_an_sns_envelope_is_set_aside_as_one(
    request: pytest.FixtureRequest, moto: MotoEmulator, start_consumer: Start
) -> None:
    """A topic subscription without raw message delivery wraps every event in SNS's envelope:
    the reason says so, instead of "specversion must be '1.0', got None"."""
    target = provision(request, "aws")
    sns = moto.client("sns")
    topic = sns.create_topic(Name=f"plain-{target.table}")["TopicArn"]
    queue_arn = target.sqs.get_queue_attributes(
        QueueUrl=target.queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)  # raw delivery off
    sns.publish(TopicArn=topic, Message=cloud_event("wrapped"))
    run_job(target, start_consumer)

    assert target.row_ids() == []
    (letter,) = target.dead_letters()
    assert json.loads(letter.body)["Type"] == "Notification"
    assert "SNS notification envelope" in letter.reason
    assert "RawMessageDelivery" in letter.reason
