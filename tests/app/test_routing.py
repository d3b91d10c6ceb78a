"""The router end to end: events published to it land, by content, in the right workflows' rows.

On moto the SNS topic, its raw, MessageBody-filtered subscriptions and the SQS queues are real
(moto applies the filter policies), the filter policies are the ones the stack would deploy
(components.routing), and each workflow's consumer is a real process. Event Grid has no
emulator: its publishing is checked against a fake endpoint that records what it receives, and
what it writes into a queue (Base64) against Azurite.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import azure, events, producer
from app.aws import open_router
from app.azure import EVENT_GRID_SCOPE, EventGridRouter, http_session
from app.backend import row_key
from app.routing_shape import crossed_array
from bench.emulators import REPO, AwsTarget, MotoEmulator, child_env
from bench.router import router_hop
from components.routing import parse_filter, sns_filter_policy
from tests.app.conftest import ConsumerProcess, provision, wait_until
from tests.http_replies import FakeCredential, RecordingEndpoint

pytestmark = pytest.mark.emulator
Start = Callable[[dict[str, str]], ConsumerProcess]
FAST = {"EDW_RECEIVE_WAIT_SECONDS": "1", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "10"}
# The workflows of a stack's edw:workflows, as a user writes them.
WORKFLOWS = {
    "work": None,
    "orders": {"type": ["com.example.order.created"], "data.region": ["eu", "us"]},
    "audit": {"source": {"prefix": "urn:shop:"}},
}


def event(n: int, type_: str, source: str, region: str | None) -> str:
    data = {"n": n, **({"region": region} if region else {})}
    return events.make(data, source=source, type_=type_, event_id=f"e{n:03d}")


# (type, source, region) -> which workflows must get it, worked out by hand from WORKFLOWS.
CASES = [
    (("com.example.order.created", "urn:shop:eu", "eu"), {"work", "orders", "audit"}),
    (("com.example.order.created", "urn:pos:1", "us"), {"work", "orders"}),
    (("com.example.order.created", "urn:pos:1", "apac"), {"work"}),
    (("com.example.order.created", "urn:pos:1", None), {"work"}),
    (("com.example.order.shipped", "urn:shop:us", "eu"), {"work", "audit"}),
    # Case is ignored, as Event Grid ignores it (equals-ignore-case, the prefix's case variants).
    (("com.example.ORDER.created", "urn:pos:2", "eu"), {"work", "orders"}),
    (("com.example.order.created", "URN:Shop:x", "EU"), {"work", "orders", "audit"}),
    (("com.example.order.created", "urn:shopx", "EU"), {"work", "orders"}),
]


def subscribe(moto: MotoEmulator, topic_arn: str, target: AwsTarget, raw: Any) -> None:
    queue_arn = target.sqs.get_queue_attributes(
        QueueUrl=target.queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    attributes = {"RawMessageDelivery": "true"}
    if raw is not None:
        policy = sns_filter_policy(parse_filter(raw))
        attributes |= {"FilterPolicy": json.dumps(policy), "FilterPolicyScope": "MessageBody"}
    moto.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes
    )


@pytest.fixture
def routed(
    request: pytest.FixtureRequest, moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, AwsTarget]]:
    topic_arn = moto.client("sns").create_topic(Name=f"router-{id(request)}")["TopicArn"]
    targets = {name: provision(request, "aws") for name in WORKFLOWS}
    table = targets["work"].table  # one results table for every workflow, as in a stack
    for name, target in targets.items():
        target.table = table
        target.env |= {"EDW_TABLE": table, "EDW_WORKFLOW": name}
        subscribe(moto, topic_arn, target, WORKFLOWS[name])
    # This process publishes too: to moto, as the consumers reach it.
    for key, value in targets["work"].env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return topic_arn, targets


def test_events_published_to_the_router_land_by_content_in_their_workflows_rows(
    routed: tuple[str, dict[str, AwsTarget]], start_consumer: Start
) -> None:
    topic_arn, targets = routed
    bodies = [event(n, *attrs) for n, (attrs, _) in enumerate(CASES)]
    assert open_router(topic_arn, 4, None).send(bodies) == 0
    consumers = [start_consumer({**t.env, **FAST}) for t in targets.values()]
    expected = {
        name: {f"e{n:03d}" for n, (_, gets) in enumerate(CASES) if name in gets}
        for name in WORKFLOWS
    }
    rows_wanted = sum(len(ids) for ids in expected.values())
    table = targets["work"]
    wait_until(lambda: len(table.row_ids()) == rows_wanted, 30, f"{rows_wanted} rows")
    wait_until(lambda: all(t.depth() == 0 for t in targets.values()), 10, "empty queues")

    got: dict[str, set[str]] = {name: set() for name in WORKFLOWS}
    for row in table.rows():
        got[row["workflow"]].add(row["eventId"])
        # One event routed to several workflows: one row each, keyed by the whole triple.
        assert row["id"] == row_key(row["workflow"], row["source"], row["eventId"])
    assert got == expected
    for consumer in consumers:
        assert consumer.metric("edw_messages_processed_total") >= 1
    assert all(t.dead_letters() == [] for t in targets.values())


def test_the_producer_publishes_to_the_router_by_default(
    routed: tuple[str, dict[str, AwsTarget]], start_consumer: Start
) -> None:
    """The CLI: a router known (here from EDW_ROUTER) and no queue named means the router; the
    default workflow receives every event, a filtered one only what it selected (none)."""
    topic_arn, targets = routed
    work = targets["work"]
    env = {k: v for k, v in work.env.items() if k != "EDW_QUEUE"} | {"EDW_ROUTER": topic_arn}
    produced = subprocess.run(
        [sys.executable, "-m", "app.producer", "--count", "25", "--json", "--no-progress"],
        env=child_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(produced.stdout)["sent"] == 25
    start_consumer({**work.env, **FAST})
    wait_until(lambda: len(work.row_ids()) == 25 and work.depth() == 0, 30, "25 rows")
    assert {r["workflow"] for r in work.rows()} == {"work"}
    assert targets["orders"].depth() == targets["audit"].depth() == 0


@pytest.mark.parametrize("payload_bytes", [0, 512, 4096])
def test_the_producers_events_hold_no_array_a_filter_path_could_cross(payload_bytes: int) -> None:
    """docs/routing.md: the producer counts no one-cloud-only routing because its data is flat
    (a string or a number per field), so no filter path crosses an array of objects in it."""
    for seq in range(50):
        event = json.loads(producer.body(seq, payload_bytes, "urn:edw:producer", "t"))
        data = event["data"]
        assert set(data) == {"seq", "customer", "amount_cents", "pad"}
        assert all(type(v) in (str, int) for v in data.values()), data
        paths = [f"data.{field}.x" for field in data]
        assert crossed_array(data, paths) is None


@pytest.fixture
def grid() -> Iterator[RecordingEndpoint]:
    with RecordingEndpoint("/api/events") as fake:
        yield fake


def test_event_grid_publishing_sends_cloud_events_batches_with_an_entra_token(
    grid: RecordingEndpoint,
) -> None:
    router = EventGridRouter(http_session(4), grid.url, FakeCredential(EVENT_GRID_SCOPE))
    bodies = [event(n, "t", "urn:s", "eu") for n in range(3)]
    assert router.send(bodies) == 0
    ((headers, payload),) = grid.requests
    assert headers["Content-Type"] == "application/cloudevents-batch+json; charset=utf-8"
    assert headers["Authorization"] == "Bearer entra-token"
    assert [e["id"] for e in json.loads(payload)] == ["e000", "e001", "e002"]


def test_event_grid_batches_stay_under_one_megabyte_and_a_refusal_counts_whole(
    grid: RecordingEndpoint,
) -> None:
    router = EventGridRouter(http_session(4), grid.url, FakeCredential(EVENT_GRID_SCOPE))
    big = [events.make({"pad": "x" * 300_000}, source="urn:s", type_="t") for _ in range(5)]
    assert router.send(big) == 0
    assert [len(json.loads(p)) for _, p in grid.requests] == [3, 2]
    assert all(len(p) <= azure.EVENT_GRID_BATCH_BYTES for _, p in grid.requests)
    grid.status = 401
    assert router.send(big[:2]) == 2  # Event Grid accepts or refuses a batch whole


def test_a_queue_message_as_event_grid_writes_it_is_processed(
    request: pytest.FixtureRequest, start_consumer: Start
) -> None:
    """Event Grid puts each event Base64-encoded into the queue; producers put plain JSON. Both
    become rows; Base64 of something that is not an event is set aside with its reason."""
    target = provision(request, "azure")
    grid_event = event(1, "com.example.order.created", "urn:shop:1", "eu")
    target.send(
        [
            base64.b64encode(grid_event.encode()).decode(),
            event(2, "t", "urn:s", None),
            base64.b64encode(b"not an event").decode(),
        ]
    )
    start_consumer({**target.env, **FAST})
    wait_until(lambda: len(target.row_ids()) == 2 and target.depth() == 0, 30, "2 rows")
    assert sorted(target.row_ids()) == ["e001", "e002"]
    (dead,) = target.dead_letters()
    assert dead.body == base64.b64encode(b"not an event").decode()
    assert "JSON" in dead.reason or "json" in dead.reason


def test_the_router_hop_benchmark_times_both_paths_to_the_row() -> None:
    """`make bench` part two: each timed event really reaches its row through its path (the
    clock stops only when the row reads back), so both medians are of delivered events."""
    row = router_hop(per_path=3)
    assert row["events_per_path"] == 3
    assert row["queue_median_ms"] > 0
    assert row["router_median_ms"] > 0
    # The ratio is of the unrounded medians; the printed milliseconds are rounded to 0.1 ms.
    ratio = row["router_median_ms"] / row["queue_median_ms"]
    assert row["router_over_queue"] == pytest.approx(ratio, abs=0.01)
