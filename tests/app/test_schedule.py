"""A schedule's tick: `python -m app.schedule` publishes one event that the router routes like any
other (on moto, with the filter policy the stack deploys), then sends its heartbeat."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from app import events
from app.schedule import scheduled_event, scheduled_minute
from bench.emulators import REPO, MotoEmulator, child_env
from components.routing import parse_filter, sns_filter_policy
from tests.app.conftest import provision

pytestmark = pytest.mark.emulator
TYPE = "edw.schedule.nightly"


def test_a_tick_is_one_event_named_by_its_minute() -> None:
    body = scheduled_event(TYPE, "urn:edw:schedule", datetime(2026, 12, 2, 2, 0, 37, tzinfo=UTC))
    event = events.parse(body)
    assert event.id == f"{TYPE}-2026-12-02T02:00:00Z"  # a retry of this tick: the same id
    assert (event.type, event.source) == (TYPE, "urn:edw:schedule")
    assert event.data == {"scheduledTime": "2026-12-02T02:00:00Z"}


CRONJOB = "edw-nightly-consumer-schedule"
TICK = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
# How the CronJob controller names the tick's Job: <cronjob>-<scheduled Unix time // 60>.
JOB = f"{CRONJOB}-{int(TICK.timestamp()) // 60}"


def test_the_tick_is_named_by_its_scheduled_minute_from_the_jobs_name_not_by_the_clock() -> None:
    env = {"EDW_CRONJOB": CRONJOB, "EDW_JOB_NAME": JOB}
    # The Job's pod retried four minutes later (or on another day): still the 02:00 tick.
    for now in (TICK + timedelta(minutes=4, seconds=7), TICK + timedelta(days=1)):
        assert scheduled_minute(env, now) == TICK
        body = scheduled_event(TYPE, "urn:edw:schedule", scheduled_minute(env, now))
        assert events.parse(body).id == f"{TYPE}-2026-12-02T02:00:00Z"


def test_outside_a_cronjobs_job_the_minute_of_the_run_stands_in() -> None:
    now = TICK + timedelta(minutes=4, seconds=7)
    for env in (
        {},  # not in Kubernetes
        {"EDW_CRONJOB": CRONJOB, "EDW_JOB_NAME": f"{CRONJOB}-manual-1"},  # kubectl create job
        {"EDW_CRONJOB": CRONJOB, "EDW_JOB_NAME": f"other-{int(TICK.timestamp()) // 60}"},
        {"EDW_JOB_NAME": JOB},
    ):
        assert scheduled_minute(env, now) == now


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_schedule(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.schedule"],
        env=child_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_tick_reaches_exactly_the_workflows_whose_filter_takes_it(
    request: pytest.FixtureRequest, moto: MotoEmulator
) -> None:
    sns = moto.client("sns")
    topic = sns.create_topic(Name="schedule-router")["TopicArn"]
    nightly, orders = provision(request, "aws"), provision(request, "aws")
    for target, raw in ((nightly, {"type": [TYPE]}), (orders, {"type": ["com.example.order"]})):
        arn = target.sqs.get_queue_attributes(
            QueueUrl=target.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        policy = json.dumps(sns_filter_policy(parse_filter(raw)))
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={
                "RawMessageDelivery": "true",
                "FilterPolicy": policy,
                "FilterPolicyScope": "MessageBody",
            },
        )
    env = {
        **{k: v for k, v in nightly.env.items() if k.startswith("AWS_")},
        "EDW_CLOUD": "aws",
        "EDW_ROUTER": topic,
        "EDW_SCHEDULE_TYPE": TYPE,
        "EDW_HEARTBEAT_TASK": "nightly-schedule",
    }
    result = run_schedule(env)
    assert result.returncode == 0, result.stderr
    (message,) = nightly.sqs.receive_message(QueueUrl=nightly.queue_url).get("Messages", [])
    assert events.parse(message["Body"]).type == TYPE
    assert orders.depth() == 0
    # The tick's heartbeat, which the missed-tick alarm watches (components/aws/alarms.py).
    (metric,) = moto.client("cloudwatch").list_metrics(Namespace="EDW/Tasks")["Metrics"]
    assert metric["MetricName"] == "Heartbeat"
    assert metric["Dimensions"] == [{"Name": "Task", "Value": "nightly-schedule"}]


def test_missing_settings_exit_two_naming_them() -> None:
    result = run_schedule({"EDW_CLOUD": "gcp"})
    assert result.returncode == 2
    assert "EDW_CLOUD (aws or azure), EDW_ROUTER and EDW_SCHEDULE_TYPE are required" in (
        result.stdout + result.stderr
    )


def test_a_failed_heartbeat_after_the_publish_exits_zero_and_a_retry_keeps_the_id(
    request: pytest.FixtureRequest, moto: MotoEmulator
) -> None:
    sns = moto.client("sns")
    topic = sns.create_topic(Name="schedule-router-beatless")["TopicArn"]
    target = provision(request, "aws")
    arn = target.sqs.get_queue_attributes(QueueUrl=target.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    env = {
        **{k: v for k, v in target.env.items() if k.startswith("AWS_")},
        # CloudWatch unreachable: botocore's own connection error on the heartbeat only.
        "AWS_ENDPOINT_URL_CLOUDWATCH": f"http://127.0.0.1:{closed_port()}",
        "EDW_CLOUD": "aws",
        "EDW_ROUTER": topic,
        "EDW_SCHEDULE_TYPE": TYPE,
        "EDW_HEARTBEAT_TASK": "beatless-schedule",
        "EDW_CRONJOB": CRONJOB,
        "EDW_JOB_NAME": JOB,
    }
    first = run_schedule(env)
    # Published: exit 0, or the Job would retry and publish the tick again.
    assert first.returncode == 0, first.stderr
    assert "heartbeat was not" in first.stdout + first.stderr
    # Had a retry happened anyway (a pod lost after its publish), it sends the same id.
    assert run_schedule(env).returncode == 0
    received = target.sqs.receive_message(QueueUrl=target.queue_url, MaxNumberOfMessages=10)
    ids = [events.parse(m["Body"]).id for m in received.get("Messages", [])]
    assert ids == [f"{TYPE}-2026-12-02T02:00:00Z"] * 2
    beats = moto.client("cloudwatch").list_metrics(
        Namespace="EDW/Tasks", Dimensions=[{"Name": "Task", "Value": "beatless-schedule"}]
    )
    assert beats["Metrics"] == []
