"""Consumer throughput against the raw API ceiling, on moto and Azurite, at 0 and 15 ms latency.

    python -m bench            (or: make bench)

For each cloud and injected latency it alternates rounds of (a) the ceiling: a tight loop of batch
receive, batch write, batch delete with raw SDK calls and no consumer logic, and (b) the real
consumer (``app.consumer.Consumer`` with its production backend), both with ``CONCURRENCY``
threads. It prints the medians: msgs/s, consumer/ceiling ratio, CPU seconds per 1,000 messages
(CPU of this process only: emulators, delay proxy and feeder run in their own processes).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from app import backend as backends
from app.backend import Received, WorkQueue
from app.consumer import Consumer
from app.observability import Metrics
from app.settings import load
from bench.emulators import (
    AWS_TEST_ENV,
    AzuriteEmulator,
    MotoEmulator,
    azurite_connection_string,
    free_port,
    stop_process,
    wait_for_port,
)
from bench.feeder import FeedPlan, feed

CONCURRENCY = 4
LATENCIES_MS = (0, 15)
ROUNDS = 5
MESSAGES = {"aws": 800, "azure": 800}
# Visible plus in-flight messages the feeder allows: shallow for moto, whose SQS cost grows with
# depth; Azure needs room for CONCURRENCY batches of 32 in flight plus a visible reserve.
DEPTH = {"aws": 60, "azure": 192}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MP = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Sample:
    seconds: float
    cpu_seconds: float
    messages: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.cpu_seconds / self.messages


@dataclass
class Scenario:
    """One emulator at one latency: where the measured side connects and how to provision."""

    cloud: str
    direct: str  # endpoint/connection string for provisioning and the feeder
    measured: str  # the same through the delay proxy (or direct at 0 ms)
    provision: Callable[[str], dict[str, str]]


def _add(counter: Synchronized, n: int) -> None:
    with counter.get_lock():
        counter.value += n


# (a) The ceiling: raw SDK calls, no parsing, no metrics, no heartbeat ----------------------------


def _aws_ceiling(env: dict[str, str], endpoint: str) -> Callable[[Synchronized, int], None]:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    config = Config(max_pool_connections=CONCURRENCY * 2 + 4, retries={"mode": "standard"})
    session = boto3.session.Session()
    sqs = session.client("sqs", endpoint_url=endpoint, config=config)
    ddb = session.client("dynamodb", endpoint_url=endpoint, config=config)
    url, table = env["EDW_QUEUE"], env["EDW_TABLE"]

    def loop(consumed: Synchronized, total: int) -> None:
        while consumed.value < total:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
            ).get("Messages", [])
            if not messages:
                continue
            items = [
                {"PutRequest": {"Item": {"id": {"S": m["MessageId"]}, "body": {"S": m["Body"]}}}}
                for m in messages
            ]
            ddb.batch_write_item(RequestItems={table: items})
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            _add(consumed, len(messages))

    return loop


def _azure_ceiling(env: dict[str, str], connection: str) -> Callable[[Synchronized, int], None]:
    from azure.data.tables import TableClient, UpdateMode  # noqa: PLC0415
    from azure.storage.queue import QueueClient  # noqa: PLC0415

    from app.azure import AZURE_BATCH  # noqa: PLC0415

    queue = QueueClient.from_connection_string(connection, env["EDW_QUEUE"])
    table = TableClient.from_connection_string(connection, env["EDW_TABLE"])
    pool = ThreadPoolExecutor(max(16, CONCURRENCY * 4))

    def loop(consumed: Synchronized, total: int) -> None:
        while consumed.value < total:
            pages = queue.receive_messages(
                messages_per_page=AZURE_BATCH, max_messages=AZURE_BATCH, visibility_timeout=60
            ).by_page()
            messages = list(next(pages, []))
            if not messages:
                time.sleep(0.05)
                continue
            # The same table key design: every row a partition of its own, one upsert each.
            entities = [{"PartitionKey": m.id, "RowKey": m.id, "body": m.content} for m in messages]
            list(pool.map(lambda e: table.upsert_entity(e, mode=UpdateMode.REPLACE), entities))
            list(pool.map(lambda m: queue.delete_message(m.id, m.pop_receipt), messages))
            _add(consumed, len(messages))

    return loop


class Runner:
    """Prepared outside the clock: ``start`` begins consuming, ``stop`` winds down afterwards."""

    start: Callable[[], None]
    stop: Callable[[], None]


class CeilingRunner(Runner):
    def __init__(
        self, scenario: Scenario, env: dict[str, str], consumed: Synchronized, total: int
    ) -> None:
        make = _aws_ceiling if scenario.cloud == "aws" else _azure_ceiling
        loop = make(env, scenario.measured)
        self.threads = [
            threading.Thread(target=loop, args=(consumed, total)) for _ in range(CONCURRENCY)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for thread in self.threads:
            thread.join()


# (b) Our consumer: the production code path, counted at delete ----------------------------------


class CountingQueue:
    """Bumps the shared counter after each delete, so both sides are timed at the same point."""

    def __init__(self, inner: WorkQueue, consumed: Synchronized) -> None:
        self.inner = inner
        self.consumed = consumed
        self.max_batch = inner.max_batch
        self.long_polls = inner.long_polls
        self.max_visibility_seconds = inner.max_visibility_seconds

    def receive(
        self, wait_seconds: int, visibility_seconds: int, max_messages: int
    ) -> list[Received]:
        return self.inner.receive(wait_seconds, visibility_seconds, max_messages)

    def delete(self, messages: Sequence[Received]) -> list[Received]:
        failed = self.inner.delete(messages)
        _add(self.consumed, len(messages) - len(failed))
        return failed

    def extend(self, messages: Sequence[Received], seconds: int) -> list[Received]:
        return self.inner.extend(messages, seconds)

    def send(self, bodies: Sequence[str]) -> int:
        return self.inner.send(bodies)

    def send_dead_letters(self, rejects: Sequence[tuple[Received, str]]) -> list[Received]:
        return self.inner.send_dead_letters(rejects)


class ConsumerRunner(Runner):
    def __init__(
        self, scenario: Scenario, env: dict[str, str], consumed: Synchronized, total: int
    ) -> None:
        del scenario, total  # the consumer runs until stopped; its env says where to connect
        overrides = {"EDW_CONCURRENCY": str(CONCURRENCY), "EDW_RECEIVE_WAIT_SECONDS": "1"}
        settings = load({**env, **overrides})
        backend = backends.build(settings)
        self.backend = dataclasses.replace(backend, queue=CountingQueue(backend.queue, consumed))
        self.consumer = Consumer(settings, self.backend, Metrics(settings.cloud))

    def start(self) -> None:
        self.consumer.start()

    def stop(self) -> None:
        self.consumer.drain(10)
        self.backend.close()


# Orchestration -----------------------------------------------------------------------------------


RunnerFactory = Callable[[Scenario, dict[str, str], Synchronized, int], Runner]


def measure(scenario: Scenario, kind: str, make: RunnerFactory | None = None) -> Sample:
    """One timed drain of ``MESSAGES`` by the ceiling or the consumer (or ``make``'s runner)."""
    name = f"b{uuid.uuid4().hex[:10]}"
    env = scenario.provision(name)
    total = MESSAGES[scenario.cloud]
    consumed: Synchronized = MP.Value("q", 0)
    primed = MP.Event()
    plan = FeedPlan(scenario.cloud, env["EDW_QUEUE"], scenario.direct, total, DEPTH[scenario.cloud])
    feeder = MP.Process(target=feed, args=(plan, consumed, primed), daemon=True)
    feeder.start()
    if not primed.wait(60):
        raise RuntimeError("the feeder did not fill the queue within 60 s")
    make = make or (CeilingRunner if kind == "ceiling" else ConsumerRunner)
    runner = make(scenario, env, consumed, total)
    # The clock covers consuming only: clients are built before, and the wind-down (threads
    # finishing their last long poll) comes after the last delete.
    wall, cpu = time.perf_counter(), time.process_time()
    runner.start()
    while consumed.value < total:
        time.sleep(0.005)
    sample = Sample(time.perf_counter() - wall, time.process_time() - cpu, total)
    runner.stop()
    feeder.join(10)
    return sample


@contextmanager
def delay_proxy(ports: Sequence[int], delay_ms: int) -> Iterator[dict[int, int]]:
    """Map each upstream port to a local port that adds ``delay_ms`` to every request."""
    if delay_ms == 0:
        yield {port: port for port in ports}
        return
    mapping = {port: free_port() for port in ports}
    pairs = [f"{listen}:{upstream}" for upstream, listen in mapping.items()]
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy", "--delay-ms", str(delay_ms), *pairs]
    )
    try:
        for listen in mapping.values():
            wait_for_port(listen)
        yield mapping
    finally:
        stop_process(process)


@contextmanager
def scenario_for(cloud: str, delay_ms: int) -> Iterator[Scenario]:
    if cloud == "aws":
        with MotoEmulator(own_process=True) as moto, delay_proxy([moto.port], delay_ms) as ports:
            measured = f"http://127.0.0.1:{ports[moto.port]}"

            def provision_aws(name: str) -> dict[str, str]:
                return {
                    **moto.provision(name, visibility_seconds=60).env,
                    "AWS_ENDPOINT_URL": measured,
                }

            os.environ["AWS_ENDPOINT_URL"] = measured  # the consumer's clients read the env
            yield Scenario("aws", moto.endpoint, measured, provision_aws)
        return
    # A fresh Azurite per scenario: its queue garbage collection stalls it after sustained load.
    with AzuriteEmulator() as azurite:
        upstream = [azurite.ports["queue"], azurite.ports["table"]]
        with delay_proxy(upstream, delay_ms) as ports:
            measured = azurite_connection_string(*(ports[p] for p in upstream))

            def provision_azure(name: str) -> dict[str, str]:
                return azurite.provision(name, connection_string=measured).env

            yield Scenario("azure", azurite.connection_string, measured, provision_azure)


def bench(clouds: Sequence[str]) -> list[dict[str, Any]]:
    os.environ.update(AWS_TEST_ENV)
    rows = []
    for cloud in clouds:
        for delay_ms in LATENCIES_MS:
            samples: dict[str, list[Sample]] = defaultdict(list)
            for round_ in range(ROUNDS):
                # Fresh emulators each round (Azurite stalls after sustained load) and the order
                # alternates, so neither side always meets a warmer or a more tired emulator.
                kinds = ("ceiling", "consumer") if round_ % 2 == 0 else ("consumer", "ceiling")
                with scenario_for(cloud, delay_ms) as scenario:
                    for kind in kinds:
                        samples[kind].append(measure(scenario, kind))
            rows.append(summarise(cloud, delay_ms, samples))
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def compare(samples: dict[str, list[Sample]], base: str, measured: str) -> dict[str, Any]:
    """Medians of two kinds of rounds, one run: throughput, its ratio, CPU s per 1k messages."""

    def median(kind: str, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in samples[kind])

    rates = {kind: median(kind, "rate") for kind in (base, measured)}
    return {
        f"{base}_msgs_per_s": round(rates[base], 1),
        f"{measured}_msgs_per_s": round(rates[measured], 1),
        "ratio": round(rates[measured] / rates[base], 2),
        f"{base}_cpu_s_per_1000": round(median(base, "cpu_per_1000"), 3),
        f"{measured}_cpu_s_per_1000": round(median(measured, "cpu_per_1000"), 3),
    }


def markdown_table(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """``rows`` as a Markdown table: ``columns`` maps a heading to its key (ms for latency)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[k]} ms" if k == "latency_ms" else str(row[k]) for k in columns.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(cloud: str, delay_ms: int, samples: dict[str, list[Sample]]) -> dict[str, Any]:
    return {
        "cloud": cloud,
        "latency_ms": delay_ms,
        "messages": MESSAGES[cloud],
        "rounds": ROUNDS,
        **compare(samples, "ceiling", "consumer"),
    }


TABLE = {
    "cloud": "cloud",
    "latency": "latency_ms",
    "ceiling msg/s": "ceiling_msgs_per_s",
    "consumer msg/s": "consumer_msgs_per_s",
    "ratio": "ratio",
    "CPU s/1k ceiling": "ceiling_cpu_s_per_1000",
    "CPU s/1k consumer": "consumer_cpu_s_per_1000",
}


def main(argv: Sequence[str]) -> int:
    clouds = argv or ["aws", "azure"]
    rows = bench(clouds)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown_table(rows, TABLE))
    bar_met = all(r["ratio"] >= 0.8 for r in rows)
    print(f"\nbar (ratio >= 0.8 at every latency): {'met' if bar_met else 'NOT met'}")
    return 0 if bar_met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
