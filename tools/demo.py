"""See it work in a minute, with no cloud and no Docker: `make demo CLOUD=aws|azure`.

    python -m tools.demo --cloud aws --count 10000 --pattern burst --consumers 3

Starts the emulator on loopback (moto for SQS + DynamoDB, served at a steady cost however deep
the queue: tools/steady_moto.py; or Azurite for Queue + Table), creates the queues and the table,
runs the producer with the pattern, and starts real consumer processes (`python -m app.consumer`)
as the queue fills: none at first, one more every few seconds while more than
``PER_CONSUMER`` messages wait per consumer, up to ``--consumers`` (KEDA's rule, paced so the
scale-out shows). It stops everything once the queue is drained and every row is written (or at
``--timeout``, or on Ctrl-C). A live view shows each second: progress, sent, queue depth, in
flight, stored, dead-lettered, rows/s, consumers and end-to-end latency; without a terminal it
prints a line every few seconds. At the end it draws the run (matplotlib) into
``demo-<cloud>.png`` and prints one summary line. Exit 0 only if every event has exactly one row
and nothing is left on any queue; 128 + the signal's number when stopped by one.
"""

# ruff: noqa: E402 - the imports follow the early signal handler (EARLY), on purpose
from __future__ import annotations

import signal

# A Ctrl-C during the imports below (~0.3 s, longer on a busy machine) would end in a
# KeyboardInterrupt traceback: until Stop.install, a signal is only remembered, and the demo then
# starts nothing. Only as the command: importing this module (the tests) changes no handler.
EARLY: list[int] = []
if __name__ == "__main__":
    for _number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_number, lambda number, _frame: EARLY.append(number))

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from app.producer import PATTERNS, Run, Target, produce
from bench.emulators import (
    AZURITE,
    AzuriteEmulator,
    EmulatorStartError,
    MotoEmulator,
    child_env,
)
from bench.emulators import Target as Provisioned
from tools.live import LiveView

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 1.0  # seconds between samples: what the view and the plot show
AZURITE_GC_INTERVAL_MS = 6 * 3600 * 1000
# Messages per consumer the scaler aims for: the stacks' default edw:queueLengthTarget.
PER_CONSUMER = 20
SCALE_EVERY = 2.0  # seconds between two scale-outs, so each step shows in the plot
# A consumer's drain budget on Ctrl-C: its batches finish in milliseconds on an emulator.
SHUTDOWN_SECONDS = 10
EXIT_MISSING = 2


@dataclass
class Sample:
    t: float
    sent: int  # cumulative
    stored: int  # cumulative: rows written and their messages deleted
    depth: int  # visible, waiting
    in_flight: int
    dead: int
    consumers: int
    rows_per_second: float  # rows stored in the interval / the interval's seconds
    mean: float | None  # exact: the interval's observations' sum / count
    p95: float | None  # interpolated within the histogram's buckets


@dataclass
class Histogram:
    """Cumulative bucket counts (le -> count), and the observations' sum, over the consumers."""

    buckets: dict[float, float] = field(default_factory=dict)
    total: float = 0.0  # the sum of the observed seconds

    @property
    def count(self) -> float:
        return self.buckets.get(float("inf"), 0.0)

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total - earlier.total,
        )

    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear within the bucket that holds the rank."""
        bucket = self.bucket(q)
        if bucket is None:
            return None
        lower, le = bucket
        if le == float("inf"):
            return lower
        below = self.buckets.get(lower, 0.0)
        width = self.buckets[le] - below
        return lower + (le - lower) * ((q * self.count - below) / width if width else 1.0)

    def bucket(self, q: float) -> tuple[float, float] | None:
        """The bounds (lower, upper) of the bucket that holds the q-quantile."""
        if self.count <= 0:
            return None
        lower = 0.0
        for le in sorted(self.buckets):
            if self.buckets[le] >= q * self.count:
                return lower, le
            lower = le
        return lower, float("inf")


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
                elif s.name == "edw_end_to_end_seconds_sum":
                    self.latency.total += s.value


class Consumer:
    """`python -m app.consumer` as a child on loopback; it binds a free port and logs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.port: int | None = None
        self.last = ""  # the last metrics read: a slow answer must not look like lost rows
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.consumer"],
                env=child_env(
                    {
                        **env,
                        "EDW_HTTP_HOST": "127.0.0.1",
                        "EDW_HTTP_PORT": "0",
                        "EDW_RECEIVE_WAIT_SECONDS": "1",
                        "EDW_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_SECONDS),
                    }
                ),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C reaches the demo, which stops the consumers in order.
                start_new_session=True,
            )

    def metrics(self) -> str:
        if self.port is None:
            for line in self.log.read_text().splitlines():
                if '"serving health and metrics"' in line:
                    self.port = int(json.loads(line)["port"])
        if self.port is not None:
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r,
            ):
                self.last = r.read().decode()
        return self.last

    def exited(self) -> str | None:
        """Why the process is gone, with its last log line; None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return f"consumer exited with code {code}: {lines[-1] if lines else '(no output)'}"


class Fleet:
    """The consumers, scaled out like KEDA scales the Deployment: ceil(backlog / PER_CONSUMER),
    at least one while anything waits, at most ``most``; one more every SCALE_EVERY seconds."""

    def __init__(self, env: dict[str, str], logs: Path, most: int) -> None:
        self.env, self.logs, self.most = env, logs, most
        self.consumers: list[Consumer] = []
        self.scaled_at = -math.inf

    def scale(self, backlog: int, now: float) -> None:
        if now - self.scaled_at < SCALE_EVERY:
            return
        if len(self.consumers) < wanted(backlog, len(self.consumers), self.most):
            log = self.logs / f"consumer-{len(self.consumers)}.log"
            self.consumers.append(Consumer(self.env, log))
            self.scaled_at = now

    def stats(self) -> ConsumerStats:
        stats = ConsumerStats()
        for consumer in self.consumers:
            stats.add(consumer.metrics())
        return stats

    def problems(self) -> list[str]:
        return [p for c in self.consumers if (p := c.exited())]

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [c.process for c in self.consumers]

    def stop(self) -> None:
        """SIGTERM to all at once (each drains its batches), then wait; kill what is left."""
        for process in self.processes():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_SECONDS + 5
        for process in self.processes():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wanted(backlog: int, running: int, most: int) -> int:
    """How many consumers one scaling step asks for; never fewer than run (the run ends when
    the queue drains, which is when KEDA would scale in)."""
    if backlog <= 0:
        return running
    return max(running, min(most, running + 1, math.ceil(backlog / PER_CONSUMER)))


class Stop:
    """The first SIGINT/SIGTERM/SIGHUP asks for an orderly stop; a second one kills the
    consumers at once (their drain is what the orderly stop waits for). The emulator is never
    killed here: it stops last, after the producer and the queue reads, which would otherwise
    fail against a dead server (the Azure SDK retries for minutes, holding the exit)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: signal.Signals | None = None
        self.fleet: Fleet | None = None

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        if EARLY:  # pressed while the demo was still importing
            self._handle(EARLY[0], None)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            for process in self.fleet.processes() if self.fleet else []:
                with contextlib.suppress(OSError):
                    process.kill()
            return
        self.signal = signal.Signals(number)
        self.event.set()

    def describe(self) -> str:
        assert self.signal is not None
        return "Ctrl-C" if self.signal == signal.SIGINT else self.signal.name


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


HEADERS = (
    *("t", "progress", "sent", "depth", "in flight", "stored", "dead"),
    *("rows/s", "consumers", "mean", "p95"),
)


def seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def cells(s: Sample, total: int) -> list[str]:
    return [
        f"{s.t:.0f}s",
        f"{100 * s.stored / max(total, 1):.0f}%",
        *(str(n) for n in (s.sent, s.depth, s.in_flight, s.stored, s.dead)),
        f"{s.rows_per_second:.0f}",
        str(s.consumers),
        seconds(s.mean),
        seconds(s.p95),
    ]


@dataclass(frozen=True)
class Marks:
    total: int
    sent_at: float | None  # when the producer sent its last event
    drained_at: float | None  # when the queue was empty and every row stored


def draw(samples: Sequence[Sample], marks: Marks, title: str, buckets: Sequence[float]) -> Any:
    """The run as a matplotlib Figure: events, the queue, latency (one panel each)."""
    import matplotlib  # noqa: PLC0415 - only at the end, and without a display

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    t = [s.t for s in samples]
    figure, (events, queue, latency) = pyplot.subplots(
        3, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.4]}
    )
    events.set_title(title)
    events.plot(t, [s.sent for s in samples], label="sent (cumulative)", color="tab:purple")
    events.plot(t, [s.stored for s in samples], label="stored (cumulative)", color="tab:green")
    events.axhline(marks.total, label=f"all {marks.total} events", color="grey", linestyle=":")
    events.set_ylabel("events")
    fleet = events.twinx()
    fleet.step(t, [s.consumers for s in samples], where="post", color="tab:red", alpha=0.6)
    fleet.get_lines()[0].set_label("consumers (right axis)")
    fleet.set_ylabel("consumers")
    fleet.set_ylim(0, max([s.consumers for s in samples] + [1]) + 1)
    fleet.yaxis.get_major_locator().set_params(integer=True)

    queue.plot(t, [s.depth for s in samples], label="queue depth (waiting)", color="tab:blue")
    queue.plot(t, [s.in_flight for s in samples], label="in flight", color="tab:orange")
    queue.set_ylabel("messages")
    rate = queue.twinx()
    rate.plot(t, [s.rows_per_second for s in samples], color="tab:green", alpha=0.5)
    rate.get_lines()[0].set_label("rows/s (right axis)")
    rate.set_ylabel("rows stored per second")
    rate.set_ylim(bottom=0)

    latency.plot(t, [s.mean for s in samples], label="mean (exact)", color="tab:blue")
    latency.plot(
        t,
        [s.p95 for s in samples],
        label="p95 (within the histogram's buckets: ticks)",
        color="tab:orange",
    )
    # The buckets are the p95's resolution: their bounds are the (log) axis' ticks.
    seen = [v for s in samples for v in (s.mean, s.p95) if v is not None] or [buckets[0]]
    low = max([b for b in buckets if b <= min(seen)], default=buckets[0])
    high = min([b for b in buckets if b >= max(seen)], default=buckets[-1])
    latency.set_yscale("log")
    latency.set_ylim(low * 0.8, high * 1.25)
    latency.set_yticks([b for b in buckets if low <= b <= high], minor=False)
    latency.set_yticks([], minor=True)
    latency.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    latency.set_ylabel("end-to-end seconds")
    latency.set_xlabel("seconds since the first event was sent")

    for axis in (events, queue, latency):
        for at, label, style in (
            (marks.sent_at, "last event sent", "--"),
            (marks.drained_at, "queue drained", "-."),
        ):
            if at is not None:  # named once, in the top legend
                named = label if axis is events else "_nolegend_"
                axis.axvline(at, color="black", linestyle=style, linewidth=0.8, label=named)
    for axis, twin in ((events, fleet), (queue, rate), (latency, None)):
        lines = [
            line
            for line in axis.get_lines() + (twin.get_lines() if twin else [])
            if not line.get_label().startswith("_")
        ]
        axis.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def plot(samples: Sequence[Sample], marks: Marks, title: str, path: Path) -> None:
    from matplotlib import pyplot  # noqa: PLC0415

    from app.observability import LATENCY_BUCKETS  # noqa: PLC0415

    figure = draw(samples, marks, title, LATENCY_BUCKETS)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


@contextlib.contextmanager
def emulator(cloud: str, start_timeout: float) -> Iterator[Any]:
    # moto in its own process (its CPU is not the demo's), serving deep queues at a steady
    # cost; a fresh Azurite per run whose queue garbage collection waits until after the run
    # (tools/azurite_gc.cjs: a collection after a few thousand messages stalls it for minutes).
    chosen = (
        MotoEmulator(own_process=True, server_module="tools.steady_moto")
        if cloud == "aws"
        else AzuriteEmulator(gc_interval_ms=AZURITE_GC_INTERVAL_MS, start_timeout=start_timeout)
    )
    with chosen as running:
        yield running


class Steps:
    """One line per step, so the run is never silent."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def __call__(self, text: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {text}", flush=True)


@dataclass
class Running:
    """What the demo watches: the queues and table, the consumers and the producer."""

    target: Provisioned
    fleet: Fleet
    producer: threading.Thread
    producer_run: Run
    errors: list[str] = field(default_factory=list)
    sent_at: float | None = None


def missing(cloud: str) -> str | None:
    if cloud == "azure" and not AZURITE.exists():
        return (
            "the Azure demo needs Azurite (node_modules/.bin/azurite), which npm installs: run "
            "`make demo CLOUD=azure` (it runs `npm ci`; Node.js 22+ with npm: "
            "https://nodejs.org/en/download). `make demo` (AWS) needs neither."
        )
    return None


def azurite_advice() -> str:
    """After Azurite failed to start: the node found against the one Azurite declares."""
    locked = json.loads((REPO / "package-lock.json").read_text())["packages"]
    azurite = locked["node_modules/azurite"]
    engine = azurite["engines"]["node"]  # ">=22.0.0" for 3.37.0: its package.json's engines
    needed = int(engine.removeprefix(">=").split(".")[0])
    try:
        answer = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        found = answer.stdout.strip() or f"a node that prints no version ({answer.returncode})"
    except (OSError, subprocess.SubprocessError):
        found = "not on PATH"
    major = found.removeprefix("v").split(".")[0]
    if major.isdigit() and int(major) >= needed:
        return (
            f"node is {found}, which Azurite {azurite['version']} supports (Node.js {engine}): "
            "the lines above are Azurite's own."
        )
    return (
        f"Azurite {azurite['version']} needs Node.js {engine} (the engines of its package.json) "
        f"and node is {found}. Install Node.js {needed} or newer: https://nodejs.org/en/download, "
        f"or nvm (https://github.com/nvm-sh/nvm: nvm install {needed}), or Homebrew (brew install "
        "node); then run `make demo CLOUD=azure` again. `make demo` (AWS) needs no Node.js."
    )


def run(args: argparse.Namespace) -> int:
    if problem := missing(args.cloud):
        print(problem, file=sys.stderr)
        return EXIT_MISSING
    stop = Stop()
    stop.install()
    steps = Steps(6)
    plot_path = Path(args.plot or f"demo-{args.cloud}.png")
    try:
        result = None if stop.event.is_set() else _demo(args, stop, steps)
    except EmulatorStartError as error:  # Azurite's only (moto runs on this Python)
        print(f"{error}\n{azurite_advice()}", file=sys.stderr)
        return EXIT_MISSING
    if stop.signal is not None:
        return _stopped(stop, result, args.count)
    assert result is not None
    return _finished(args, result, steps, plot_path)


def _demo(args: argparse.Namespace, stop: Stop, steps: Steps) -> Result | None:
    """The emulator, the queues and the run; None when stopped before anything was sent."""
    names = {"aws": "moto (SQS + DynamoDB)", "azure": "Azurite (Queue + Table)"}
    steps(f"starting {names[args.cloud]} on 127.0.0.1")
    with (
        emulator(args.cloud, args.start_timeout) as running,
        tempfile.TemporaryDirectory(prefix="edw-demo-") as logs,
    ):
        if stop.event.is_set():  # while the emulator started
            return None
        steps("creating the work queue, its dead-letter queue and the table")
        provisioned = running.provision("demo")
        # The producer runs in this process: it reaches the emulator as the consumers do.
        os.environ.update({k: v for k, v in provisioned.env.items() if k.startswith("AWS_")})
        env = {**provisioned.env, "EDW_SIMULATED_WORK_MS": str(args.work_ms)}
        fleet = stop.fleet = Fleet(env, Path(logs), args.consumers)
        try:
            return _run(args, provisioned, fleet, stop, steps)
        finally:
            fleet.stop()


@dataclass
class Result:
    samples: list[Sample]
    running: Running
    sent: int
    final: ConsumerStats
    rows: list[str]
    work: int
    dead: int


def _run(
    args: argparse.Namespace, provisioned: Provisioned, fleet: Fleet, stop: Stop, steps: Steps
) -> Result:
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

    def send() -> None:
        try:
            produce(target, options, producer_run)
        except Exception as exc:  # reported in the summary; the run then fails
            running.errors.append(f"producer: {type(exc).__name__}: {exc}")
        running.sent_at = producer_run.elapsed()

    running = Running(provisioned, fleet, threading.Thread(target=send, daemon=True), producer_run)
    steps(
        f"sending {args.count} events ({args.pattern}, up to {args.rate:.0f}/s); consumers "
        f"start as the queue fills: one more every {SCALE_EVERY:.0f}s while more than "
        f"{PER_CONSUMER} messages wait per consumer, up to {args.consumers}"
    )
    steps("watching until the queue is drained and every row is stored (Ctrl-C stops it all)")
    samples = watch(args, running, stop)
    producer_run.stop()
    running.producer.join(timeout=30)
    final = fleet.stats()  # the whole run's latency, before the consumers go
    steps("stopping the consumers and the emulator; counting the rows")
    fleet.stop()
    rows: list[str] = []
    work = dead = -1
    if stop.signal is None:  # after a signal the emulator may already be gone
        rows = provisioned.row_ids()
        work, dead = queue_counts(provisioned)
    return Result(samples, running, producer_run.sent, final, rows, work, dead)


def watch(args: argparse.Namespace, running: Running, stop: Stop) -> list[Sample]:
    samples: list[Sample] = []
    previous = ConsumerStats()
    running.producer.start()
    with LiveView(Console(), f"EDW demo: {args.count} events", HEADERS) as view:
        while not stop.event.wait(INTERVAL):
            fleet = running.fleet
            stats = fleet.stats()
            work, dead = queue_counts(running.target)
            now = running.producer_run.elapsed()
            if not stop.event.is_set():  # no new consumer once stopping
                fleet.scale(work, now)
            interval = now - (samples[-1].t if samples else 0.0)
            latency = stats.latency.minus(previous.latency)
            sample = Sample(
                t=now,
                sent=running.producer_run.sent,
                stored=int(stats.processed),
                depth=max(0, work - int(stats.in_flight)),  # both clouds count in-flight too
                in_flight=int(stats.in_flight),
                dead=dead,
                consumers=len(fleet.consumers),
                rows_per_second=(stats.processed - previous.processed) / max(interval, 1e-9),
                mean=latency.mean(),
                p95=latency.quantile(0.95),
            )
            samples.append(sample)
            previous = stats
            view.show(cells(sample, args.count))
            running.errors.extend(fleet.problems())
            produced = not running.producer.is_alive()
            done = produced and work == 0 and sample.stored >= running.producer_run.sent
            if done or running.errors or now > args.timeout:
                break
    return samples


def _stopped(stop: Stop, result: Result | None, total: int) -> int:
    last = result.samples[-1] if result and result.samples else None
    print(
        f"STOPPED by {stop.describe()} after {last.t if last else 0.0:.0f}s: "
        f"{result.sent if result else 0} of {total} events sent, {last.stored if last else 0} "
        f"stored, {last.depth + last.in_flight if last else 0} left on the queue; the consumers "
        "and the emulator are stopped, no plot",
        flush=True,
    )
    assert stop.signal is not None
    return 128 + stop.signal.value


def _finished(args: argparse.Namespace, result: Result, steps: Steps, plot_path: Path) -> int:
    rows, running = result.rows, result.running
    ok = (
        not running.errors
        and len(rows) == len(set(rows)) == result.sent == args.count
        and result.work == result.dead == 0
    )
    for error in running.errors:
        print(error, file=sys.stderr)
    last = result.samples[-1] if result.samples else None
    drained_at = last.t if ok and last else None
    steps(f"drawing the run into {plot_path}")
    marks = Marks(args.count, running.sent_at, drained_at)
    plot(result.samples, marks, f"{args.cloud}: {args.count} events, {args.pattern}", plot_path)
    elapsed = last.t if last else 0.0
    latency = result.final.latency
    p95, bucket = latency.quantile(0.95), latency.bucket(0.95)
    within = f" (in the {bucket[0]:g}-{bucket[1]:g}s bucket)" if bucket else ""
    drained = (
        f"; drained {drained_at - running.sent_at:.0f}s after the last send"
        if drained_at is not None and running.sent_at is not None
        else ""
    )
    print(
        f"{'OK' if ok else 'FAILED'}: {len(rows)} rows for {result.sent} events in "
        f"{elapsed:.0f}s ({len(rows) / max(elapsed, 1e-9):.0f} rows/s){drained}; "
        f"{result.work} left on the queue, {result.dead} dead-lettered; consumers: up to "
        f"{max((s.consumers for s in result.samples), default=0)}; latency mean "
        f"{seconds(latency.mean())}, p95 {seconds(p95)}{within}; plot: {plot_path}",
        flush=True,
    )
    return 0 if ok else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__)
    p.add_argument("--cloud", choices=("aws", "azure"), default="aws")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--pattern", choices=PATTERNS, default="burst")
    p.add_argument("--rate", type=float, default=2000.0, help="messages per second (0: no limit)")
    p.add_argument("--consumers", type=int, default=3, help="the most consumers the run scales to")
    p.add_argument("--work-ms", type=int, default=0, help="simulated work per message")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument(
        "--start-timeout",
        type=float,
        default=30.0,
        help="seconds Azurite may take to listen before the demo stops it and says why",
    )
    p.add_argument("--plot", help="PNG to draw the run into (default: demo-<cloud>.png)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
