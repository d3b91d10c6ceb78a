"""The consumer's circuit breaker: no receiving while what a message needs fails (the event
table, and with a handler, the handler and the router; ``cause`` says which opened it).

- closed: workers receive.
- open: a write failed for the table's sake (an outage, throttling, a 5xx, a lost connection;
  anything but a refused row). Workers stop receiving, so no queued message is delivered, and
  its delivery count (SQS ApproximateReceiveCount, which the redrive policy counts; the Azure
  dequeue count) does not rise while the table cannot take it.
- half-open: after a pause, exactly one worker receives one batch, the probe. A write that
  succeeds closes the breaker (any write: a batch still retrying in place counts too); a failed
  one reopens it with the pause doubled, up to the longest. A probe that wrote nothing (an empty
  receive, only rejects) lets the next worker probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
PROBE = "probe"


class Breaker:
    def __init__(
        self,
        pause: tuple[float, float] = (1.0, 30.0),
        on_change: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first, self._longest = pause
        self._pause = self._first
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._half_open_at = 0.0
        self._probing = False
        self._cause = "table"

    @property
    def state(self) -> str:
        return self._state

    @property
    def cause(self) -> str:
        """What failed last while the breaker opened: "table", "handler" or "router"."""
        return self._cause

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._on_change(state)

    def admit(self) -> str | None:
        """May this worker receive now: CLOSED (yes), PROBE (yes, as the one probe; report with
        ``probe_done`` once its batch is settled) or None (no: wait ``wait_seconds``)."""
        with self._lock:
            if self._state == CLOSED:
                return CLOSED
            if self._state == OPEN and self._clock() >= self._half_open_at:
                self._set(HALF_OPEN)
            if self._state == HALF_OPEN and not self._probing:
                self._probing = True
                return PROBE
            return None

    def wait_seconds(self) -> float:
        """How long until a worker may probe (0 when it may now or the breaker is closed)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._half_open_at - self._clock())

    def probe_done(self) -> None:
        with self._lock:
            self._probing = False

    def failed(self, cause: str = "table") -> None:
        """A call failed for ``cause``'s sake (the table, the handler, the router)."""
        with self._lock:
            self._cause = cause
            if self._state == CLOSED:
                self._pause = self._first
            elif self._state == HALF_OPEN:
                self._pause = min(self._pause * 2, self._longest)
            else:
                return  # already open: keep the schedule
            self._half_open_at = self._clock() + self._pause
            self._set(OPEN)

    def succeeded(self) -> None:
        """A row was written: whatever came before it (handler, router) worked too."""
        if self._state == CLOSED:
            return  # the common case, without the lock
        with self._lock:
            self._pause = self._first
            self._set(CLOSED)
