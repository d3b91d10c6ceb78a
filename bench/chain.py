"""Workflows behind a router on the emulators, with their handlers as local processes: what the
handler tests, the chain demo (tools/chain.py) and the handler benchmark share.

The router is moto's SNS on AWS (one topic; each workflow's queue subscribed with raw delivery and
its filter as a MessageBody filter policy, as components/aws renders it), and on Azure the local
Event Grid stand-in (bench/event_grid.py, which says what it does not check).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emulators import REPO, Target, child_env, stop_process, wait_for_port
from bench.event_grid import EventGridStandIn
from components.routing import parse_filter, sns_filter_policy


@dataclass(frozen=True)
class Workflow:
    name: str
    target: Target  # its queue, dead-letter queue and table on the emulator
    filter: Mapping[str, Any] | None = None  # edw:workflows' filter (absent: every event)


@contextlib.contextmanager
def router(emulator: Any, workflows: Sequence[Workflow]) -> Iterator[str]:
    """The router's address (SNS topic ARN / stand-in endpoint) with every workflow
    subscribed; what the consumer's EDW_ROUTER names."""
    if not workflows:
        raise ValueError("a router needs at least one workflow")
    if workflows[0].target.cloud == "aws":
        yield sns_router(emulator, workflows)
        return
    subscriptions = {w.target.env["EDW_QUEUE"]: parse_filter(w.filter) for w in workflows}
    with EventGridStandIn(emulator.connection_string, subscriptions) as grid:
        yield grid.url


def sns_router(moto: Any, workflows: Sequence[Workflow]) -> str:
    sns = moto.client("sns")
    topic = sns.create_topic(Name=f"router-{workflows[0].name}-{id(workflows)}")["TopicArn"]
    for workflow in workflows:
        target: Any = workflow.target
        arn = target.sqs.get_queue_attributes(
            QueueUrl=target.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        attributes = {"RawMessageDelivery": "true"}
        if workflow.filter:
            policy = sns_filter_policy(parse_filter(workflow.filter))
            attributes |= {"FilterPolicy": json.dumps(policy), "FilterPolicyScope": "MessageBody"}
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return topic


class HandlerProcess:
    """A handler as a local process serving ``PORT`` (the variable the pod sets), its output in
    ``log``. ``start`` waits until the port accepts connections."""

    def __init__(self, command: Sequence[str], port: int, log: Path, cwd: Path = REPO) -> None:
        self.command = list(command)
        self.port = port
        self.log = log
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, wait: bool = True) -> HandlerProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=child_env({"PORT": str(self.port)}),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C is for the owner, which stops it in order
            )
        if wait:
            wait_for_port(self.port, 30)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)

    def kill(self) -> None:
        """Gone at once, as a crashed container: connections refused from now on."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> HandlerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
