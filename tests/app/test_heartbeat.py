"""A task's heartbeat: a CloudWatch datapoint on moto, a Logs Ingestion API row against a recording
endpoint, and a refusal or a missing setting seen in the exit code."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from app import heartbeat
from bench.emulators import MotoEmulator
from tests.http_replies import FakeCredential, RecordingEndpoint

pytestmark = pytest.mark.emulator
NOW = datetime(2026, 12, 5, 2, 0, 30, tzinfo=UTC)


def test_an_aws_beat_is_one_datapoint_of_the_tasks_series(
    moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": moto.endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    env = {"EDW_CLOUD": "aws", "EDW_HEARTBEAT_TASK": "orders-schedule", "AWS_REGION": "eu-west-1"}
    assert heartbeat.beat(env, now=NOW) is True
    session = boto3.session.Session("testing", "testing", region_name="eu-west-1")
    cloudwatch = session.client("cloudwatch", endpoint_url=moto.endpoint)
    stats = cloudwatch.get_metric_statistics(
        Namespace="EDW/Tasks",
        MetricName="Heartbeat",
        Dimensions=[{"Name": "Task", "Value": "orders-schedule"}],
        StartTime=datetime(2026, 12, 5, 2, tzinfo=UTC),
        EndTime=datetime(2026, 12, 5, 3, tzinfo=UTC),
        Period=60,
        Statistics=["Sum"],
    )
    assert [p["Sum"] for p in stats["Datapoints"]] == [1.0]


def test_an_azure_beat_is_one_row_posted_to_the_rules_stream_with_an_entra_token() -> None:
    with RecordingEndpoint() as ingestion:
        env = {
            "EDW_CLOUD": "azure",
            "EDW_HEARTBEAT_TASK": "queue-metrics",
            "EDW_HEARTBEAT_ENDPOINT": ingestion.base + "/",
            "EDW_HEARTBEAT_RULE": "dcr-0123",
        }
        credential = FakeCredential("https://monitor.azure.com//.default")
        assert heartbeat.beat(env, credential, NOW) is True
        assert ingestion.paths == [
            "/dataCollectionRules/dcr-0123/streams/Custom-EdwHeartbeat?api-version=2023-01-01"
        ]
        (headers, body) = ingestion.requests[0]
        assert headers["Authorization"] == "Bearer entra-token"
        assert json.loads(body) == [
            {"TimeGenerated": "2026-12-05T02:00:30Z", "Task": "queue-metrics"}
        ]
        ingestion.status = 403
        assert heartbeat.main(env, credential) == heartbeat.EXIT_REFUSED


def test_a_task_without_its_heartbeat_settings_exits_two() -> None:
    assert heartbeat.main({"EDW_CLOUD": "azure"}) == heartbeat.EXIT_BAD_SETTINGS
    env = {"EDW_CLOUD": "azure", "EDW_HEARTBEAT_TASK": "x"}
    assert heartbeat.main(env) == heartbeat.EXIT_BAD_SETTINGS  # no endpoint, no rule
    assert heartbeat.after_run({"EDW_CLOUD": "aws"}) == 0  # a task without a heartbeat
