"""What `make e2e` checks, against the emulators: delivery (every row, an empty queue, nothing
dead-lettered), the scale watch, and the leftover sweep against moto's tagging API."""

from __future__ import annotations

import json
import signal

import boto3
import pytest
import yaml

from app.backend import row_key
from bench.emulators import AWS_TEST_ENV, Target
from tests.app.conftest import ConsumerProcess, provision, wait_until
from tools import e2e

pytestmark = pytest.mark.emulator
FAST = {"EDW_RECEIVE_WAIT_SECONDS": "1", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "10"}


def probe_for(target: Target, monkeypatch: pytest.MonkeyPatch) -> e2e.StackProbe:
    """The probe `make e2e` builds from stack outputs, pointed at the emulator."""
    if target.cloud == "aws":
        for key, value in {
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": target.env["AWS_ENDPOINT_URL"],
        }.items():
            monkeypatch.setenv(key, value)
        outputs = {
            "region": "us-east-1",
            "queueUrl": target.env["EDW_QUEUE"],
            "deadLetterQueueUrl": target.env["EDW_DEAD_LETTER_QUEUE"],
            "tableName": target.env["EDW_TABLE"],
        }
        return e2e.AwsProbe(outputs)
    outputs = {
        "queueName": target.env["EDW_QUEUE"],
        "poisonQueueName": target.env["EDW_DEAD_LETTER_QUEUE"],
        "tableName": target.env["EDW_TABLE"],
    }
    return e2e.AzureProbe(outputs, target.env["EDW_AZURE_CONNECTION_STRING"])


def test_delivery_is_verified_row_by_row(
    target: Target, start_consumer: ConsumerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = probe_for(target, monkeypatch)
    keys = e2e.publish(probe, 120, "t1")
    assert keys[0] == row_key("work", "urn:edw:e2e:t1", "e2e-t1-000000")
    assert probe.depth() == 120
    with pytest.raises(e2e.E2EFailure, match="120 of 120 rows missing, 120 messages still"):
        e2e.wait_for_delivery(probe, keys, timeout=0, sleep=lambda _: None)
    consumer = start_consumer({**target.env, **FAST})
    delivery = e2e.wait_for_delivery(probe, keys, timeout=60, interval=0.5)
    assert delivery.events == 120
    assert probe.stored(keys) == set(keys)
    assert probe.stored([row_key("work", "urn:edw:e2e:t1", "e2e-t1-999999")]) == set()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(15) == 0


def test_the_azure_poll_reads_rows_by_key_and_never_scans(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared table holds every other run's rows too: a scan per poll would read them all."""
    target = provision(request, "azure")
    probe = probe_for(target, monkeypatch)
    assert isinstance(probe, e2e.AzureProbe)
    other = row_key("work", "urn:other", "x")
    target.table.upsert_entity({"PartitionKey": other, "RowKey": other})  # type: ignore[attr-defined]
    keys = [row_key("work", "urn:edw:e2e:t3", f"e{i}") for i in range(3)]
    for key in keys[:2]:
        target.table.upsert_entity({"PartitionKey": key, "RowKey": key})  # type: ignore[attr-defined]

    def no_scan(*_: object, **__: object) -> None:
        raise AssertionError("the poll scanned the table")

    reads: list[str] = []
    read = probe.table.get_entity

    def point_read(**kwargs: str) -> object:
        reads.append(kwargs["row_key"])
        return read(**kwargs)

    monkeypatch.setattr(probe.table, "list_entities", no_scan)
    monkeypatch.setattr(probe.table, "query_entities", no_scan)
    monkeypatch.setattr(probe.table, "get_entity", point_read)
    assert probe.stored(keys) == set(keys[:2])
    assert sorted(reads) == sorted(keys)
    reads.clear()
    assert probe.stored(keys) == set(keys[:2])
    assert reads == [keys[2]]  # found rows are not read again


def test_a_dead_letter_fails_the_run(
    target: Target, start_consumer: ConsumerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = probe_for(target, monkeypatch)
    keys = e2e.publish(probe, 5, "t2")
    assert probe.send(["not a cloudevent"]) == 0
    consumer = start_consumer({**target.env, **FAST})
    wait_until(lambda: probe.dead_lettered() == 1, 30, "the bad message to be set aside")
    with pytest.raises(e2e.E2EFailure, match="1 messages were dead-lettered"):
        e2e.wait_for_delivery(probe, keys, timeout=30, interval=0.2)
    consumer.signal(signal.SIGTERM)
    consumer.wait(15)


@pytest.mark.parametrize(
    ("samples", "verdict"),
    [
        ([0, 0, 2, 5, 3, 0], "scaled 0 -> 5 -> 0 pods"),
        ([0, 0, 0], "never scaled up from zero"),
        ([0, 3, 3], "did not scale back to zero"),
        ([2, 3, 0], "was not at zero before the run"),
    ],
)
def test_the_scale_watch_needs_zero_then_pods_then_zero(samples: list[int], verdict: str) -> None:
    replicas = iter(samples)
    watch = e2e.ScaleWatch(lambda: next(replicas, samples[-1]), interval=0.01)
    watch.start()
    watch.until_zero(timeout=0.5)
    if verdict.startswith("scaled"):
        assert watch.verdict() == verdict
    else:
        with pytest.raises(e2e.E2EFailure, match=verdict):
            watch.verdict()


def test_the_leftover_sweep_finds_what_destroy_left(moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's Resource Groups Tagging API lists tagged SQS queues and DynamoDB tables."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    sqs, dynamodb = session.client("sqs"), session.client("dynamodb")
    tags = {"project": "edw", "stack": "aws-e2e-abc123"}
    queue = sqs.create_queue(QueueName="e2e-left-queue", tags=tags)["QueueUrl"]
    sqs.create_queue(QueueName="other-stack", tags={**tags, "stack": "aws"})
    table = dynamodb.create_table(
        TableName="e2e-left-table",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )["TableDescription"]["TableArn"]
    left = e2e.aws_leftovers(session, "aws-e2e-abc123")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    assert sorted(left) == sorted([queue_arn["Attributes"]["QueueArn"], table])
    sqs.delete_queue(QueueUrl=queue)
    dynamodb.delete_table(TableName="e2e-left-table")
    assert e2e.settle_leftovers(lambda: e2e.aws_leftovers(session, "aws-e2e-abc123"), 5) == []


def test_a_throw_away_stack_drops_the_log_group_destroy_keeps(
    moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """destroy keeps /aws/eks/<cluster>/cluster (tagged with the stack) for a later `up` to
    adopt; the e2e run deletes it, or the sweep would report it, and tolerates its absence."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    logs = session.client("logs")
    logs.create_log_group(logGroupName="/aws/eks/edw-aws-e2e-def456/cluster")
    logs.create_log_group(logGroupName="/aws/eks/edw-aws/cluster")
    e2e.drop_kept_log_group(session, "edw-aws-e2e-def456")
    e2e.drop_kept_log_group(session, "edw-aws-e2e-def456")  # already gone: no error
    names = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert names == ["/aws/eks/edw-aws/cluster"]


def test_leftovers_are_waited_for_then_reported() -> None:
    answers = [["arn:1", "arn:2"], ["arn:2"], []]
    assert e2e.settle_leftovers(lambda: answers.pop(0), 60, sleep=lambda _: None) == []
    ticks = iter([0, 10, 700])
    still = e2e.settle_leftovers(
        lambda: ["arn:3"], 600, clock=lambda: next(ticks), sleep=lambda _: None
    )
    assert still == ["arn:3"]


def test_the_throwaway_stack_takes_the_real_stacks_config() -> None:
    config = e2e.throwaway_config("dev")
    assert config["edw:cloud"] == "azure"
    assert config["azure-native:location"] == "westeurope"
    # It must leave nothing: the table Azure protects by default is not protected here.
    assert json.loads(config["edw:deletionProtection"]) is False


def test_the_throwaway_stack_is_reached_by_the_identity_running_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real stack names CI's deploy and preview identities; copied, the throw-away stack
    would grant them AKS access and not the `dev-e2e` identity that runs it (docs/ci.md)."""
    real = yaml.safe_load((e2e.REPO / "Pulumi.dev.yaml").read_text())
    real["config"]["edw:deployerPrincipals"] = [
        "ServicePrincipal:" + "1" * 8 + "-0000-0000-0000-000000000000"
    ]
    real["config"]["edw:previewPrincipals"] = ["Group:" + "2" * 8 + "-0000-0000-0000-000000000000"]
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(real))
    monkeypatch.setattr(e2e, "REPO", tmp_path)
    config = e2e.throwaway_config("dev")
    assert "edw:deployerPrincipals" not in config
    assert "edw:previewPrincipals" not in config
    assert config["edw:apiAllowedCidrs"] == json.dumps(["0.0.0.0/0"])
