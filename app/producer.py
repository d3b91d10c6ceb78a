"""Load generator: publish realistic CloudEvents to a deployed stack's router or one workflow's
queue (or an emulator's).

    python -m app.producer --stack aws --count 10000 --rate 500 --pattern ramp
    python -m app.producer --stack aws --target queue --workflow orders --count 100

The target comes from flags, else from the environment (the consumer's EDW_* variables), else from
``pulumi stack output --json`` of ``--stack``. Sends are batched (10 per SNS PublishBatch or SQS
call; Event Grid takes up to 1 MB of events a request; Storage queues have no batch send, so
calls run in parallel), paced by the chosen pattern, with a progress bar (rich) on stderr and a
summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from app import events
from app.backend import MAX_EVENT_BYTES, Sender, event_size_problem, open_queue, open_router

PATTERNS = ("steady", "burst", "ramp")
# Stack outputs the producer understands (exported by the Pulumi program).
QUEUE_OUTPUTS = {"aws": "queueUrl", "azure": "queueName"}
ROUTER_OUTPUTS = {"aws": "routerTopicArn", "azure": "routerEndpoint"}
TARGETS = ("router", "queue")


class TargetError(ValueError):
    """The producer cannot tell where to send."""


@dataclass(frozen=True)
class Target:
    cloud: str
    address: str  # router: topic ARN / Event Grid endpoint; queue: SQS URL / queue name
    connection_string: str | None = None
    storage_account: str | None = None
    kind: str = "queue"


@dataclass(frozen=True)
class Schedule:
    """How many messages may have been sent ``t`` seconds after the start (rate 0: no limit)."""

    pattern: str
    rate: float
    ramp_seconds: float = 60.0
    burst_seconds: float = 10.0

    def due(self, t: float) -> float:
        if self.rate <= 0:
            return math.inf
        if self.pattern == "burst":
            # Each period's whole allowance goes out at its start, then the queue rests.
            return self.rate * self.burst_seconds * (math.floor(t / self.burst_seconds) + 1)
        if self.pattern == "ramp" and t < self.ramp_seconds:
            # The rate climbs linearly from 0 to ``rate``; the count is the area under it.
            return self.rate * t * t / (2 * self.ramp_seconds)
        if self.pattern == "ramp":
            return self.rate * (t - self.ramp_seconds / 2)
        return self.rate * t


def resolve_target(
    args: argparse.Namespace, env: Mapping[str, str], outputs: Mapping[str, Any] | None
) -> Target:
    """Flags win over the environment, which wins over the stack outputs. The router is the
    default whenever one is known and no queue was named (--queue, EDW_QUEUE, --workflow)."""
    stack = outputs or {}
    cloud = args.cloud or env.get("EDW_CLOUD") or stack.get("cloud")
    if cloud not in ("aws", "azure"):
        raise TargetError(f"cloud {cloud!r} is not one of: aws, azure (use --cloud or --stack)")
    workflow = getattr(args, "workflow", None)
    named_queue = args.queue or env.get("EDW_QUEUE")
    router = (
        getattr(args, "router", None) or env.get("EDW_ROUTER") or stack.get(ROUTER_OUTPUTS[cloud])
    )
    kind = getattr(args, "target", None) or (
        "router" if router and not (named_queue or workflow) else "queue"
    )
    if kind == "router":
        if not router:
            raise TargetError(
                f"no router: use --router, EDW_ROUTER or a stack output {ROUTER_OUTPUTS[cloud]} "
                "(or --target queue)"
            )
        return Target(cloud, router, kind="router")
    queue = named_queue or workflow_queue(stack, cloud, workflow)
    if not queue:
        raise TargetError(
            f"no queue: use --queue, EDW_QUEUE or a stack output {QUEUE_OUTPUTS[cloud]}"
        )
    connection = args.connection_string or env.get("EDW_AZURE_CONNECTION_STRING")
    account = args.storage_account or env.get("EDW_STORAGE_ACCOUNT") or stack.get("storageAccount")
    if cloud == "azure" and not (connection or account):
        raise TargetError(
            "azure needs --connection-string/EDW_AZURE_CONNECTION_STRING or "
            "--storage-account/EDW_STORAGE_ACCOUNT (or a stack output storageAccount)"
        )
    return Target(cloud, queue, connection, account)


def workflow_queue(stack: Mapping[str, Any], cloud: str, workflow: str | None) -> str | None:
    """One workflow's queue from the stack's ``workflows`` output; without a workflow, the
    stack's first (its ``queueUrl`` / ``queueName``)."""
    if workflow is None:
        return stack.get(QUEUE_OUTPUTS[cloud])
    workflows = stack.get("workflows") or {}
    if workflow not in workflows:
        known = ", ".join(sorted(workflows)) or "none (use --stack)"
        raise TargetError(f"no workflow {workflow!r} in the stack outputs; known: {known}")
    return workflows[workflow][QUEUE_OUTPUTS[cloud]]


def stack_outputs(stack: str) -> dict[str, Any]:
    try:
        result = subprocess.run(
            ["pulumi", "stack", "output", "--json", "--stack", stack],
            capture_output=True,
            text=True,
            check=True,
        )
    except FileNotFoundError as exc:
        raise TargetError("the pulumi CLI is not installed; pass --cloud and --queue") from exc
    except subprocess.CalledProcessError as exc:
        raise TargetError(f"pulumi stack output failed: {exc.stderr.strip()}") from exc
    return json.loads(result.stdout)


def body(seq: int, payload_bytes: int, source: str, type_: str) -> str:
    """One CloudEvent of ``payload_bytes`` (padding fills up the data), or as small as it gets."""
    data = {"seq": seq, "customer": f"c-{seq % 997:03d}", "amount_cents": (seq * 7919) % 100_000}
    bare = events.make({**data, "pad": ""}, source=source, type_=type_)
    pad = max(0, payload_bytes - len(bare.encode()))
    event = events.make({**data, "pad": "x" * pad}, source=source, type_=type_)
    # A time whose microseconds are 0 is written 7 characters shorter: never exceed the size.
    over = len(event.encode()) - max(payload_bytes, len(bare.encode()))
    if over > 0 and pad:
        event = events.make({**data, "pad": "x" * max(0, pad - over)}, source=source, type_=type_)
    return event


class Run:
    """Shared counters of one producer run; worker threads claim slices of the sequence."""

    def __init__(self, count: int, batch: int) -> None:
        self.count = count
        self.batch = batch
        self.next = 0
        self.sent = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.stopping = threading.Event()

    def stop(self) -> None:
        """No new sends: senders finish the call they are in and return (Ctrl-C in the demo)."""
        self.stopping.set()

    def claim(self) -> range | None:
        with self.lock:
            if self.next >= self.count or self.stopping.is_set():
                return None
            start, self.next = self.next, min(self.next + self.batch, self.count)
            return range(start, self.next)

    def record(self, sent: int, failed: int) -> None:
        with self.lock:
            self.sent += sent
            self.failed += failed

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _sender(run: Run, queue: Sender, schedule: Schedule, args: argparse.Namespace) -> None:
    while (seqs := run.claim()) is not None:
        while schedule.due(run.elapsed()) < seqs.stop:
            if run.stopping.wait(0.005):
                return
        bodies = [body(i, args.payload_bytes, args.source, args.type) for i in seqs]
        # One size limit on both clouds: an event over it is not sent (it would never arrive on
        # Azure), and counts as failed with the reason.
        problems = [p for p in map(event_size_problem, bodies) if p]
        if problems:
            print(f"not sent: {problems[0]}", file=sys.stderr)
            bodies = [b for b in bodies if not event_size_problem(b)]
        try:
            failed = queue.send(bodies) if bodies else 0
        except Exception as exc:  # count and go on: the summary reports every failure
            print(f"send failed: {exc}", file=sys.stderr)
            failed = len(bodies)
        run.record(len(bodies) - failed, failed + len(problems))


def _progress(run: Run, done: threading.Event) -> None:
    """A progress bar on stderr (rich), refreshed five times a second until ``done``."""
    columns = (
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7.0f} msg/s  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("send", total=run.count, rate=0.0, failed=0)
        while True:
            finished = done.wait(0.2)
            bar.update(
                task,
                completed=run.sent + run.failed,
                rate=run.sent / max(run.elapsed(), 1e-9),
                failed=run.failed,
            )
            if finished:
                return


def produce(target: Target, args: argparse.Namespace, run: Run | None = None) -> dict[str, float]:
    """Send ``args.count`` events; ``run`` lets a caller (the demo) watch the counters live."""
    pool = args.concurrency * 8
    queue = (
        open_router(target.cloud, target.address, pool_size=pool)
        if target.kind == "router"
        else open_queue(
            target.cloud,
            target.address,
            connection_string=target.connection_string,
            storage_account=target.storage_account,
            pool_size=pool,
        )
    )
    run = run or Run(args.count, queue.max_batch)
    schedule = Schedule(args.pattern, args.rate, args.ramp_seconds, args.burst_seconds)
    senders = [
        threading.Thread(target=_sender, args=(run, queue, schedule, args), daemon=True)
        for _ in range(args.concurrency)
    ]
    done = threading.Event()
    bar = threading.Thread(target=_progress, args=(run, done), daemon=True)
    if args.progress:
        bar.start()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    done.set()
    if args.progress:
        bar.join()
    seconds = run.elapsed()
    return {
        "sent": run.sent,
        "failed": run.failed,
        "seconds": round(seconds, 3),
        "rate": round(run.sent / max(seconds, 1e-9), 1),
    }


def _positive(kind: type[int] | type[float], low: float) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.producer", description=__doc__.split("\n")[0])
    where = p.add_argument_group("target (flags > EDW_* environment > stack outputs)")
    where.add_argument("--stack", help="read the target from `pulumi stack output --json`")
    where.add_argument("--cloud", choices=("aws", "azure"))
    where.add_argument(
        "--target",
        choices=TARGETS,
        help="router: publish to the router (the default when the stack has one); queue: send "
        "to one workflow's queue",
    )
    where.add_argument("--workflow", help="with --target queue: the workflow whose queue to use")
    where.add_argument("--router", help="SNS topic ARN (aws) or Event Grid endpoint (azure)")
    where.add_argument("--queue", help="SQS queue URL (aws) or queue name (azure)")
    where.add_argument("--connection-string", help="Azure storage connection string (Azurite)")
    where.add_argument("--storage-account", help="Azure storage account (DefaultAzureCredential)")
    load = p.add_argument_group("load")
    load.add_argument("--count", type=_positive(int, 1), default=1000, help="messages to send")
    load.add_argument("--rate", type=_positive(float, 0), default=0, help="msgs/s; 0 = no limit")
    load.add_argument(
        "--pattern",
        choices=PATTERNS,
        default="steady",
        help="steady: constant rate; burst: each period's messages at once; ramp: 0 up to --rate",
    )
    load.add_argument(
        "--ramp-seconds", type=_positive(float, 0.001), default=60.0, help="ramp duration"
    )
    load.add_argument(
        "--burst-seconds", type=_positive(float, 0.001), default=10.0, help="burst period"
    )
    load.add_argument(
        "--payload-bytes",
        type=_positive(int, 0),
        default=512,
        help=f"size of each event's JSON (at most {MAX_EVENT_BYTES}, the limit on both clouds)",
    )
    load.add_argument(
        "--concurrency", type=_positive(int, 1), default=4, help="parallel sender threads"
    )
    load.add_argument("--source", default="urn:edw:producer")
    load.add_argument("--type", default="com.example.edw.order.created")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=sys.stderr.isatty(),
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        outputs = stack_outputs(args.stack) if args.stack else None
        target = resolve_target(args, env, outputs)
    except TargetError as exc:
        p.error(str(exc))
    problem = event_size_problem(body(0, args.payload_bytes, args.source, args.type))
    if problem:
        p.error(f"--payload-bytes {args.payload_bytes}: {problem}")
    summary = produce(target, args)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"sent={summary['sent']} failed={summary['failed']} "
            f"seconds={summary['seconds']} rate={summary['rate']} msg/s"
        )
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
