"""The consumer: drain the work queue into the event table without ever losing a message.

Each of ``EDW_CONCURRENCY`` worker threads loops: receive a full batch, dead-letter what is not a
valid CloudEvent, upsert the rest in batched writes, and only then delete the batch. A heartbeat
thread keeps the visibility of in-flight batches extended, and releases a batch that outlives
``EDW_PROCESSING_TIMEOUT_SECONDS`` so another consumer can take it. Rows are keyed by event id, so
a redelivery after a crash overwrites its own row: at-least-once delivery, exactly one row.

Run it with ``python -m app.consumer``; settings come from the environment (docs/app.md: "Settings").
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app import backend as backends
from app import events
from app.backend import Backend, Received
from app.observability import HealthServer, Metrics, setup_logging
from app.settings import Settings, SettingsError, load

log = logging.getLogger("edw.consumer")
IDLE_BACKOFF = (0.05, 1.0)  # Azure has no long polling: back off from 50 ms to 1 s when idle
ERROR_BACKOFF_SECONDS = 1.0
EXIT_BAD_SETTINGS = 2


@dataclass(eq=False)
class Batch:
    messages: list[Received]
    started: float
    extended: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: bool = False
    settled: bool = False


class Consumer:
    def __init__(self, settings: Settings, backend: Backend, metrics: Metrics) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self._batches: set[Batch] = set()
        self._batches_lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(settings.concurrency)
        ]
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    # Lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._heartbeat.start()
        for worker in self._workers:
            worker.start()
        log.info("consumer started", extra={"fields": {"concurrency": len(self._workers)}})

    def ready(self) -> bool:
        return self._heartbeat.is_alive() and not self.stopping.is_set()

    def alive(self) -> bool:
        if self.stopping.is_set():
            return True  # draining is healthy; the kubelet must not restart us mid-drain
        return self._heartbeat.is_alive() and all(w.is_alive() for w in self._workers)

    def drain(self, timeout: float) -> bool:
        """Stop receiving, let in-flight batches finish; False if some did not in time."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        unfinished = self._snapshot()
        for batch in unfinished:
            self._release(batch, "shutdown timeout reached")
        self.finished.set()
        return not unfinished

    # Workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        queue = self.backend.queue
        idle = IDLE_BACKOFF[0]
        while not self.stopping.is_set():
            try:
                messages = queue.receive(
                    self.settings.receive_wait_seconds, self.settings.visibility_timeout_seconds
                )
            except Exception:
                log.exception("receive failed")
                self.stopping.wait(ERROR_BACKOFF_SECONDS)
                continue
            if messages:
                idle = IDLE_BACKOFF[0]
                try:
                    self.process(messages)
                except Exception:  # a bug must not kill the worker; the batch is redelivered
                    log.exception("unexpected error while settling a batch")
            elif not queue.long_polls:
                self.stopping.wait(idle)
                idle = min(idle * 2, IDLE_BACKOFF[1])

    def process(self, messages: list[Received]) -> None:
        """Settle one received batch: store or dead-letter every message, then delete them."""
        now = time.monotonic()
        batch = Batch(messages, started=now, extended=now)
        with self._batches_lock:
            self._batches.add(batch)
        self.metrics.received.inc(len(messages))
        self.metrics.in_flight.inc(len(messages))
        try:
            self._settle(batch)
        finally:
            with self._batches_lock:
                self._batches.discard(batch)
            self.metrics.in_flight.dec(len(messages))
            self.metrics.batch_seconds.observe(time.monotonic() - now)

    def _settle(self, batch: Batch) -> None:
        valid, rejects = self._classify(batch.messages)
        done = self._dead_letter(rejects) + self._store(valid)
        with batch.lock:
            batch.settled = True
            if not done:
                return
            try:
                failed = self.backend.queue.delete(done)
            except Exception:
                log.exception("delete failed; the batch will be redelivered and overwritten")
                failed = len(done)
        if failed:
            self.metrics.delete_failures.inc(failed)

    def _classify(
        self, messages: Sequence[Received]
    ) -> tuple[list[tuple[Received, events.Event]], list[tuple[Received, str]]]:
        valid, rejects = [], []
        limit = self.settings.max_deliveries
        for message in messages:
            if message.deliveries is not None and message.deliveries > limit:
                rejects.append((message, f"delivered {message.deliveries} times (limit {limit})"))
                continue
            try:
                valid.append((message, events.parse(message.body)))
            except events.InvalidEvent as exc:
                rejects.append((message, str(exc)))
        return valid, rejects

    def _dead_letter(self, rejects: list[tuple[Received, str]]) -> list[Received]:
        """Move rejects to the dead-letter queue; only those may then leave the work queue."""
        if not rejects:
            return []
        try:
            self.backend.dead_letters.send_dead_letters(rejects)
        except Exception:
            log.exception("dead-lettering failed; the messages stay on the work queue")
            self.metrics.failed.inc(len(rejects))
            return []
        for message, reason in rejects:
            log.warning(
                "dead-lettered",
                extra={"fields": {"message_id": message.message_id, "reason": reason}},
            )
        self.metrics.dead_lettered.inc(len(rejects))
        return [message for message, _ in rejects]

    def _store(self, valid: list[tuple[Received, events.Event]]) -> list[Received]:
        """Write the rows; only messages whose row is durably written may be deleted."""
        if not valid:
            return []
        if self.settings.simulated_work_ms:
            time.sleep(self.settings.simulated_work_ms * len(valid) / 1000)
        # One row per id: a batch may hold the same event twice, which batch APIs refuse.
        unique = list({event.id: event for _, event in valid}.values())
        try:
            self.backend.table.write(unique)
        except Exception:
            log.exception("table write failed; the batch will be redelivered")
            self.metrics.failed.inc(len(valid))
            return []
        self.metrics.processed.inc(len(valid))
        now = datetime.now(UTC)
        for event in unique:
            if event.time is not None:
                self.metrics.end_to_end_seconds.observe(
                    max(0.0, (now - event.time).total_seconds())
                )
        return [message for message, _ in valid]

    # Visibility ----------------------------------------------------------------------------

    def _snapshot(self) -> list[Batch]:
        with self._batches_lock:
            return list(self._batches)

    def _beat(self) -> None:
        visibility = self.settings.visibility_timeout_seconds
        # Extend at half the timeout and check four times as often as either deadline, so a
        # slow call still fits and an overdue batch is released promptly.
        tick = max(0.1, min(visibility / 4, self.settings.processing_timeout_seconds / 4, 5.0))
        while not self.finished.wait(tick):
            now = time.monotonic()
            for batch in self._snapshot():
                if now - batch.started > self.settings.processing_timeout_seconds:
                    self._release(batch, "processing timeout exceeded")
                elif now - batch.extended >= visibility / 2:
                    self._extend(batch, visibility, now)

    def _extend(self, batch: Batch, seconds: int, now: float) -> None:
        with batch.lock:
            if batch.settled or batch.released:
                return
            try:
                self.backend.queue.extend(batch.messages, seconds)
                batch.extended = now
            except Exception:
                log.exception("visibility extension failed")

    def _release(self, batch: Batch, why: str) -> None:
        """Make an overdue batch visible again so another consumer retries it now."""
        with batch.lock:
            if batch.settled or batch.released:
                return
            batch.released = True
            log.warning(why + "; releasing batch", extra={"fields": {"size": len(batch.messages)}})
            try:
                self.backend.queue.extend(batch.messages, 0)
            except Exception:
                log.exception("release failed; the messages reappear after the visibility timeout")


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT, then drain within the shutdown budget. Returns the exit code."""
    metrics = Metrics(settings.cloud)
    backend = backends.build(settings)
    consumer = Consumer(settings, backend, metrics)
    server = HealthServer(settings.http_port, metrics, consumer.alive, consumer.ready)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    consumer.start()
    server.start()  # after the workers, so liveness never sees them not yet started
    while not stop.wait(1.0):
        pass
    log.info("signal received; draining in-flight batches")
    # Keep a second of the budget for closing the clients and the HTTP server.
    drained = consumer.drain(max(0.5, settings.shutdown_timeout_seconds - 1))
    server.stop()
    backend.close()
    log.info("stopped", extra={"fields": {"drained": drained}})
    return 0 if drained else 1


def main(env: Mapping[str, str] = os.environ) -> int:
    setup_logging("INFO")  # settings errors are logged as JSON too
    try:
        settings = load(env)
    except SettingsError as exc:
        log.error(str(exc))
        return EXIT_BAD_SETTINGS
    logging.getLogger().setLevel(settings.log_level)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
