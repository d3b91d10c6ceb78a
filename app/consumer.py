"""The consumer: drain the work queue into the event table without ever losing a message.

Each of ``EDW_CONCURRENCY`` worker threads loops: receive a full batch, set aside what cannot be
stored (not a CloudEvent, too large for the table, delivered too often) on the dead-letter queue
with the reason, upsert the rest, and delete exactly the messages that were stored or set aside.
Rows are keyed by (workflow, source, id), so a redelivery overwrites its own row: at-least-once
delivery, exactly one row.

The contract, message by message:
- One bad message never takes its batch with it. A write the table refuses for its content is
  split (halves, then single rows) until the refused row is alone; only it is dead-lettered,
  with the table's error as the reason.
- A failing table is not the message's fault, however long it lasts: a failed write, dead letter
  or delete is retried in place with exponential backoff and jitter, within the time the batch
  has left, while the heartbeat keeps the batch hidden. A failed write also opens the circuit
  breaker (app/breaker.py): workers stop receiving until a probe's write succeeds. A valid
  message the table still could not take is put back as a fresh copy (its delivery count starts
  again) and the original deleted, so neither the SQS redrive nor the delivery limit ever moves
  it to the dead letters. Copies are counted (``Received.copies``): the one that would pass
  ``EDW_MAX_COPIES`` is set aside with its reason instead, so no failure loops forever.
- The heartbeat extends every message of every batch on its own; a message whose extension failed
  is retried at the next tick and is not counted as extended. A batch past
  ``EDW_PROCESSING_TIMEOUT_SECONDS`` is released (visible at once to other consumers) while the
  breaker is closed; its worker then touches none of its messages. While the table fails it is
  kept hidden instead, until its worker has put it back as fresh copies.

Job mode (a KEDA ScaledJob's pod): with ``EDW_MAX_MESSAGES`` the workers take no more than that
many messages in all and the process exits once they are settled; with
``EDW_EXIT_WHEN_IDLE_SECONDS`` it exits after that long with nothing received and nothing in
flight. Either way it drains like on SIGTERM and exits 0 only when every message it took was
settled (stored and deleted, set aside, or released).

Run it with ``python -m app.consumer``; settings come from the environment (docs/app.md).
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app import backend as backends
from app import events
from app.backend import WRITE_SHARE, Backend, Received, RowRejected, TableFull, batch_call_seconds
from app.breaker import CLOSED, OPEN, PROBE, Breaker
from app.handler import HandlerStep
from app.observability import HealthServer, Metrics, setup_logging
from app.routing_shape import crossed_array
from app.settings import Settings, SettingsError, load

log = logging.getLogger("edw.consumer")
IDLE_BACKOFF = (0.05, 1.0)  # no long polling (Azure, or a wait of 0): back off 50 ms to 1 s
ERROR_BACKOFF_SECONDS = 1.0
RETRY_BACKOFF = (0.1, 2.0)  # in-place retries: first and largest pause (full jitter)
BREAKER_PAUSE = (1.0, 10.0)  # open -> half-open: first pause, doubled after each failed probe
BREAKER_POLL_SECONDS = 0.5  # how often a worker held by the open breaker looks again
BREAKER_MIN_POLL_SECONDS = 0.05
EXIT_BAD_SETTINGS = 2
JOB_CHECK_SECONDS = 0.2  # how often the main thread asks whether a job is done
# A worker or the heartbeat that shows no progress for this long past its longest legitimate
# wait (a receive plus a whole batch) is stuck: liveness fails and the kubelet restarts the pod.
STALL_MARGIN_SECONDS = 30.0


class OutOfTime(Exception):  # noqa: N818 - reads as "raise OutOfTime(last error)"
    """A retried call did not succeed within the batch's time; the text is the last error."""


@dataclass(eq=False)
class Batch:
    messages: list[Received]
    started: float
    deadline: float
    write_deadline: float  # table writes stop retrying here (WRITE_SHARE of the timeout)
    hidden_until: dict[Received, float]  # monotonic time each message is known to stay hidden
    lock: threading.Lock = field(default_factory=threading.Lock)  # its receipt-changing calls
    released: bool = False
    settled: bool = False
    extending: bool = False
    deleted: set[Received] = field(default_factory=set)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


class Consumer:
    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        metrics: Metrics,
        *,
        stall_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.stall_seconds = stall_seconds or (
            settings.receive_wait_seconds
            + settings.processing_timeout_seconds
            + STALL_MARGIN_SECONDS
        )
        self._batches: set[Batch] = set()
        self._batches_lock = threading.Lock()
        self.breaker = Breaker(BREAKER_PAUSE, self._breaker_changed)
        self.handler = (
            HandlerStep(
                settings,
                backend,
                metrics,
                self.breaker,
                self._back_off,
                call_seconds=batch_call_seconds(settings.processing_timeout_seconds),
            )
            if settings.handler_url
            else None
        )
        # Job mode: how many more messages this process may take (None: no limit), and when it
        # last had work, for EDW_EXIT_WHEN_IDLE_SECONDS.
        self._quota = settings.max_messages or None
        self._quota_lock = threading.Lock()
        self._busy_at = time.monotonic()
        self._retired: set[str] = set()  # workers that stopped because the quota was spent
        self._progress: dict[str, float] = {}
        self._workers = [
            threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
            for i in range(settings.concurrency)
        ]
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        # Extensions and releases run here, so one slow call never holds up other batches.
        self._visibility = ThreadPoolExecutor(
            max_workers=settings.concurrency + 1, thread_name_prefix="visibility"
        )

    # Lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        for thread in (self._heartbeat, *self._workers):
            self._progress[thread.name] = time.monotonic()
            thread.start()
        log.info("consumer started", extra={"fields": {"concurrency": len(self._workers)}})

    def _threads(self) -> list[threading.Thread]:
        return [self._heartbeat, *self._workers]

    def ready(self) -> bool:
        """Ready while every worker and the heartbeat run and no drain has begun."""
        return not self.stopping.is_set() and all(t.is_alive() for t in self._threads())

    def alive(self) -> bool:
        """False when a thread died, or a worker or the heartbeat has made no progress for
        ``stall_seconds`` (a call that never returns); draining counts as alive."""
        if self.stopping.is_set():
            return True  # draining is healthy; the kubelet must not restart us mid-drain
        now = time.monotonic()
        return all(
            t.name in self._retired
            or (t.is_alive() and now - self._progress.get(t.name, now) <= self.stall_seconds)
            for t in self._threads()
        )

    def job_done(self) -> bool:
        """Job mode: the quota is settled (every worker retired), or nothing was received and
        nothing was in flight for EDW_EXIT_WHEN_IDLE_SECONDS. Never true for a service."""
        if self._quota is not None and len(self._retired) == len(self._workers):
            return True
        idle = self.settings.exit_when_idle_seconds
        with self._batches_lock:
            in_flight = bool(self._batches)
        return bool(idle) and not in_flight and time.monotonic() - self._busy_at >= idle

    def _claim(self, wanted: int) -> int:
        """Reserve up to ``wanted`` messages of the quota (all of it without a quota)."""
        with self._quota_lock:
            if self._quota is None:
                return wanted
            claimed = min(wanted, self._quota)
            self._quota -= claimed
            return claimed

    def _unclaim(self, count: int) -> None:
        with self._quota_lock:
            if self._quota is not None:
                self._quota += count

    def _mark(self) -> None:
        self._progress[threading.current_thread().name] = time.monotonic()

    def _breaker_changed(self, state: str) -> None:
        self.metrics.breaker_open.set(0 if state == CLOSED else 1)
        cause = self.breaker.cause  # table, handler or router
        if state == CLOSED:
            log.info(f"{cause} works again (a row was written): breaker closed, receiving")
        elif state == OPEN:
            log.warning(f"{cause} failing: breaker open, receiving paused")
        else:
            log.info(f"breaker half-open: one batch probes the {cause}")

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
        self._visibility.shutdown(wait=False)
        return not unfinished

    # Workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        queue = self.backend.queue
        # Without a long poll an empty receive returns at once: back off instead of spinning.
        backs_off = not queue.long_polls or self.settings.receive_wait_seconds == 0
        idle = IDLE_BACKOFF[0]
        while not self.stopping.is_set():
            self._mark()
            admitted = self.breaker.admit()
            if admitted is None:  # the table fails: receive nothing it could not take
                # Another worker's probe is out (wait_seconds 0): poll, don't spin at full CPU.
                pause = max(BREAKER_MIN_POLL_SECONDS, self.breaker.wait_seconds())
                self.stopping.wait(min(BREAKER_POLL_SECONDS, pause))
                continue
            try:
                idle = self._take(queue, backs_off, idle)
            finally:
                if admitted == PROBE:
                    self.breaker.probe_done()
            if idle is None:
                self._retired.add(threading.current_thread().name)
                return  # the job's quota is taken; the others settle the rest

    def _take(self, queue: backends.WorkQueue, backs_off: bool, idle: float) -> float | None:
        """Receive and settle one batch; the next idle pause, or None when the quota is spent."""
        wanted = self._claim(queue.max_batch)
        if not wanted:
            return None
        try:
            messages = queue.receive(
                self.settings.receive_wait_seconds,
                self.settings.visibility_timeout_seconds,
                wanted,
            )
        except Exception as exc:
            log.warning("receive failed", extra={"fields": {"error": _short(exc)}})
            self._unclaim(wanted)
            self.stopping.wait(ERROR_BACKOFF_SECONDS)
            return idle
        self._mark()
        self._unclaim(wanted - len(messages))
        if messages:
            self._busy_at = time.monotonic()
            self.process(messages)
            self._busy_at = time.monotonic()
            return IDLE_BACKOFF[0]
        if backs_off:
            self.stopping.wait(idle)
            return min(idle * 2, IDLE_BACKOFF[1])
        return idle

    def process(self, messages: list[Received]) -> None:
        """Settle one received batch; whatever is not deleted at the end counts as failed."""
        now = time.monotonic()
        visibility = self.settings.visibility_timeout_seconds
        timeout = self.settings.processing_timeout_seconds
        batch = Batch(
            messages,
            started=now,
            deadline=now + timeout,
            write_deadline=now + timeout * WRITE_SHARE,
            hidden_until=dict.fromkeys(messages, now + visibility),
        )
        with self._batches_lock:
            self._batches.add(batch)
        self.metrics.received.inc(len(messages))
        self.metrics.in_flight.inc(len(messages))
        try:
            self._settle(batch)
        except Exception:  # a bug must not kill the worker; the messages come back
            log.exception("unexpected error while settling a batch")
        finally:
            with batch.lock:
                batch.settled = True
            with self._batches_lock:
                self._batches.discard(batch)
            left = len(messages) - len(batch.deleted)
            if left:
                self.metrics.failed.inc(left)
            self.metrics.in_flight.dec(len(messages))
            self.metrics.batch_seconds.observe(time.monotonic() - now)

    def _settle(self, batch: Batch) -> None:
        valid, rejects = self._classify(batch.messages)
        if self.settings.simulated_work_ms:
            time.sleep(self.settings.simulated_work_ms * len(valid) / 1000)
        unhandled: list[Received] = []
        unpublished: list[Received] = []
        if self.handler is not None:  # the workflow's code first (app/handler.py)
            handled = self.handler.settle(batch, batch.write_deadline, valid)
            valid, unhandled, unpublished = handled.done, handled.unhandled, handled.unpublished
            rejects.extend(handled.rejects)
        stored, refused, unwritten = self._store(batch, valid)
        rejects.extend(refused)
        # The table (or the handler, or the router) failed past the batch's time: the valid
        # messages it could not take go back as fresh copies, whose delivery count starts
        # again. Never dead-lettered for it, unless it was put back EDW_MAX_COPIES times
        # already: a failure that never ends for it.
        over = [
            *self._over_copy_limit(unhandled, "handler"),
            *self._over_copy_limit(unpublished, "router"),
            *self._over_copy_limit(unwritten, "table"),
        ]
        rejects.extend(over)
        set_aside = {m for m, _ in over}
        failed = [*unhandled, *unpublished, *unwritten]
        copied = self._resend(batch, [m for m in failed if m not in set_aside])
        dead = self._dead_letter(batch, rejects)
        deleted = self._delete(batch, [*stored, *dead, *copied])
        events_by_message = dict(valid)
        now = datetime.now(UTC)
        processed = [m for m in stored if m in deleted]
        self.metrics.processed.inc(len(processed))
        for message in processed:
            event = events_by_message[message]
            through = crossed_array(event.data_tree, self.settings.filter_paths)
            if through:
                # Routed by SNS looking into an array; Event Grid would not have sent it here.
                self.metrics.filtered_through_arrays.inc()
                log.warning(
                    "filtered through an array",
                    extra={"fields": {"event_id": event.id, "key": through}},
                )
            if event.time is not None:
                self.metrics.end_to_end_seconds.observe(
                    max(0.0, (now - event.time).total_seconds())
                )

    def _classify(
        self, messages: Sequence[Received]
    ) -> tuple[list[tuple[Received, events.Event]], list[tuple[Received, str]]]:
        valid, rejects = [], []
        limit = self.settings.max_deliveries
        for message in messages:
            if message.deliveries > limit:
                rejects.append((message, f"delivered {message.deliveries} times (limit {limit})"))
                continue
            try:
                event = events.parse(message.body)
            except events.InvalidEvent as exc:
                rejects.append((message, str(exc)))
                continue
            except Exception as exc:  # a parser bug must not take the batch: set it aside
                rejects.append((message, f"could not be parsed: {_short(exc)}"))
                continue
            refusal = self.backend.table.refusal(event)
            if refusal:
                rejects.append((message, refusal))
            else:
                valid.append((message, event))
        return valid, rejects

    def _store(
        self, batch: Batch, valid: list[tuple[Received, events.Event]]
    ) -> tuple[list[Received], list[tuple[Received, str]], list[Received]]:
        """Write the rows: (messages whose row is written, messages whose row the table refused
        with the reason, messages whose row the failing table did not take in time)."""
        if not valid:
            return [], [], []
        # One row per event (source + id): a batch may hold the same event twice, which batch
        # APIs refuse; two events that only share an id are two rows.
        unique = list({event.identity: event for _, event in valid}.values())
        written: set[tuple[str, str]] = set()
        refused: dict[tuple[str, str], str] = {}
        pending = [unique]
        while pending:
            rows = pending.pop()
            try:
                self._write(batch, rows)
                written.update(e.identity for e in rows)
            except RowRejected as exc:
                if len(rows) == 1:
                    refused[rows[0].identity] = str(exc)
                else:  # isolate the refused row: halves, then single rows
                    half = len(rows) // 2
                    pending.extend([rows[half:], rows[:half]])
            except OutOfTime as exc:
                log.warning("table write failed", extra={"fields": {"error": str(exc)}})
                break
        stored = [m for m, e in valid if e.identity in written]
        rejected = [(m, refused[e.identity]) for m, e in valid if e.identity in refused]
        unwritten = [m for m, e in valid if e.identity not in written | refused.keys()]
        return stored, rejected, unwritten

    def _write(self, batch: Batch, rows: Sequence[events.Event]) -> None:
        """Write until it succeeds, backing off with full jitter, within the batch's write time;
        every outcome feeds the breaker. ``RowRejected`` is not retried: the same rows would be
        refused again, and it says nothing about the table's health."""
        attempt = 0
        # Work that ran past the write time still gets its first write, whole (as without the
        # deadline: the rows are idempotent); the deadline holds back what a write would queue
        # or retry after it.
        until = batch.write_deadline if time.monotonic() < batch.write_deadline else math.inf
        while True:
            try:
                self.backend.table.write(rows, until=until)
            except RowRejected:
                raise
            except Exception as exc:
                if isinstance(exc, TableFull):  # no transient blip: EdwTableFull pages at once
                    self.metrics.table_full.inc()
                self.breaker.failed("table")
                log.info("retrying in place", extra={"fields": {"error": _short(exc)}})
                if not self._back_off(batch, attempt, batch.write_deadline):
                    raise OutOfTime(_short(exc)) from exc
                attempt += 1
            else:
                self.breaker.succeeded()
                return

    def _back_off(self, batch: Batch, attempt: int, until: float | None = None) -> bool:
        """Sleep before retry ``attempt`` (exponential, full jitter); False, without sleeping,
        when the batch was released or the pause would run past ``until`` (its deadline)."""
        pause = random.uniform(0, min(RETRY_BACKOFF[1], RETRY_BACKOFF[0] * 2**attempt))
        if batch.released or time.monotonic() + pause >= (until or batch.deadline):
            return False
        time.sleep(pause)
        self._mark()
        return True

    def _over_copy_limit(self, messages: list[Received], cause: str) -> list[tuple[Received, str]]:
        limit = self.settings.max_copies
        over = [
            (
                m,
                f"the {cause} could not take it after {m.copies} fresh copies (limit "
                f"EDW_MAX_COPIES={limit}); the {cause} is still failing",
            )
            for m in messages
            if m.copies >= limit
        ]
        if over:
            log.error(
                f"{cause} failing: messages over the copy limit set aside",
                extra={"fields": {"count": len(over), "limit": limit}},
            )
        self.metrics.over_copy_limit.inc(len(over))
        return over

    def _resend(self, batch: Batch, messages: list[Received]) -> list[Received]:
        """Put fresh copies of messages the table did not take back on the work queue; returns
        those whose copy was accepted (only their originals may be deleted). A copy that fails
        leaves its original to come back after the visibility timeout."""
        copied: list[Received] = []
        pending = messages
        attempt = 0
        while pending and not batch.released:
            copied.extend(self.backend.queue.resend(pending))
            pending = [m for m in pending if m not in set(copied)]
            if not pending or not self._back_off(batch, attempt):
                break
            attempt += 1
        if copied:
            log.warning(
                f"{self.breaker.cause} failing: messages put back as fresh copies",
                extra={"fields": {"count": len(copied), "not_copied": len(pending)}},
            )
        self.metrics.requeued.inc(len(copied))
        return copied

    def _dead_letter(self, batch: Batch, rejects: list[tuple[Received, str]]) -> list[Received]:
        """Set rejects aside with their reason; returns exactly those whose dead letter was
        accepted (only they may leave the work queue)."""
        accepted: list[Received] = []
        pending = rejects
        attempt = 0
        while pending and not batch.released:
            sent = self.backend.dead_letters.send_dead_letters(pending)
            accepted.extend(sent)
            pending = [r for r in pending if r[0] not in set(sent)]
            if not pending or not self._back_off(batch, attempt):
                break
            attempt += 1
        reasons = dict(rejects)
        for message in accepted:
            log.warning(
                "dead-lettered",
                extra={"fields": {"message_id": message.message_id, "reason": reasons[message]}},
            )
        if pending:
            log.warning(
                "dead-lettering failed; the messages stay on the work queue",
                extra={"fields": {"count": len(pending)}},
            )
        self.metrics.dead_lettered.inc(len(accepted))
        return accepted

    def _delete(self, batch: Batch, messages: list[Received]) -> set[Received]:
        """Delete the settled messages, retrying failures in place; never after a release."""
        pending = messages
        attempt = 0
        while pending:
            with batch.lock:
                if batch.released:
                    log.warning(
                        "batch was released; its messages are left to whoever holds them now",
                        extra={"fields": {"count": len(pending)}},
                    )
                    break
                failed = self.backend.queue.delete(pending)
            batch.deleted.update(m for m in pending if m not in set(failed))
            pending = failed
            if not pending or not self._back_off(batch, attempt):
                break
            attempt += 1
        if pending:
            self.metrics.delete_failures.inc(len(pending))
        return batch.deleted

    # Visibility ----------------------------------------------------------------------------

    def _snapshot(self) -> list[Batch]:
        with self._batches_lock:
            return list(self._batches)

    def _beat(self) -> None:
        visibility = self.settings.visibility_timeout_seconds
        # Check four times as often as either deadline, so a failed extension is retried
        # promptly and an overdue batch is released on time.
        tick = max(0.1, min(visibility / 4, self.settings.processing_timeout_seconds / 4, 5.0))
        while not self.finished.wait(tick):
            self._mark()
            now = time.monotonic()
            for batch in self._snapshot():
                if batch.settled or batch.released or batch.extending:
                    continue
                # Past its time a batch is released for another consumer, unless the table is
                # failing: nobody could store it, and a release would count a delivery. It is
                # kept hidden until its worker has put it back as fresh copies.
                if now >= batch.deadline and self.breaker.state == CLOSED:
                    batch.extending = True
                    self._visibility.submit(self._release, batch, "processing timeout exceeded")
                    continue
                due = [
                    m
                    for m, until in batch.hidden_until.items()
                    if m not in batch.deleted and until - now < visibility / 2
                ]
                if due:
                    batch.extending = True
                    self._visibility.submit(self._extend, batch, due)

    def _extend(self, batch: Batch, due: list[Received]) -> None:
        seconds = self.settings.visibility_timeout_seconds
        try:
            with batch.lock:
                if batch.settled or batch.released:
                    return
                started = time.monotonic()
                failed = set(self.backend.queue.extend(due, seconds))
                for message in due:
                    if message not in failed:
                        batch.hidden_until[message] = started + seconds
            if failed:
                log.warning(
                    "visibility extension failed; retrying at the next tick",
                    extra={"fields": {"failed": len(failed), "of": len(due)}},
                )
        except Exception as exc:
            log.warning("visibility extension failed", extra={"fields": {"error": _short(exc)}})
        finally:
            batch.extending = False

    def _release(self, batch: Batch, why: str) -> None:
        """Make an overdue batch visible again so another consumer retries it now."""
        try:
            with batch.lock:
                if batch.settled or batch.released:
                    return
                batch.released = True
                left = [m for m in batch.messages if m not in batch.deleted]
                log.warning(why + "; releasing batch", extra={"fields": {"size": len(left)}})
                failed = self.backend.queue.extend(left, 0)
            if failed:
                log.warning(
                    "release failed for some messages; they reappear after the visibility timeout",
                    extra={"fields": {"failed": len(failed)}},
                )
        except Exception as exc:
            log.warning("release failed", extra={"fields": {"error": _short(exc)}})
        finally:
            batch.extending = False


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT, then drain within the shutdown budget. Returns the exit code."""
    metrics = Metrics(settings.cloud, settings.workflow)
    backend = backends.build(settings)
    consumer = Consumer(settings, backend, metrics)
    server = HealthServer(
        settings.http_port, metrics, consumer.alive, consumer.ready, host=settings.http_host
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if consumer.handler is not None and not consumer.handler.wait_ready(stop):
        backend.close()
        return 0  # stopped before the handler ever answered: nothing was received
    consumer.start()
    server.start()  # after the workers, so liveness never sees them not yet started
    log.info(
        "serving health and metrics",
        extra={"fields": {"host": settings.http_host, "port": server.port}},
    )
    while not stop.wait(JOB_CHECK_SECONDS):
        if consumer.job_done():
            log.info("job done: quota settled or idle", extra={"fields": {"job": True}})
            break
    else:
        log.info("signal received; draining in-flight batches")
    # Keep a second of the budget for closing the clients and the HTTP server.
    drained = consumer.drain(max(0.5, settings.shutdown_timeout_seconds - 1))
    server.stop()
    backend.close()
    if consumer.handler is not None:
        consumer.handler.close()
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
