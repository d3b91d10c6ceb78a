"""Producer: pacing patterns, target resolution (flags > env > stack outputs), payload size."""

from __future__ import annotations

import argparse
import json
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from app import events
from app.backend import MAX_EVENT_BYTES
from app.producer import (
    Run,
    Schedule,
    TargetError,
    _sender,
    body,
    parser,
    resolve_target,
    stack_outputs,
)


@pytest.mark.parametrize(
    ("pattern", "t", "due"),
    [
        ("steady", 0.0, 0),
        ("steady", 2.5, 250),
        ("burst", 0.0, 1000),  # a period's whole allowance is due at its start
        ("burst", 9.99, 1000),
        ("burst", 10.0, 2000),
        ("ramp", 30.0, 750),  # half way up the ramp: area of the triangle 100 * 30 / 2 / 2
        ("ramp", 60.0, 3000),
        ("ramp", 70.0, 4000),  # then steady at the full rate
    ],
)
def test_schedule_paces_each_pattern(pattern: str, t: float, due: float) -> None:
    assert Schedule(pattern, 100, ramp_seconds=60, burst_seconds=10).due(t) == pytest.approx(due)


def test_rate_zero_means_no_limit() -> None:
    assert Schedule("ramp", 0).due(0) == float("inf")


@pytest.mark.parametrize("size", [0, 300, 4096, MAX_EVENT_BYTES])
def test_bodies_are_valid_cloudevents_of_the_requested_size(size: int) -> None:
    text = body(7, size, "urn:p", "t.created")
    event = events.parse(text)
    assert event.data["seq"] == 7
    assert (event.source, event.type) == ("urn:p", "t.created")
    smallest = len(body(7, 0, "urn:p", "t.created").encode())
    assert len(text.encode()) == max(size, smallest)


def test_flags_win_over_environment_over_stack_outputs() -> None:
    outputs = {"cloud": "azure", "queueName": "from-stack", "storageAccount": "stackacct"}
    args = parser().parse_args([])
    assert resolve_target(args, {}, outputs).address == "from-stack"
    env = {"EDW_CLOUD": "azure", "EDW_QUEUE": "from-env"}
    assert resolve_target(args, env, outputs).address == "from-env"
    flagged = parser().parse_args(["--queue", "from-flag", "--storage-account", "flagacct"])
    target = resolve_target(flagged, env, outputs)
    assert (target.cloud, target.address, target.storage_account) == (
        "azure",
        "from-flag",
        "flagacct",
    )


def test_aws_target_from_stack_outputs() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/edw-work"
    target = resolve_target(parser().parse_args([]), {}, {"cloud": "aws", "queueUrl": url})
    assert (target.cloud, target.address) == ("aws", url)


TOPIC = "arn:aws:sns:eu-west-1:123456789012:router-topic-1a2b3c4"
ROUTED = {
    "cloud": "aws",
    "queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/work-queue",
    "routerTopicArn": TOPIC,
    "workflows": {
        "work": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/work-queue"},
        "orders": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-queue"},
    },
}


def test_a_stack_with_a_router_is_published_to_through_it() -> None:
    target = resolve_target(parser().parse_args([]), {}, ROUTED)
    assert (target.kind, target.address) == ("router", TOPIC)


def test_a_workflow_queue_is_named_by_the_workflow() -> None:
    args = parser().parse_args(["--target", "queue", "--workflow", "orders"])
    target = resolve_target(args, {}, ROUTED)
    assert (target.kind, target.address) == ("queue", ROUTED["workflows"]["orders"]["queueUrl"])
    # --workflow alone means the queue too; without it, the stack's first workflow.
    alone = resolve_target(parser().parse_args(["--workflow", "orders"]), {}, ROUTED)
    assert alone.address == ROUTED["workflows"]["orders"]["queueUrl"]
    first = resolve_target(parser().parse_args(["--target", "queue"]), {}, ROUTED)
    assert first.address == ROUTED["queueUrl"]


def test_a_consumers_environment_names_its_queue_not_the_router() -> None:
    env = {"EDW_CLOUD": "aws", "EDW_QUEUE": "https://sqs.eu-west-1.amazonaws.com/1/q"}
    target = resolve_target(parser().parse_args([]), env, ROUTED)
    assert (target.kind, target.address) == ("queue", env["EDW_QUEUE"])


@pytest.mark.parametrize(
    ("argv", "outputs", "message"),
    [
        (["--workflow", "payments"], ROUTED, "no workflow 'payments'.*known: orders, work"),
        (["--target", "router"], {"cloud": "aws", "queueUrl": "q"}, "no router: use --router"),
    ],
)
def test_unknown_workflow_or_missing_router_is_a_clear_error(
    argv: list[str], outputs: dict[str, object], message: str
) -> None:
    with pytest.raises(TargetError, match=message):
        resolve_target(parser().parse_args(argv), {}, outputs)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "cloud None is not one of: aws, azure"),
        (["--cloud", "aws"], {}, "no queue: use --queue, EDW_QUEUE or a stack output queueUrl"),
        (["--cloud", "azure", "--queue", "q1"], {}, "azure needs --connection-string"),
    ],
)
def test_missing_target_is_a_clear_error(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(TargetError, match=message):
        resolve_target(parser().parse_args(argv), env, None)


@pytest.mark.parametrize("argv", [["--count", "0"], ["--rate", "-1"], ["--pattern", "wave"]])
def test_bad_load_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)


def fake_pulumi(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = tmp_path / "pulumi"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_stack_outputs_come_from_the_pulumi_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = {"cloud": "aws", "queueUrl": "https://q", "workflows": {"work": {"queueUrl": "q"}}}
    # The fake CLI echoes its arguments into the output so the test sees how it was called.
    fake_pulumi(
        tmp_path,
        f"""echo '{json.dumps(outputs)[:-1]}, "argv": "'"$*"'"}}'\n""",
        monkeypatch,
    )
    got = stack_outputs("aws")
    # Structured outputs (the workflows) are kept: the producer looks a workflow up in them.
    assert got == {**outputs, "argv": "stack output --json --stack aws"}


def test_stack_output_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pulumi(tmp_path, "echo 'no stack named dev' >&2; exit 255\n", monkeypatch)
    with pytest.raises(TargetError, match="pulumi stack output failed: no stack named dev"):
        stack_outputs("dev")


class CountingQueue:
    """A Sender that counts what it is given and stops the run after ``stop_after`` calls."""

    max_batch = 10

    def __init__(self, run: Run, stop_after: int) -> None:
        self.run, self.stop_after, self.calls = run, stop_after, 0

    def send(self, bodies: Sequence[str]) -> int:
        self.calls += 1
        if self.calls == self.stop_after:
            self.run.stop()
        return 0


SENDER_ARGS = argparse.Namespace(payload_bytes=64, source="urn:test", type="test")


def test_a_stopped_run_sends_nothing_more() -> None:
    run = Run(1000, 10)
    queue = CountingQueue(run, stop_after=3)
    _sender(run, queue, Schedule("steady", 0), SENDER_ARGS)  # rate 0: nothing paces it
    assert (queue.calls, run.sent) == (3, 30)


def test_a_sender_waiting_for_its_turn_returns_when_the_run_stops() -> None:
    run = Run(1000, 10)
    queue = CountingQueue(run, stop_after=0)
    # 0.1 message per second: the first batch is due after 100 s.
    sender = threading.Thread(
        target=_sender, args=(run, queue, Schedule("steady", 0.1), SENDER_ARGS)
    )
    sender.start()
    run.stop()
    sender.join(timeout=5)
    assert not sender.is_alive()
    assert (queue.calls, run.sent) == (0, 0)
