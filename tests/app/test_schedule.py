"""A schedule's tick: `python -m app.schedule` publishes one event that the router routes like any
other (on moto, with the filter policy the stack deploys), then sends its heartbeat."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from app import events
from app.schedule import scheduled_event
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
