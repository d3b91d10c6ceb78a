"""See it work in a minute, with no cloud and no Docker: `make demo CLOUD=aws|azure`.

    python -m tools.demo --cloud aws --count 10000 --pattern burst --consumers 3 --plot demo.png

Starts the emulators (moto for SQS + DynamoDB, served at a steady cost however deep the queue:
tools/steady_moto.py; or Azurite for Queue + Table), creates the queues and the table, starts
``--consumers`` real consumer processes (`python -m app.consumer`), runs the producer with the
pattern, and stops everything once the queue is drained and every row is written (or at
``--timeout``). A live view shows, each second: sent, queue depth, in flight, rows written,
dead-lettered, throughput and end-to-end latency p50/p95 (from the consumers' own
`edw_end_to_end_seconds` histograms); without a terminal it prints a line every few seconds.
At the end it draws the run (matplotlib) and prints one summary line. Exit 0 only if every event
has exactly one row and nothing is left on any queue.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from app.producer import PATTERNS, Run, Target, produce
from bench.emulators import AzuriteEmulator, MotoEmulator, child_env
from bench.emulators import Target as Provisioned
from tools.live import LiveView

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 1.0  # seconds between samples: what the view and the plot show
AZURITE_GC_INTERVAL_MS = 6 * 3600 * 1000


@dataclass
class Sample:
    t: float
    sent: int
    depth: int  # visible, waiting
    in_flight: int
    rows: int
    dead: int
    throughput: float  # rows per second over the last interval
    p50: float | None
    p95: float | None


@dataclass
class Histogram:
    """Cumulative bucket counts (le -> count) summed over the consumers."""

    buckets: dict[float, float] = field(default_factory=dict)

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram({le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()})

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear within the bucket that holds the rank."""
        bounds = sorted(self.buckets)
        total = self.buckets.get(float("inf"), 0.0)
        if total <= 0:
            return None
        rank, lower, below = q * total, 0.0, 0.0
        for le in bounds:
            count = self.buckets[le]
            if count >= rank:
                if le == float("inf"):
                    return lower
                width = count - below
                return lower + (le - lower) * ((rank - below) / width if width else 1.0)
            lower, below = le, count
        return lower


@dataclass
class ConsumerStats:
    processed: float = 0.0
    dead_lettered: float = 0.0
    in_flight: float = 0.0
    latency: Histogram = field(default_factory=Histogram)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "edw_messages_processed_total":
                    self.processed += s.value
                elif s.name == "edw_messages_dead_lettered_total":
                    self.dead_lettered += s.value
                elif s.name == "edw_messages_in_flight":
                    self.in_flight += s.value
                elif s.name == "edw_end_to_end_seconds_bucket":
                    le = float(s.labels["le"])
                    self.latency.buckets[le] = self.latency.buckets.get(le, 0.0) + s.value


class Consumer:
    """`python -m app.consumer` as a child; it binds a free port and logs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.port: int | None = None
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.consumer"],
                env=child_env({**env, "EDW_HTTP_PORT": "0", "EDW_RECEIVE_WAIT_SECONDS": "1"}),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def metrics(self) -> str:
        if self.port is None:
            for line in self.log.read_text().splitlines():
                if '"serving health and metrics"' in line:
                    self.port = int(json.loads(line)["port"])
        if self.port is None:
            return ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def queue_counts(target: Provisioned) -> tuple[int, int]:
    """(messages on the work queue incl. in flight, messages on the dead-letter queue)."""
    if target.cloud == "aws":
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        counts = []
        for url in (target.queue_url, target.dlq_url):  # type: ignore[attr-defined]
            attrs = target.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)  # type: ignore[attr-defined]
            counts.append(sum(int(attrs["Attributes"][n]) for n in names))
        return counts[0], counts[1]
    bounded = {"connection_timeout": 5, "read_timeout": 5}  # a stalled emulator must not freeze
    work = target.queue.get_queue_properties(**bounded).approximate_message_count  # type: ignore[attr-defined]
    dead = target.poison.get_queue_properties(**bounded).approximate_message_count  # type: ignore[attr-defined]
    return int(work), int(dead)


HEADERS = ("t", "sent", "depth", "in flight", "rows", "dead", "rows/s", "p50", "p95")


def cells(s: Sample) -> list[str]:
    def seconds(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}s"

    return [
        f"{s.t:.0f}s",
        str(s.sent),
        str(s.depth),
        str(s.in_flight),
        str(s.rows),
        str(s.dead),
        f"{s.throughput:.0f}",
        seconds(s.p50),
        seconds(s.p95),
    ]


def plot(samples: Sequence[Sample], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415 - only at the end, and without a display

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    t = [s.t for s in samples]
    figure, (top, bottom) = pyplot.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    top.plot(t, [s.depth for s in samples], label="queue depth", color="tab:blue")
    top.plot(t, [s.in_flight for s in samples], label="in flight", color="tab:orange")
    top.set_ylabel("messages")
    rate = top.twinx()
    rate.plot(t, [s.throughput for s in samples], label="rows/s", color="tab:green", alpha=0.7)
    rate.set_ylabel("rows per second")
    lines = top.get_lines() + rate.get_lines()
    top.legend(lines, [line.get_label() for line in lines], loc="upper right")
    top.set_title(title)
    for attr, label in (("p50", "latency p50"), ("p95", "latency p95")):
        bottom.plot(t, [getattr(s, attr) for s in samples], label=label)
    bottom.set_ylabel("end-to-end seconds")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


@contextlib.contextmanager
def emulator(cloud: str) -> Iterator[Any]:
    # moto in its own process (its CPU is not the demo's), serving deep queues at a steady
    # cost; a fresh Azurite per run whose queue garbage collection waits until after the run
    # (tools/azurite_gc.cjs: a collection after a few thousand messages stalls it for minutes).
    chosen = (
        MotoEmulator(own_process=True, server_module="tools.steady_moto")
        if cloud == "aws"
        else AzuriteEmulator(gc_interval_ms=AZURITE_GC_INTERVAL_MS)
    )
    with chosen as running:
        yield running


def run(args: argparse.Namespace) -> int:
    console = Console()
    with emulator(args.cloud) as running, tempfile.TemporaryDirectory(prefix="edw-demo-") as logs:
        provisioned = running.provision("demo")
        # The producer runs in this process: it reaches the emulator as the consumers do.
        os.environ.update({k: v for k, v in provisioned.env.items() if k.startswith("AWS_")})
        env = {**provisioned.env, "EDW_SIMULATED_WORK_MS": str(args.work_ms)}
        consumers = [Consumer(env, Path(logs) / f"consumer-{i}.log") for i in range(args.consumers)]
        producer_run = Run(args.count, 10 if args.cloud == "aws" else 32)
        target = Target(
            args.cloud,
            provisioned.env["EDW_QUEUE"],
            connection_string=provisioned.env.get("EDW_AZURE_CONNECTION_STRING"),
        )
        options = argparse.Namespace(
            pattern=args.pattern,
            rate=args.rate,
            ramp_seconds=10.0,
            burst_seconds=5.0,
            payload_bytes=256,
            concurrency=4,
            source="urn:edw:demo",
            type="edw.demo",
            progress=False,  # the live view shows the producer too
        )
        errors: list[str] = []

        def send() -> None:
            try:
                produce(target, options, producer_run)
            except Exception as exc:  # reported in the summary; the run then fails
                errors.append(f"producer: {type(exc).__name__}: {exc}")

        producer = threading.Thread(target=send, daemon=True)
        samples = watch(
            args, Running(provisioned, consumers, producer, producer_run, errors), console
        )
        for consumer in consumers:
            consumer.stop()
        rows = provisioned.row_ids()
        work, dead = queue_counts(provisioned)
    ok = (
        not errors
        and len(rows) == len(set(rows)) == producer_run.sent == args.count
        and work == dead == 0
    )
    for error in errors:
        print(error, file=sys.stderr)
    if args.plot:
        plot(samples, Path(args.plot), f"{args.cloud}: {args.count} events, {args.pattern}")
    last = samples[-1] if samples else None
    p95 = f"{last.p95:.2f}s" if last and last.p95 is not None else "-"
    seconds = last.t if last else 0.0
    print(
        f"{'OK' if ok else 'FAILED'}: {len(rows)} rows for {producer_run.sent} events sent in "
        f"{seconds:.0f}s ({len(rows) / max(seconds, 1e-9):.0f} rows/s), {work} left on the "
        f"queue, {dead} dead-lettered, p95 {p95}" + (f"; plot: {args.plot}" if args.plot else ""),
        flush=True,
    )
    return 0 if ok else 1


@dataclass
class Running:
    """What the demo watches: the queues and table, the consumers and the producer."""

    target: Provisioned
    consumers: Sequence[Consumer]
    producer: threading.Thread
    producer_run: Run
    errors: list[str] = field(default_factory=list)


def watch(args: argparse.Namespace, running: Running, console: Console) -> list[Sample]:
    samples: list[Sample] = []
    started = time.monotonic()
    running.producer.start()
    previous = ConsumerStats()
    with LiveView(console, f"EDW demo: {args.count} events", HEADERS) as view:
        while True:
            time.sleep(INTERVAL)
            stats = ConsumerStats()
            for consumer in running.consumers:
                with contextlib.suppress(OSError, ValueError):
                    stats.add(consumer.metrics())
            work, dead = queue_counts(running.target)
            latency = stats.latency.minus(previous.latency)
            now = time.monotonic() - started
            interval = now - (samples[-1].t if samples else 0.0)
            sample = Sample(
                t=now,
                sent=running.producer_run.sent,
                depth=max(0, work - int(stats.in_flight)),  # both clouds count in-flight too
                in_flight=int(stats.in_flight),
                rows=int(stats.processed),
                dead=dead,
                throughput=(stats.processed - previous.processed) / max(interval, 1e-9),
                p50=latency.quantile(0.5),
                p95=latency.quantile(0.95),
            )
            samples.append(sample)
            previous = stats
            view.show(cells(sample))
            produced = not running.producer.is_alive()
            done = produced and work == 0 and sample.rows >= running.producer_run.sent
            if done or running.errors or now > args.timeout:
                return samples


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__)
    p.add_argument("--cloud", choices=("aws", "azure"), default="aws")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--pattern", choices=PATTERNS, default="burst")
    p.add_argument("--rate", type=float, default=2000.0, help="messages per second (0: no limit)")
    p.add_argument("--consumers", type=int, default=3)
    p.add_argument("--work-ms", type=int, default=0, help="simulated work per message")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--plot", default="demo.png", help="PNG to draw the run into ('' for none)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
