"""Per-queue depth and oldest age, read from Azurite and sent to a recording stand-in for Azure
Monitor's custom-metrics ingestion, as the Azure stack's CronJob does every minute."""

from __future__ import annotations

import json
import time

import pytest

from app import queue_metrics
from bench.emulators import AzuriteEmulator, Target
from tests.app.conftest import provision
from tests.http_replies import FakeCredential, RecordingEndpoint

pytestmark = pytest.mark.emulator
RESOURCE = (
    "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/edw-dev-rg/providers/"
    "Microsoft.Storage/storageAccounts/edwdev1234"
)


def metrics_env(target: Target, *queues: str) -> dict[str, str]:
    return {
        "EDW_AZURE_CONNECTION_STRING": target.env["EDW_AZURE_CONNECTION_STRING"],
        "EDW_QUEUES": ",".join(queues or (target.env["EDW_QUEUE"],)),
        "EDW_METRICS_RESOURCE_ID": RESOURCE,
        "EDW_METRICS_REGION": "westeurope",
    }


def run(env: dict[str, str], endpoint: RecordingEndpoint) -> int:
    return queue_metrics.main(
        {**env, "EDW_METRICS_ENDPOINT": endpoint.base},
        credential=FakeCredential(queue_metrics.MONITOR_SCOPE),
    )


def test_each_queue_reports_its_own_depth_and_oldest_age(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator
) -> None:
    target = provision(request, "azure")
    target.send(["a", "b", "c"])
    target.poison.send_message("set aside")
    time.sleep(1.1)  # an age of at least a second on the oldest message
    work, poison = target.env["EDW_QUEUE"], target.env["EDW_DEAD_LETTER_QUEUE"]
    env = metrics_env(target, work, poison)
    with RecordingEndpoint() as monitor:
        assert run(env, monitor) == 0
    (headers, _), _ = monitor.requests
    assert headers["Authorization"] == "Bearer entra-token"
    depth, age = monitor.bodies()
    assert depth["data"]["baseData"]["metric"] == "QueueDepth"
    assert depth["data"]["baseData"]["namespace"] == "edw"
    assert depth["data"]["baseData"]["dimNames"] == ["Queue"]
    series = {s["dimValues"][0]: s for s in depth["data"]["baseData"]["series"]}
    assert (series[work]["max"], series[poison]["max"]) == (3, 1)
    ages = {s["dimValues"][0]: s["max"] for s in age["data"]["baseData"]["series"]}
    assert age["data"]["baseData"]["metric"] == "OldestMessageAgeSeconds"
    assert ages[work] >= 1
    assert ages[poison] >= 1


def test_empty_queues_report_zero_and_a_refusal_exits_one(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator
) -> None:
    target = provision(request, "azure")
    env = metrics_env(target)
    with RecordingEndpoint() as monitor:
        assert run(env, monitor) == 0
        depth, age = monitor.bodies()
        assert depth["data"]["baseData"]["series"][0]["max"] == 0
        assert age["data"]["baseData"]["series"][0]["max"] == 0
        monitor.status = 403
        assert run(env, monitor) == 1


def test_missing_settings_exit_two() -> None:
    assert queue_metrics.main({"EDW_QUEUES": "work"}) == 2


def test_the_request_path_is_the_resources_metrics_endpoint(
    request: pytest.FixtureRequest, azurite: AzuriteEmulator
) -> None:
    target = provision(request, "azure")
    env = metrics_env(target)
    with RecordingEndpoint() as monitor:
        assert run(env, monitor) == 0
    assert json.loads(monitor.requests[0][1])["time"].endswith("Z")
    assert monitor.paths == [f"{RESOURCE}/metrics", f"{RESOURCE}/metrics"]
