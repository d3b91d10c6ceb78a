"""Nothing is lost in a recovery: replay moves every queue of a stack to its counterpart, refuses
to start or to call a stack safe to destroy while anything is left, and each kind of dead letter
goes back, with its original content, idempotently (moto and Azurite; Event Grid against a
recording endpoint)."""

from __future__ import annotations

import base64
import functools
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app import events
from app.azure import EVENT_GRID_SCOPE, EventGridRouter, http_session, open_queue, poison_envelope
from app.backend import Received
from app.backend import open_queue as open_any_queue
from bench.emulators import AwsTarget, AzureTarget, AzuriteEmulator, MotoEmulator
from components.routing import parse_filter, sns_filter_policy
from tests.app.conftest import provision
from tests.http_replies import FakeCredential, RecordingEndpoint
from tools import redrive, replay
from tools.inventory import inventory

pytestmark = pytest.mark.emulator
WORKFLOWS = ("work", "orders")
WEBHOOKS = ("partner",)


@pytest.fixture(autouse=True)
def aws_env(moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process reaches moto as the tools would reach SQS and SNS. moto is one server, so
    an empty short poll means an empty queue: no need for the tools' long poll."""
    monkeypatch.setattr(replay, "WAIT_SECONDS", 0)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.endpoint,
    }.items():
        monkeypatch.setenv(key, value)


@functools.cache
def cloud_event(n: int, type_: str = "com.example.order.created", region: str = "eu") -> str:
    return events.make({"n": n, "region": region}, source="urn:shop", type_=type_, event_id=f"e{n}")


@dataclass
class Stack:
    """One stack's queues on an emulator and the outputs `pulumi stack output --json` gives."""

    cloud: str
    outputs: dict[str, Any]
    workflows: dict[str, Any]
    hooks: dict[str, str] = field(default_factory=dict)  # AWS webhook DLQ URLs
    container: Any = None  # Azure dead-letter blobs

    def save(self, path: Path) -> str:
        path.write_text(json.dumps(self.outputs))
        return str(path)


def aws_stack(request: pytest.FixtureRequest, moto: MotoEmulator, topic_arn: str = "") -> Stack:
    targets = {w: provision(request, "aws") for w in WORKFLOWS}
    sqs = moto.client("sqs")
    hooks = {
        h: sqs.create_queue(QueueName=f"hook-{uuid.uuid4().hex[:8]}")["QueueUrl"] for h in WEBHOOKS
    }
    outputs = {
        "cloud": "aws",
        "routerTopicArn": topic_arn,
        "workflows": {
            w: {"queueUrl": t.queue_url, "deadLetterQueueUrl": t.dlq_url}
            for w, t in targets.items()
        },
        "webhookDeadLetterQueueUrls": hooks,
    }
    return Stack("aws", outputs, targets, hooks)


def azure_stack(request: pytest.FixtureRequest, azurite: AzuriteEmulator, router: str) -> Stack:
    from azure.storage.blob import BlobServiceClient

    targets = {w: provision(request, "azure") for w in WORKFLOWS}
    name = f"dl{uuid.uuid4().hex[:8]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(name)
    outputs = {
        "cloud": "azure",
        "storageAccount": "devstoreaccount1",
        "routerEndpoint": router,
        "routerDeadLetterContainer": name,
        "workflows": {
            w: {"queueName": t.env["EDW_QUEUE"], "poisonQueueName": t.env["EDW_DEAD_LETTER_QUEUE"]}
            for w, t in targets.items()
        },
    }
    return Stack("azure", outputs, targets, container=container)


def bodies_on(cloud: str, address: str, connection: str | None = None) -> list[str]:
    """Every body on a queue, left there (visible again at once)."""
    queue = open_any_queue(cloud, address, connection_string=connection)
    seen: list[Received] = []
    while batch := queue.receive(0, 60, queue.max_batch):
        seen += batch
    assert queue.extend(seen, 0) == []
    return [m.body for m in seen]


def put(cloud: str, address: str, bodies: Sequence[str], connection: str | None = None) -> None:
    assert open_any_queue(cloud, address, connection_string=connection).send(bodies) == 0


def queues_of(stack: Stack) -> dict[str, str]:
    """label -> address of every queue of the stack (as the recovery tools see them)."""
    return {q.label: q.address for q in inventory("s", stack.outputs).queues}


def test_replay_moves_every_queue_dlq_and_webhook_dlq_to_its_counterpart(
    request: pytest.FixtureRequest, moto: MotoEmulator, tmp_path: Path, capsys: Any
) -> None:
    old, new = aws_stack(request, moto), aws_stack(request, moto)
    sent = {label: sorted([f"{label} a", f"{label} b"]) for label in queues_of(old)}
    assert len(sent) == len(WORKFLOWS) * 2 + len(WEBHOOKS)
    for label, address in queues_of(old).items():
        put("aws", address, sent[label])
    flags = ["--from-outputs", old.save(tmp_path / "old.json")]
    assert replay.main([*flags, "--to-outputs", new.save(tmp_path / "new.json")], env={}) == 0
    out = capsys.readouterr().out
    assert "destroying it loses nothing" in out
    for label, address in queues_of(new).items():
        assert sorted(bodies_on("aws", address)) == sent[label], label
    for address in queues_of(old).values():
        assert bodies_on("aws", address) == []


def test_replay_refuses_a_stack_without_every_counterpart_and_moves_nothing(
    request: pytest.FixtureRequest, moto: MotoEmulator, tmp_path: Path, capsys: Any
) -> None:
    old, new = aws_stack(request, moto), aws_stack(request, moto)
    del new.outputs["workflows"]["orders"]
    new.outputs["webhookDeadLetterQueueUrls"] = {}
    put("aws", old.outputs["workflows"]["work"]["queueUrl"], [cloud_event(1)])
    flags = ["--from-outputs", old.save(tmp_path / "old.json")]
    assert replay.main([*flags, "--to-outputs", new.save(tmp_path / "new.json")], env={}) == 2
    err = capsys.readouterr().err
    assert "no counterpart for: orders queue, orders dead-letter queue, partner webhook" in err
    assert "nothing was moved" in err
    assert bodies_on("aws", old.outputs["workflows"]["work"]["queueUrl"]) == [cloud_event(1)]


def test_the_check_refuses_to_call_a_stack_safe_while_any_queue_holds_a_message(
    request: pytest.FixtureRequest, moto: MotoEmulator, tmp_path: Path, capsys: Any
) -> None:
    stack = aws_stack(request, moto)
    path = stack.save(tmp_path / "outputs.json")
    assert replay.main(["--check", "--from-outputs", path], env={}) == 0
    assert "destroying it loses nothing" in capsys.readouterr().out
    put("aws", stack.hooks["partner"], [cloud_event(7)])
    assert replay.main(["--check", "--from-outputs", path], env={}) == 1
    captured = capsys.readouterr()
    assert "partner webhook dead-letter queue holds 1 messages" in captured.out
    assert "do not destroy" in captured.err


def test_a_stack_without_outputs_has_nothing_to_lose(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "never-deployed.json"
    path.write_text("{}")
    assert replay.main(["--check", "--from-outputs", str(path)], env={}) == 0
    assert "nothing deployed" in capsys.readouterr().out


def test_replay_on_azure_moves_queues_poison_queues_and_dead_letter_blobs(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator, tmp_path: Path, capsys: Any
) -> None:
    old = azure_stack(request, azurite, "https://old.example/api/events")
    new = azure_stack(request, azurite, "https://new.example/api/events")
    conn = azurite.connection_string
    for i, (label, address) in enumerate(queues_of(old).items()):
        put("azure", address, [f"{label} {i}"], conn)
    blob = "TOPIC/ORDERS/2026/12/5/10/a.json"
    old.container.upload_blob(blob, b'[{"id": "x"}]')
    flags = ["--from-outputs", old.save(tmp_path / "o.json"), "--connection-string", conn]
    assert replay.main([*flags, "--to-outputs", new.save(tmp_path / "n.json")], env={}) == 0
    for i, (label, address) in enumerate(queues_of(new).items()):
        assert bodies_on("azure", address, conn) == [f"{label} {i}"]
    assert [b.name for b in new.container.list_blobs()] == [blob]
    assert new.container.download_blob(blob).readall() == b'[{"id": "x"}]'
    assert list(old.container.list_blobs()) == []
    assert replay.main(["--check", *flags[:2], "--connection-string", conn], env={}) == 0
    old.container.upload_blob(blob, b"[]")
    assert replay.main(["--check", *flags[:2], "--connection-string", conn], env={}) == 1
    assert "router dead-letter container" in capsys.readouterr().out


def test_sqs_dlq_redrive_returns_the_original_events_idempotently(
    request: pytest.FixtureRequest, moto: MotoEmulator, tmp_path: Path
) -> None:
    stack = aws_stack(request, moto)
    orders = stack.workflows["orders"]
    work = stack.workflows["work"]
    originals = [cloud_event(1), cloud_event(2)]
    # One set aside by the consumer (its reason rides along as an attribute) and one as SNS's
    # notification envelope, then the work workflow's own.
    queue = open_any_queue("aws", orders.dlq_url)
    assert queue.send_dead_letters([(Received("m", originals[0], "r", 5), "bad row")])
    topic = "arn:aws:sns:us-east-1:123456789012:router"
    envelope = {"Type": "Notification", "TopicArn": topic, "Message": originals[1]}
    put("aws", orders.dlq_url, [json.dumps(envelope)])
    put("aws", work.dlq_url, [cloud_event(3)])
    outputs = stack.save(tmp_path / "outputs.json")
    assert redrive.main(["sqs-dlq", "--outputs", outputs, "--workflow", "orders"]) == 0
    assert sorted(bodies_on("aws", orders.queue_url)) == sorted(originals)
    assert bodies_on("aws", orders.dlq_url) == []
    assert bodies_on("aws", work.dlq_url) == [cloud_event(3)]  # only the workflow named
    assert redrive.main(["sqs-dlq", "--outputs", outputs, "--workflow", "orders"]) == 0  # again
    assert sorted(bodies_on("aws", orders.queue_url)) == sorted(originals)
    assert redrive.main(["sqs-dlq", "--outputs", outputs, "--workflow", "nope"]) == 2


def test_webhook_dlq_redrive_publishes_back_through_the_router(
    request: pytest.FixtureRequest, moto: MotoEmulator, tmp_path: Path
) -> None:
    sns = moto.client("sns")
    topic = sns.create_topic(Name=f"router-{uuid.uuid4().hex[:8]}")["TopicArn"]
    stack = aws_stack(request, moto, topic)
    filters = {"work": None, "orders": {"type": ["com.example.order.created"]}}
    for name, target in stack.workflows.items():
        subscribe(moto, topic, target, filters[name])
    order, other = cloud_event(1), cloud_event(2, type_="com.example.user.created")
    put("aws", stack.hooks["partner"], [order, other])
    assert redrive.main(["webhook-dlq", "--outputs", stack.save(tmp_path / "o.json")]) == 0
    assert bodies_on("aws", stack.hooks["partner"]) == []
    assert bodies_on("aws", stack.workflows["orders"].queue_url) == [order]
    assert sorted(bodies_on("aws", stack.workflows["work"].queue_url)) == sorted([order, other])


def subscribe(moto: MotoEmulator, topic: str, target: AwsTarget, raw: Any) -> None:
    arn = target.sqs.get_queue_attributes(QueueUrl=target.queue_url, AttributeNames=["QueueArn"])
    attributes = {"RawMessageDelivery": "true"}
    if raw is not None:
        policy = sns_filter_policy(parse_filter(raw))
        attributes |= {"FilterPolicy": json.dumps(policy), "FilterPolicyScope": "MessageBody"}
    moto.client("sns").subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
        Attributes=attributes,
    )


def test_poison_redrive_opens_envelopes_and_stored_bodies_idempotently(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator, tmp_path: Path
) -> None:
    stack = azure_stack(request, azurite, "https://router.example/api/events")
    conn = azurite.connection_string
    target: AzureTarget = stack.workflows["orders"]
    poison = open_queue(target.env["EDW_DEAD_LETTER_QUEUE"], conn, None, 4)
    small = cloud_event(1)

    # Fits a queue message, but not inside an envelope: the consumer stores it on its own.
    def big(pad: int) -> str:
        return events.make({"pad": "x" * pad}, source="urn:shop", type_="t", event_id="big")

    large = big(65_500 - len(big(0)))
    rejects = [(Received("m1", small, "r", 6), "no table"), (Received("m2", large, "r", 6), "x")]
    assert len(poison.send_dead_letters(rejects)) == 2
    assert len(bodies_on("azure", target.env["EDW_DEAD_LETTER_QUEUE"], conn)) == 3
    flags = ["poison", "--outputs", stack.save(tmp_path / "o.json"), "--connection-string", conn]
    assert redrive.main(flags) == 0
    assert sorted(bodies_on("azure", target.env["EDW_QUEUE"], conn)) == sorted([small, large])
    assert bodies_on("azure", target.env["EDW_DEAD_LETTER_QUEUE"], conn) == []
    assert redrive.main(flags) == 0  # nothing left: a second run changes nothing
    assert sorted(bodies_on("azure", target.env["EDW_QUEUE"], conn)) == sorted([small, large])


def test_a_pointer_whose_body_is_gone_is_removed_and_counted_stale() -> None:
    source = FakeQueue([json.dumps({"reason": "r", "message_id": "a", "dequeue_count": 5,
                                    "body_message_id": "gone"})])  # fmt: skip
    destination = FakeQueue([])
    result = redrive.redrive_poison(source, destination)  # type: ignore[arg-type]
    assert (result.moved, result.stale, destination.sent) == (0, 1, [])
    assert len(source.deleted) == 1


def test_dead_letter_blobs_go_back_to_their_workflow_queue_or_the_router(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator
) -> None:
    conn = azurite.connection_string
    with RecordingEndpoint("/api/events") as grid:
        stack = azure_stack(request, azurite, grid.url)
        order, partner = cloud_event(1), cloud_event(2)
        marks = {"deadletterreason": "MaxDeliveryAttemptsExceeded", "deliveryattempts": 30,
                 "lastdeliveryoutcome": "Busy", "publishtime": "2026-12-05T10:00:00Z"}  # fmt: skip
        blobs = {
            "TOPIC/ORDERS/2026/12/5/10/a.json": [order],
            "TOPIC/WEBHOOK-PARTNER/2026/12/5/11/b.json": [partner],
            "TOPIC/GONE/2026/12/5/11/c.json": [order],
        }
        for name, evs in blobs.items():
            data = json.dumps([{**json.loads(e), **marks} for e in evs])
            stack.container.upload_blob(name, data.encode())
        inv = inventory("dev", stack.outputs, conn)
        queues = {q.owner: inv.open(q) for q in inv.of_kind("queue")}
        router = EventGridRouter(http_session(4), grid.url, FakeCredential(EVENT_GRID_SCOPE))
        result = redrive.redrive_blobs(stack.container, queues, router)
        assert result.events == {"orders queue": 1, "router": 1}
        gone = "TOPIC/GONE/2026/12/5/11/c.json"
        assert result.errors == [f"{gone}: no workflow or webhook 'gone'; kept"]
        received = bodies_on("azure", stack.workflows["orders"].env["EDW_QUEUE"], conn)
        assert [json.loads(b) for b in received] == [json.loads(order)]
        ((_, body),) = grid.requests
        assert json.loads(body) == [json.loads(partner)]
        assert [b.name for b in stack.container.list_blobs()] == [gone]
        # Run again: the kept blob stays kept, nothing is sent twice.
        assert redrive.redrive_blobs(stack.container, queues, router).events == {}
        assert len(grid.requests) == 1


def test_dead_letter_helpers_follow_the_documented_formats() -> None:
    assert redrive.subscription_of("TOPIC/WEBHOOK-PARTNER/2026/12/5/11/b.json") == "webhook-partner"
    assert redrive.subscription_of("ORDERS/2019/8/8/5/1.json") == "orders"  # no topic segment
    with pytest.raises(ValueError, match="not a dead-letter path"):
        redrive.subscription_of("a/b.json")
    event = {"id": "1", "specversion": "1.0", "data": {"deadletterreason": "kept: inside data"}}
    marked = {**event, "deadletterreason": "x", "deliveryattempts": 3, "lasthttpstatuscode": 500}
    assert [json.loads(e) for e in redrive.dead_lettered_events(json.dumps([marked]).encode())] == [
        event
    ]
    # Escapes JSON allows but a queue message cannot carry raw stay escapes; the rest is raw.
    odd = {"id": "2", "specversion": "1.0", "data": {"s": "\ud83d", "f": "\uffff", "e": "é"}}
    (text,) = redrive.dead_lettered_events(json.dumps([odd]).encode())
    assert text.encode("utf-8").decode("utf-8") == text  # encodable: no lone surrogate raw
    assert "\\ud83d" in text
    assert "\\uffff" in text
    assert "é" in text
    assert json.loads(text) == odd
    assert redrive.sns_unwrapped('{"specversion": "1.0"}') == '{"specversion": "1.0"}'
    assert redrive.sns_unwrapped("not json") == "not json"


def test_each_redrive_refuses_a_stack_of_the_other_cloud(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"cloud": "azure", "workflows": {}}))
    assert redrive.main(["sqs-dlq", "--outputs", str(path)]) == 2
    assert "sqs-dlq is for aws stacks" in capsys.readouterr().err


@dataclass
class FakeQueue:
    """A WorkQueue whose sends can fail: what the tools do when the destination refuses."""

    held: list[str]
    refuse: int = 0
    deleted: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    long_polls: bool = True
    max_batch: int = 10

    def receive(
        self, wait_seconds: int, visibility_seconds: int, max_messages: int
    ) -> list[Received]:
        batch, self.held = self.held[:max_messages], self.held[max_messages:]
        return [Received(b, b, b, 1) for b in batch]

    def send(self, bodies: Sequence[str]) -> int:
        self.sent += bodies
        return self.refuse

    def delete(self, messages: Sequence[Received]) -> list[Received]:
        self.deleted += [m.body for m in messages]
        return []


def test_a_move_deletes_nothing_the_destination_refused() -> None:
    source = FakeQueue([str(i) for i in range(30)])
    result = replay.move(source, FakeQueue([], refuse=1), limit=100)  # type: ignore[arg-type]
    assert (result.moved, source.deleted) == (0, [])
    assert "refused 1 of 10" in result.error


def test_a_move_stops_at_the_limit() -> None:
    source, destination = FakeQueue([str(i) for i in range(30)]), FakeQueue([])
    result = replay.move(source, destination, limit=15)  # type: ignore[arg-type]
    assert result.moved == 15
    assert destination.sent == source.deleted == [str(i) for i in range(15)]


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_one_queue_replay_moves_every_message_byte_for_byte(
    request: pytest.FixtureRequest, cloud: str
) -> None:
    source, destination = provision(request, cloud), provision(request, cloud)
    bodies = [json.dumps({"n": i, "text": "ünïcode \u2603"}) for i in range(25)]
    source.send(bodies)
    flags = ["--cloud", cloud, "--from-queue", source.env["EDW_QUEUE"]]
    flags += ["--to-queue", destination.env["EDW_QUEUE"]]
    conn = source.env.get("EDW_AZURE_CONNECTION_STRING")
    if conn:
        flags += ["--connection-string", conn]
    assert replay.main(flags, env={}) == 0
    assert source.depth() == 0
    assert sorted(bodies_on(cloud, destination.env["EDW_QUEUE"], conn)) == sorted(bodies)


def test_one_queue_replay_refuses_one_queue_for_both_ends(capsys: Any) -> None:
    url = "https://sqs.us-west-2.amazonaws.com/123456789012/work"
    assert replay.main(["--cloud", "aws", "--from-queue", url, "--to-queue", url], env={}) == 2
    assert "the same queue" in capsys.readouterr().err
    assert replay.main(["--from-queue", url, "--to-queue", url], env={}) == 2
    assert "cloud None is not one of: aws, azure" in capsys.readouterr().err


def raw_contents(connection: str, queue: str) -> list[str]:
    """What an Azure queue holds, as stored (no decoding), left there."""
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(connection, queue)
    return [m.content for m in client.peek_messages(max_messages=32)]


def event_grid_base64(body: str) -> str:
    """A queue message as Event Grid writes an event into a Storage queue: Base64."""
    return base64.b64encode(body.encode()).decode()


def test_replay_and_redrive_on_azure_return_event_grids_base64_byte_for_byte(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator, tmp_path: Path
) -> None:
    conn = azurite.connection_string
    stack = azure_stack(request, azurite, "https://router.example/api/events")
    orders, work = stack.workflows["orders"], stack.workflows["work"]
    delivered = event_grid_base64(cloud_event(1))
    put("azure", orders.env["EDW_QUEUE"], [delivered], conn)
    flags = ["--cloud", "azure", "--connection-string", conn]
    flags += ["--from-queue", orders.env["EDW_QUEUE"], "--to-queue", work.env["EDW_QUEUE"]]
    assert replay.main(flags, env={}) == 0
    assert raw_contents(conn, work.env["EDW_QUEUE"]) == [delivered]

    # Set aside by the consumer: one in its envelope, one too large for it, stored on its own.
    def padded(pad: int) -> str:
        return events.make({"pad": "x" * pad}, source="urn:shop", type_="t", event_id="L")

    # 49,149 bytes: 65,532 in Base64, within a queue message but not inside an envelope.
    large_event = padded(49_149 - len(padded(0)))
    large = event_grid_base64(large_event)
    poison = open_queue(orders.env["EDW_DEAD_LETTER_QUEUE"], conn, None, 4)
    rejects = [
        (Received("m1", cloud_event(2), "r", 6, event_grid_base64(cloud_event(2))), "bad row"),
        (Received("m2", large_event, "r", 6, large), "bad row"),
    ]
    assert len(poison.send_dead_letters(rejects)) == 2
    assert large in raw_contents(conn, orders.env["EDW_DEAD_LETTER_QUEUE"])  # on its own
    outputs = stack.save(tmp_path / "o.json")
    assert redrive.main(["poison", "--outputs", outputs, "--connection-string", conn]) == 0
    returned = raw_contents(conn, orders.env["EDW_QUEUE"])
    assert sorted(returned) == sorted([event_grid_base64(cloud_event(2)), large])


def test_a_poison_pass_cut_by_the_limit_keeps_the_pointers_whose_body_it_did_not_reach(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator, tmp_path: Path, capsys: Any
) -> None:
    conn = azurite.connection_string
    stack = azure_stack(request, azurite, "https://router.example/api/events")
    orders = stack.workflows["orders"]
    poison = open_queue(orders.env["EDW_DEAD_LETTER_QUEUE"], conn, None, 4)
    # A body stored on its own that this pass does not reach (Azure queues keep no order; here
    # it is hidden for a few seconds), its pointer, and an envelope after them.
    body = poison.client.send_message(cloud_event(9), visibility_timeout=3)
    pointer = poison_envelope(Received("m9", cloud_event(9), "r", 6), "why", body.id)
    assert pointer is not None
    poison.client.send_message(pointer)
    assert poison.send_dead_letters([(Received("m1", cloud_event(1), "r", 6), "why")])
    flags = ["poison", "--outputs", stack.save(tmp_path / "o.json"), "--connection-string", conn]
    assert redrive.main([*flags, "--limit", "1"]) == 0
    assert raw_contents(conn, orders.env["EDW_QUEUE"]) == [cloud_event(1)]
    # The pointer stays, visible again at once, with its reason for the body still to come.
    assert raw_contents(conn, orders.env["EDW_DEAD_LETTER_QUEUE"]) == [pointer]
    time.sleep(3.5)
    capsys.readouterr()
    assert redrive.main(flags) == 0
    assert "1 returned, 0 stale envelopes removed" in capsys.readouterr().out
    assert sorted(raw_contents(conn, orders.env["EDW_QUEUE"])) == sorted(
        [cloud_event(1), cloud_event(9)]
    )
    assert raw_contents(conn, orders.env["EDW_DEAD_LETTER_QUEUE"]) == []


def test_dead_letter_blob_events_return_as_compact_json_with_characters_unescaped(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator
) -> None:
    conn = azurite.connection_string
    stack = azure_stack(request, azurite, "https://router.example/api/events")
    # 25,000 "é": 50 KB of UTF-8 fits a 64 KiB queue message; as \\u00e9 escapes, 150 KB would not.
    text = events.make({"text": "\u00e9" * 25_000}, source="urn:shop", type_="t", event_id="e")
    marks = {"deadletterreason": "MaxDeliveryAttemptsExceeded", "deliveryattempts": 30}
    blob = json.dumps([{**json.loads(text), **marks}], ensure_ascii=False).encode()
    stack.container.upload_blob("TOPIC/ORDERS/2026/12/5/10/a.json", blob)
    inv = inventory("dev", stack.outputs, conn)
    queues = {q.owner: inv.open(q) for q in inv.of_kind("queue")}
    result = redrive.redrive_blobs(stack.container, queues, None)
    assert (result.events, result.errors) == ({"orders queue": 1}, [])
    (returned,) = raw_contents(conn, stack.workflows["orders"].env["EDW_QUEUE"])
    assert json.loads(returned) == json.loads(text)
    assert returned == json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    assert len(returned.encode()) <= 64 * 1024
    assert list(stack.container.list_blobs()) == []


def test_an_odd_dead_letter_blob_is_reported_and_kept_and_the_pass_goes_on(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator
) -> None:
    conn = azurite.connection_string
    stack = azure_stack(request, azurite, "https://router.example/api/events")
    day = "TOPIC/ORDERS/2026/12/5/10"
    odd = {
        f"{day}/a.json": b"not json",
        f"{day}/b.json": b'{"id": "not in an array"}',
        f"{day}/c.json": b"[1, 2]",
        f"{day}/d.json": b"\xff\xfe[]",
        "a-stray.json": b"[]",  # not under a dead-letter path
    }
    for name, data in odd.items():
        stack.container.upload_blob(name, data)
    good = f"{day}/z.json"  # listed after the odd ones: the pass must go on to it
    stack.container.upload_blob(good, json.dumps([json.loads(cloud_event(1))]).encode())
    inv = inventory("dev", stack.outputs, conn)
    queues = {q.owner: inv.open(q) for q in inv.of_kind("queue")}
    result = redrive.redrive_blobs(stack.container, queues, None)
    assert result.events == {"orders queue": 1}
    assert len(result.errors) == len(odd)
    for name in odd:  # each named once, with what is wrong with it
        (error,) = [e for e in result.errors if name in e]
        assert error.endswith("; kept")
    assert sum("not UTF-8 JSON" in e for e in result.errors) == 2
    assert sum("not an array of events" in e for e in result.errors) == 2
    assert sorted(b.name for b in stack.container.list_blobs()) == sorted(odd)
    (returned,) = bodies_on("azure", stack.workflows["orders"].env["EDW_QUEUE"], conn)
    assert json.loads(returned) == json.loads(cloud_event(1))
