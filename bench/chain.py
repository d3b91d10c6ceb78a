"""Workflows behind a router on the emulators, with their handlers as local processes: what the
handler tests, the chain demo (tools/chain.py) and the handler benchmark share.

The router is moto's SNS on AWS (one topic; each workflow's queue subscribed with raw delivery and
its filter as a MessageBody filter policy, as components/aws renders it), and on Azure the local
Event Grid stand-in (bench/event_grid.py, which says what it does not check).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emulators import REPO, Target, child_env, free_port, stop_process, wait_for_port
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


EXAMPLES = REPO / "examples"
# How each example handler runs as a local process (its Dockerfile's CMD, without Docker).
EXAMPLE_COMMANDS = {
    "orders": ["node", str(EXAMPLES / "orders" / "server.js")],
    "shipping": [sys.executable, str(EXAMPLES / "shipping" / "handler.py")],
}
# The consumers of a chain answer quickly on an emulator: short polls, a short drain.
CHAIN_ENV = {"EDW_RECEIVE_WAIT_SECONDS": "1", "EDW_SHUTDOWN_TIMEOUT_SECONDS": "5"}


def example_workflows() -> list[dict[str, Any]]:
    """examples/workflows.json: the edw:workflows value that wires the example handlers."""
    return json.loads((EXAMPLES / "workflows.json").read_text())


class ConsumerProcess:
    """``python -m app.consumer`` as a child process (the tests' too: tests/app/conftest.py),
    health and metrics on a loopback port it picks (its log names it)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._port: int | None = None
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.consumer"],
                # Port 0: the consumer binds a free one and logs it (no race between workers);
                # loopback only, like every process the tests and the demos start.
                env=child_env({**env, "EDW_HTTP_PORT": "0", "EDW_HTTP_HOST": "127.0.0.1"}),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C is for the owner, which stops it in order
            )

    @property
    def port(self) -> int:
        if self._port is None:
            for line in self.log.read_text().splitlines():
                if '"serving health and metrics"' in line:
                    self._port = int(json.loads(line)["port"])
                    break
            else:
                raise ConnectionRefusedError("the consumer has not reported its port yet")
        return self._port

    def metrics(self) -> dict[str, float]:
        """name{labels} -> value of every sample (empty until it serves)."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return {}
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Running:
    """One workflow of a running chain."""

    workflow: Workflow
    handler: HandlerProcess | None
    consumer: ConsumerProcess


class Chain:
    """Workflows (edw:workflows items with a ``handler``) on an emulator: their queues and
    tables, the router, each handler as a local process (``commands``), each consumer."""

    def __init__(
        self,
        emulator: Any,
        items: Sequence[Mapping[str, Any]],
        logs: Path,
        commands: Mapping[str, Sequence[str]] = EXAMPLE_COMMANDS,
        env: Mapping[str, str] = CHAIN_ENV,
    ) -> None:
        self.emulator = emulator
        self.items = items
        self.logs = logs
        self.commands = commands
        self.env = env
        self.running: dict[str, Running] = {}
        self.router = ""
        self.cloud = ""
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Chain:
        suffix = uuid.uuid4().hex[:6]
        workflows = [
            Workflow(i["name"], self.emulator.provision(f"{i['name']}-{suffix}"), i.get("filter"))
            for i in self.items
        ]
        self.cloud = workflows[0].target.cloud
        try:
            self.router = self._stack.enter_context(router(self.emulator, workflows))
            for workflow in workflows:
                self._start(workflow)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, workflow: Workflow) -> None:
        env = {**workflow.target.env, **self.env, "EDW_WORKFLOW": workflow.name}
        handler = None
        if workflow.name in self.commands:
            log = self.logs / f"{workflow.name}-handler.log"
            handler = HandlerProcess(self.commands[workflow.name], free_port(), log)
            self._stack.callback(handler.stop)
            handler.start()
            env |= {"EDW_HANDLER_URL": handler.url, "EDW_ROUTER": self.router}
        consumer = ConsumerProcess(env, self.logs / f"{workflow.name}-consumer.log")
        self._stack.callback(consumer.stop)  # stopped before its handler (LIFO), as in a pod
        self.running[workflow.name] = Running(workflow, handler, consumer)

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def publish(self, bodies: Sequence[str]) -> None:
        """Publish events to the router, as a producer does (raises when it refuses one)."""
        if self.cloud == "aws":
            sns = self.emulator.client("sns")
            for start in range(0, len(bodies), 10):
                entries = [
                    {"Id": str(n), "Message": body}
                    for n, body in enumerate(bodies[start : start + 10])
                ]
                sent = sns.publish_batch(TopicArn=self.router, PublishBatchRequestEntries=entries)
                if sent.get("Failed"):
                    raise RuntimeError(f"the router refused events: {sent['Failed']}")
            return
        request = urllib.request.Request(
            self.router,
            data=("[" + ",".join(bodies) + "]").encode(),
            headers={"Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
        )
        with urllib.request.urlopen(request, timeout=30):
            pass
