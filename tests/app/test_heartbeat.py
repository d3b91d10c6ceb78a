"""A task's heartbeat: a CloudWatch datapoint on moto, a Logs Ingestion API row against a recording
endpoint, and a refusal or a missing setting seen in the exit code; a link cut for a moment is
tried again (each failed try logged) and one cut for good gives up within its budget."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest

from app import heartbeat
from bench.emulators import MotoEmulator
from tests.app.cutting_proxy import CuttingProxy
from tests.http_replies import FakeCredential, RecordingEndpoint

pytestmark = pytest.mark.emulator
NOW = datetime(2026, 12, 5, 2, 0, 30, tzinfo=UTC)
AWS_ENV = {"EDW_CLOUD": "aws", "EDW_HEARTBEAT_TASK": "orders-schedule", "AWS_REGION": "eu-west-1"}


def use_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)


def beats_in_moto(moto: MotoEmulator, task: str, hour: int) -> list[float]:
    session = boto3.session.Session("testing", "testing", region_name="eu-west-1")
    cloudwatch = session.client("cloudwatch", endpoint_url=moto.endpoint)
    stats = cloudwatch.get_metric_statistics(
        Namespace="EDW/Tasks",
        MetricName="Heartbeat",
        Dimensions=[{"Name": "Task", "Value": task}],
        StartTime=datetime(2026, 12, 5, hour, tzinfo=UTC),
        EndTime=datetime(2026, 12, 5, hour + 1, tzinfo=UTC),
        Period=60,
        Statistics=["Sum"],
    )
    return [p["Sum"] for p in stats["Datapoints"]]


def test_an_aws_beat_is_one_datapoint_of_the_tasks_series(
    moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_endpoint(monkeypatch, moto.endpoint)
    assert heartbeat.beat(AWS_ENV, now=NOW) is True
    assert beats_in_moto(moto, "orders-schedule", 2) == [1.0]


def tries(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, bool]]:
    """Each try the beat logged: its message, its number, and whether another follows."""
    return [
        (r.getMessage(), r.fields["attempt"], r.fields.get("retrying", False))
        for r in caplog.records
        if r.name == "edw.heartbeat" and "attempt" in getattr(r, "fields", {})
    ]


@contextlib.contextmanager
def cut_for(link: CuttingProxy, seconds: float) -> Iterator[None]:
    """The link is down from now for ``seconds``, then back, while the body runs."""
    link.cut()
    restorer = threading.Timer(seconds, link.restore)
    restorer.start()
    try:
        yield
    finally:
        restorer.join()


def test_an_aws_beat_outlasts_a_cut_of_a_few_seconds_and_logs_each_failed_try(
    moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Right after a published tick, the link to CloudWatch drops for 2 s: the real client
    meets the cut, the beat is tried again after 1 s and 2 s and lands once, so the missed-tick
    alarm does not page."""
    caplog.set_level(logging.INFO, "edw.heartbeat")
    with CuttingProxy(moto.port) as link:
        use_endpoint(monkeypatch, f"http://127.0.0.1:{link.port}")
        later = NOW.replace(hour=4)
        with cut_for(link, 2.0):
            assert heartbeat.beat(AWS_ENV, now=later) is True
    assert beats_in_moto(moto, "orders-schedule", 4) == [1.0]
    assert tries(caplog) == [
        ("heartbeat refused", 1, True),
        ("heartbeat refused", 2, True),
        ("heartbeat", 3, False),
    ]


# CloudWatch's throttle, code "Throttling" (AWS knowledge center
# "cloudwatch-400-error-throttling"), in the protocol botocore 1.44 resolves for CloudWatch
# (awsJson1_0: JSONParser reads the code from "__type", after any "#"). The exact body AWS sends
# in this protocol is not verified; the ClientError botocore builds from it is what counts.
THROTTLED = json.dumps(
    {"__type": "com.amazonaws.cloudwatch#Throttling", "message": "Rate exceeded"}
)


def test_an_aws_beat_throttled_once_is_sent_again(
    moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """CloudWatch's throttle, parsed by the real client into the ClientError it raises (HTTP
    400, code Throttling), is retried."""
    caplog.set_level(logging.INFO, "edw.heartbeat")
    with CuttingProxy(moto.port) as link:
        use_endpoint(monkeypatch, f"http://127.0.0.1:{link.port}")
        link.answer("400 Bad Request", "application/x-amz-json-1.0", THROTTLED)
        restorer = threading.Timer(0.5, link.restore)
        restorer.start()
        assert heartbeat.beat(AWS_ENV, now=NOW.replace(hour=8)) is True
        restorer.join()
        assert link.answered == 1
    assert beats_in_moto(moto, "orders-schedule", 8) == [1.0]
    assert tries(caplog) == [("heartbeat refused", 1, True), ("heartbeat", 2, False)]


def test_an_aws_beat_on_a_link_cut_for_good_gives_up_within_its_budget(
    moto: MotoEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edw.heartbeat")
    retry = heartbeat.Retry(attempts=5, first_backoff=0.2, budget=1.0)
    with CuttingProxy(moto.port) as link:
        use_endpoint(monkeypatch, f"http://127.0.0.1:{link.port}")
        link.cut()
        started = time.monotonic()
        assert heartbeat.beat(AWS_ENV, now=NOW.replace(hour=6), retry=retry) is False
        # 0.2 + 0.4 s of back-off; the next (0.8 s) would begin past the 1 s budget.
        assert time.monotonic() - started < 3
    assert tries(caplog) == [
        ("heartbeat refused", 1, True),
        ("heartbeat refused", 2, True),
        ("heartbeat refused", 3, False),
    ]
    assert beats_in_moto(moto, "orders-schedule", 6) == []


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


def azure_env(base: str) -> dict[str, str]:
    return {
        "EDW_CLOUD": "azure",
        "EDW_HEARTBEAT_TASK": "queue-metrics",
        "EDW_HEARTBEAT_ENDPOINT": base,
        "EDW_HEARTBEAT_RULE": "dcr-0123",
    }


def test_an_azure_beat_outlasts_a_moment_without_the_ingestion_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "edw.heartbeat")
    credential = FakeCredential("https://monitor.azure.com//.default")
    with RecordingEndpoint() as ingestion, CuttingProxy(int(ingestion.base.split(":")[-1])) as link:
        with cut_for(link, 0.5):
            assert heartbeat.beat(azure_env(f"http://127.0.0.1:{link.port}"), credential, NOW)
        assert len(ingestion.requests) == 1
    assert tries(caplog) == [("heartbeat refused", 1, True), ("heartbeat", 2, False)]


def test_an_azure_beat_retries_a_server_error_but_not_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 503 from the ingestion endpoint may pass; a 403 (a missing role) will not, so it is
    reported at once."""
    caplog.set_level(logging.INFO, "edw.heartbeat")
    credential = FakeCredential("https://monitor.azure.com//.default")
    retry = heartbeat.Retry(attempts=3, first_backoff=0.1, budget=1.0)
    with RecordingEndpoint() as ingestion:
        ingestion.status = 503
        assert heartbeat.beat(azure_env(ingestion.base), credential, NOW, retry) is False
        assert len(ingestion.requests) == 3
        ingestion.status = 403
        assert heartbeat.beat(azure_env(ingestion.base), credential, NOW, retry) is False
        assert len(ingestion.requests) == 4
    assert [t[1:] for t in tries(caplog)] == [(1, True), (2, True), (3, False), (1, False)]
