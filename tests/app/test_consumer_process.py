"""The consumer process refuses bad settings before touching any cloud (no emulator needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.observability import Metrics
from bench.emulators import REPO, child_env


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "EDW_CLOUD is required"),
        ({"EDW_CLOUD": "gcp"}, "EDW_CLOUD='gcp' is not one of: aws, azure"),
        ({"EDW_CONCURRENCY": "lots"}, "EDW_CONCURRENCY='lots' is not an integer"),
        ({"EDW_QUEUE": "orders"}, "EDW_QUEUE='orders' is not an SQS queue URL"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_variable(env: dict[str, str], named: str) -> None:
    base = {
        "EDW_CLOUD": "aws",
        "EDW_QUEUE": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
        "EDW_DEAD_LETTER_QUEUE": "https://sqs.us-east-1.amazonaws.com/123456789012/work-dlq",
        "EDW_TABLE": "events",
    }
    merged = {**base, **env} if env else {}
    result = subprocess.run(
        [sys.executable, "-m", "app.consumer"],
        env=child_env(merged),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stdout.splitlines()
    assert named in json.loads(line)["message"]


def test_every_consumer_series_names_its_workflow() -> None:
    """Workflows share the consumer namespace: the alert rules and the dashboard tell their
    series apart by the workflow label the consumer puts on every one."""
    metrics = Metrics("azure", "orders")
    metrics.received.inc(3)
    text = metrics.exposition().decode()
    series = [line for line in text.splitlines() if line.startswith("edw_")]
    assert series
    assert all('workflow="orders"' in line for line in series)
    assert 'edw_messages_received_total{cloud="azure",workflow="orders"} 3.0' in text
