"""The workflow's own code: each event POSTed to its handler, the answer deciding what happens.

The contract (docs/handlers.md; reference: the CloudEvents HTTP protocol binding 1.0.2,
``cloudevents/bindings/http-protocol-binding.md``, section 3.2 "Structured Content Mode";
the batch media type: ``cloudevents/formats/json-format.md`` section 4 "JSON Batch Format"):
the consumer POSTs each valid event to ``EDW_HANDLER_URL`` in structured mode, the event's exact
JSON text with ``Content-Type: application/cloudevents+json``, on kept-alive connections (one
per worker), with a deadline no later than the batch's write time (``WRITE_SHARE`` of its
processing time: the rest is kept to settle the batch). The answer:

- 2xx, no body: the row stores the event as without a handler.
- 2xx ``application/json``, a JSON object: stored as the row's ``result`` (its exact text).
- 2xx ``application/cloudevents+json`` (one event) or ``application/cloudevents-batch+json`` (an
  array): each is checked as a CloudEvent and published to the router, so workflows chain. A
  missing ``source`` is ``urn:edw:workflow:<workflow>``; a missing ``id`` is a UUIDv5 of
  (workflow, the trigger's source and id, the event's position), so a retry publishes the same
  ids and the next workflow stores one row each. The row's ``emitted`` lists the ids.
  Publishing comes before the row, and the message is deleted only after both.
- 4xx but 408 and 429: the event is rejected, dead-lettered alone with
  ``handler answered <status>: <first 1 KiB of the body>``.
- 408, 429, 5xx, a refused connection, a timeout: the handler is failing, not the event: retried
  in place with backoff, the circuit breaker opens (no receiving), and what is still unhandled at
  the batch's write deadline goes back as fresh copies, exactly like rows a failing table did not
  take. Not dead-lettered for it, unless a message has gone back EDW_MAX_COPIES times (the
  reason then names the handler). A failing router is handled the same way.
- A 2xx whose body does not match its content type (or that emits something that is not a
  CloudEvent, or is over MAX_ANSWER_BYTES) is a handler defect: dead-lettered with that reason.
- A 2xx in binary mode (``ce-`` headers, section 3.1) is one emitted event.
The deadline covers the whole answer, body included.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import math
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from urllib.parse import unquote_to_bytes, urlsplit

from prometheus_client import Counter, Histogram

from app import events
from app.backend import Backend, Received, Sender, event_size_problem, open_router
from app.breaker import Breaker
from app.events import Event
from app.observability import Metrics
from app.settings import Settings

log = logging.getLogger("edw.handler")
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
JSON = "application/json"
REQUEST_TYPE = f"{CLOUDEVENT}; charset=utf-8"
REASON_BYTES = 1024  # how much of a rejecting answer's body the dead letter's reason keeps
# The most of a 2xx answer the consumer reads (more is a defect): a result or emitted events far
# beyond what a row or the router takes (32 KiB an event), without holding an unbounded body in
# a pod's memory.
MAX_ANSWER_BYTES = 1024 * 1024
BINARY_PREFIX = "ce-"  # binary-mode attribute headers (HTTP binding 1.0.2, section 3.1.3.1)
# Emitted events without an id: UUIDv5 in a namespace of their own (a fixed random UUID), of the
# netstring-encoded (workflow, trigger source, trigger id, position), like app.backend.row_key.
EMITTED_ID_NAMESPACE = uuid.UUID("6f1b3c1e-4a0e-5b8e-9d2c-7e0f2a9c4d11")
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_POLL_SECONDS = 0.2
# Answers that say "the handler is failing now", not "this event is wrong" (the HTTP semantics of
# RFC 9110: 408 Request Timeout and 429 Too Many Requests invite a retry).
RETRIED_4XX = frozenset({408, 429})
OK, REJECTED, DEFECT = "ok", "rejected", "defect"
FAILED, UNREACHABLE, TIMEOUT = "failed", "unreachable", "timeout"  # the handler is failing
FAILING = frozenset({FAILED, UNREACHABLE, TIMEOUT})


class Defect(ValueError):  # noqa: N818 - reads as "raise Defect(reason)"
    """A 2xx answer the contract does not allow; the text is the dead letter's reason."""


@dataclass(frozen=True)
class Handled(Event):
    """A handled event's row: the event's attributes plus the handler's result and what it
    emitted (the ids, as a JSON array)."""

    result_json: str | None = None
    emitted_json: str | None = None

    @classmethod
    def of(cls, event: Event, result: str | None, emitted: Sequence[str]) -> Handled:
        ids = [json.loads(text)["id"] for text in emitted]
        return cls(
            **{f.name: getattr(event, f.name) for f in fields(Event)},
            result_json=result,
            emitted_json=json.dumps(ids) if ids else None,
        )

    def row(self) -> dict[str, str]:
        row = super().row()
        if self.result_json is not None:
            row["result"] = self.result_json
        if self.emitted_json is not None:
            row["emitted"] = self.emitted_json
        return row


@dataclass(frozen=True)
class Answer:
    outcome: str
    reason: str = ""  # rejected, defect, failing: why
    result: str | None = None  # the JSON object's text
    emitted: list[str] = field(default_factory=list)  # complete CloudEvents, JSON text


@dataclass(frozen=True)
class Reply:
    """What the handler sent back, as far as the consumer read it."""

    status: int
    content_type: str = ""
    body: bytes = b""
    binary: dict[str, str] = field(default_factory=dict)  # ce-* headers: attribute -> raw value
    whole: bool = True  # False: the body went on past what was read
    repeated: frozenset[str] = frozenset()  # ce-* headers sent more than once
    encoding: str = ""  # Content-Encoding: the consumer asks for none (identity)


def emitted_id(workflow: str, trigger: Event, position: int) -> str:
    name = b"".join(
        b"%d:%b," % (len(part.encode()), part.encode())
        for part in (workflow, trigger.source, trigger.id, str(position))
    )
    return str(uuid.uuid5(EMITTED_ID_NAMESPACE, name.decode()))


def _skip(text: str, i: int) -> int:
    return events.WHITESPACE.match(text, i).end()  # type: ignore[union-attr] - matches ""


def array_elements(text: str) -> list[str]:
    """The exact text of each element of a JSON array (so nothing an event carries is
    rewritten: numbers in ``data`` stay as the handler wrote them)."""
    decoder = json.JSONDecoder()
    i = _skip(text, 0)
    if not text.startswith("[", i):
        raise Defect("the body is not a JSON array")
    items: list[str] = []
    i = _skip(text, i + 1)
    if text.startswith("]", i):
        i += 1
    else:
        while True:
            try:
                _, end = decoder.raw_decode(text, i)
            except ValueError as exc:
                raise Defect(f"the body is not JSON: {exc}") from exc
            items.append(text[i:end])
            i = _skip(text, end)
            if text.startswith(",", i):
                i = _skip(text, i + 1)
            elif text.startswith("]", i):
                i += 1
                break
            else:
                raise Defect(f"the body is not a JSON array (at character {i})")
    if _skip(text, i) != len(text):
        raise Defect("the body holds more than one JSON array")
    return items


def complete_event(text: str, workflow: str, trigger: Event, position: int) -> str:
    """One emitted event with its defaults filled in, checked as a CloudEvent that fits the
    router; raises Defect with the reason."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise Defect(f"emitted event {position} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise Defect(f"emitted event {position} is not a JSON object")
    # JSON format 1.0.2 section 2.2: an attribute set to null is unset, so it gets the default.
    added = {}
    if doc.get("source") is None:
        added["source"] = f"urn:edw:workflow:{workflow}"
    if doc.get("id") is None:
        added["id"] = emitted_id(workflow, trigger, position)
    if added:
        text = _with_members(text, added)
    try:
        events.parse(text)
    except events.InvalidEvent as exc:
        raise Defect(f"emitted event {position} is not a CloudEvent: {exc}") from exc
    problem = event_size_problem(text)
    if problem:
        raise Defect(f"emitted event {position} is too large to publish: {problem}")
    return text


def _with_members(text: str, added: dict[str, str]) -> str:
    """The event's JSON text with ``added`` set (replacing a null member of that name); every
    other member stays exactly as the handler wrote it. A text whose members cannot be read
    (a name twice) is returned as it is, for events.parse to give the reason."""
    try:
        members = events.top_members(text)
    except ValueError:
        return text
    kept = [f"{json.dumps(k)}:{raw}" for k, (_, raw) in members.items() if k not in added]
    return "{" + ",".join([*map(_member, added.items()), *kept]) + "}"


def _member(item: tuple[str, str]) -> str:
    return f"{json.dumps(item[0])}:{json.dumps(item[1], ensure_ascii=False)}"


def read_answer(reply: Reply, workflow: str, trigger: Event) -> Answer:
    """Classify one HTTP answer (the contract in the module's docstring)."""
    status = reply.status
    if status in RETRIED_4XX or 500 <= status <= 599:
        return Answer(FAILED, f"handler answered {status}: {_head(reply.body)}")
    if 400 <= status <= 499:
        return Answer(REJECTED, f"handler answered {status}: {_head(reply.body)}")
    if not 200 <= status <= 299:
        return Answer(DEFECT, f"handler answered {status}, which the contract does not allow")
    media = reply.content_type.split(";", 1)[0].strip().lower()
    try:
        if not reply.whole:
            raise Defect(f"a body over the {MAX_ANSWER_BYTES} bytes the consumer reads")
        if reply.encoding.strip().lower() not in ("", "identity"):
            raise Defect(
                f"Content-Encoding {reply.encoding}: the consumer asks for none "
                "(Accept-Encoding: identity)"
            )
        if _binary_mode(reply, media):
            if reply.repeated:
                raise Defect(f"headers sent twice: ce-{', ce-'.join(sorted(reply.repeated))}")
            event = binary_event(reply.binary, reply.content_type, reply.body)
            return Answer(OK, emitted=[complete_event(event, workflow, trigger, 0)])
        return _content(media or "no content type", reply.body, workflow, trigger)
    except Defect as exc:
        mode = "a binary-mode event" if _binary_mode(reply, media) else media or "a body"
        return Answer(DEFECT, f"handler answered {status} with {mode}: {exc}")


def _binary_mode(reply: Reply, media: str) -> bool:
    """Binding 1.0.2, section 3: a CloudEvents media type means structured or batched mode, any
    other binary mode; here a JSON result is an answer too, so ce-specversion tells them apart."""
    return "specversion" in reply.binary and not media.startswith("application/cloudevents")


def binary_event(headers: dict[str, str], content_type: str, body: bytes) -> str:
    """A binary-mode answer (HTTP binding 1.0.2, section 3.1: attributes in ``ce-`` headers,
    the data as the body, its type in Content-Type) as the structured event's JSON text."""
    if "datacontenttype" in headers:
        raise Defect("a ce-datacontenttype header: Content-Type carries it (section 3.1.1)")
    members = {name: _header_value(name, raw) for name, raw in headers.items()}
    if content_type:
        members["datacontenttype"] = content_type
    text = ",".join(map(_member, members.items()))
    if body:
        text += "," + _binary_data(content_type, body)
    return "{" + text + "}"


def _header_value(name: str, raw: str) -> str:
    """Section 3.1.3.2: unquote a quoted string, then percent-decode once; bytes that are not
    UTF-8 (an overlong "%C0%A0" among them) are refused, and so is a raw character outside
    printable ASCII (HTTP headers hold ASCII; http.client would hand it over as Latin-1)."""
    value = raw.strip()
    if not all(" " <= c <= "~" for c in value):
        raise Defect(f"header ce-{name} holds characters outside printable ASCII")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Defect(f"header ce-{name} is not percent-encoded UTF-8") from exc


def _binary_data(content_type: str, body: bytes) -> str:
    """The ``data`` (JSON data as written) or ``data_base64`` member (JSON format 1.0.2,
    section 3.1) for a binary-mode body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON or media.endswith("+json"):
        try:
            text = body.decode("utf-8")
            json.loads(text)
        except ValueError as exc:
            raise Defect(f"the body is not JSON although its type is {media}: {exc}") from exc
        return f'"data":{text.strip()}'
    if media.startswith("text/"):
        try:
            return f'"data":{json.dumps(body.decode("utf-8"), ensure_ascii=False)}'
        except UnicodeDecodeError as exc:
            raise Defect(f"the body is not UTF-8 although its type is {media}") from exc
    return f'"data_base64":"{base64.b64encode(body).decode()}"'


def _content(media: str, body: bytes, workflow: str, trigger: Event) -> Answer:
    """A 2xx answer's body as the contract reads it; Defect when it does not match its type."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Defect("the body is not UTF-8") from exc
    if not text.strip():
        return Answer(OK)
    if media == JSON:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise Defect(f"the body is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise Defect("the body is JSON but not an object")
        return Answer(OK, result=text.strip())
    if media == CLOUDEVENT:
        texts = [text.strip()]
    elif media == CLOUDEVENTS_BATCH:
        texts = array_elements(text)
    else:
        raise Defect(
            f"a body of content type {media!r}; the contract allows no body, {JSON}, "
            f"{CLOUDEVENT} or {CLOUDEVENTS_BATCH}"
        )
    emitted = [complete_event(t, workflow, trigger, n) for n, t in enumerate(texts)]
    return Answer(OK, emitted=emitted)


def _head(body: bytes) -> str:
    return body[:REASON_BYTES].decode("utf-8", "replace")


class Watchdog:
    """Cuts a call's connection when its deadline passes. Socket timeouts bound each read, not a
    call: a handler trickling its headers, a chunk-size line or its body a byte at a time would
    hold a worker long past its batch. One thread for all workers, asleep until the next
    deadline."""

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, socket.socket]] = {}
        self._fired: set[int] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def cut_at(self, deadline: float, sock: socket.socket) -> Iterator[Callable[[], bool]]:
        """While the block runs, shut ``sock`` down at ``deadline``; yields "has it fired?"."""
        token = id(sock)
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="handler-watchdog")
                self._thread.daemon = True
                self._thread.start()
            nearest = min((d for d, _ in self._due.values()), default=math.inf)
            self._due[token] = (deadline, sock)
            if deadline < nearest:  # the thread sleeps until the nearest deadline it knew
                self._changed.notify()
        try:
            yield lambda: token in self._fired
        finally:
            with self._changed:
                self._due.pop(token, None)
                self._fired.discard(token)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for token, (deadline, sock) in list(self._due.items()):
                    if deadline <= now:
                        del self._due[token]
                        self._fired.add(token)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)  # the blocked read ends at once
                nearest = min((d for d, _ in self._due.values()), default=None)
                self._changed.wait(None if nearest is None else max(nearest - now, 0.001))


class _Response(http.client.HTTPResponse):
    """http.client skips only a 100 Continue before the final answer; any other interim 1xx
    (103 Early Hints, 102 Processing) would be taken as the answer, leaving the real one on the
    connection for the next call to read. 101 Switching Protocols is final (never asked for).
    _read_status is the status line reader HTTPResponse.begin loops on (CPython 3.6 to 3.13);
    tests/app/test_handler_client.py holds it to a real 103."""

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 102 <= status <= 199:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers, dropped


class HandlerClient:
    """POSTs to the handler on kept-alive connections, one per worker thread (a handler sees at
    most one request per worker), each call cut off at its deadline by the watchdog."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path = parts.path or "/"
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._watchdog = Watchdog()

    def post(self, body: str, seconds: float) -> Reply | str:
        """The handler's reply, read before ``seconds`` pass (headers and body), or the outcome
        (UNREACHABLE, TIMEOUT) when none came."""
        deadline = time.monotonic() + max(seconds, 0.001)
        conn = self._connection()
        try:
            if conn.sock is None:
                conn.timeout = max(seconds, 0.001)
                conn.connect()
            sock = conn.sock
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            with self._watchdog.cut_at(deadline, sock) as fired:
                try:
                    reply = self._exchange(conn, body)
                except (OSError, http.client.HTTPException):
                    conn.close()
                    return TIMEOUT if fired() else UNREACHABLE
                if fired():  # the answer was complete just as the time ran out: too late
                    conn.close()
                    return TIMEOUT
                return reply
        except TimeoutError:
            conn.close()
            return TIMEOUT
        except OSError:
            conn.close()
            return UNREACHABLE  # refused, reset: nobody answered

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.address)
            conn.response_class = _Response
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        elif conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the handler closed it while idle: a fresh one, not a failed call
        return conn

    def _exchange(self, conn: http.client.HTTPConnection, body: str) -> Reply:
        # http.client sends Accept-Encoding: identity: a handler must not compress its answer.
        conn.request(
            "POST", self.path, body.encode("utf-8", "surrogatepass"), {"Content-Type": REQUEST_TYPE}
        )
        response = conn.getresponse()
        limit = MAX_ANSWER_BYTES if 200 <= response.status <= 299 else REASON_BYTES
        # What the contract uses, and one byte more to know the body goes on (read(n) returns
        # fewer than n bytes only at the body's end).
        data = response.read(limit + 1)
        whole = len(data) <= limit
        if whole and response.length:  # read(n) does not raise when the connection ends early
            raise http.client.IncompleteRead(data, response.length)
        if not whole:
            conn.close()  # the rest is unread: the connection cannot serve another call
        binary: dict[str, str] = {}
        repeated: set[str] = set()
        for name, value in response.getheaders():  # a header sent twice comes twice
            if name.lower().startswith(BINARY_PREFIX):
                attribute = name[len(BINARY_PREFIX) :].lower()
                if attribute in binary:
                    repeated.add(attribute)
                binary[attribute] = value
        return Reply(
            response.status,
            response.getheader("Content-Type", ""),
            data[:limit],
            binary,
            whole,
            frozenset(repeated),
            response.getheader("Content-Encoding", ""),
        )

    def accepting(self) -> bool:
        try:
            socket.create_connection(self.address, timeout=1).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle kept-alive connection is closed (or holds bytes no request asked for).
    poll, not select: select refuses descriptors from FD_SETSIZE (1024) on, which a busy
    consumer may reach, and every call would then open a new connection."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


class _NoToken:
    """The credential for an ``http://`` Event Grid endpoint: only the local stand-in
    (bench/event_grid.py) is plain HTTP, and an Entra token must never travel in clear text."""

    def get_token(self, *_: str) -> object:
        return type("Token", (), {"token": "none"})()


def open_publisher(settings: Settings, pool_size: int, call_seconds: float) -> Sender:
    """The router, through the producer's publishing code (SNS PublishBatch, Event Grid), one
    attempt a call, each bounded by ``call_seconds``."""
    router = settings.router or ""
    if settings.cloud == "azure" and router.startswith("http://"):
        from app.azure import EventGridRouter, http_session  # noqa: PLC0415 - the chosen cloud

        return EventGridRouter(http_session(pool_size), router, _NoToken(), call_seconds)
    return open_router(settings.cloud, router, pool_size=pool_size, call_seconds=call_seconds)


class HandlerMetrics:
    def __init__(self, metrics: Metrics, cloud: str, workflow: str) -> None:
        labels = {"cloud": cloud, "workflow": workflow}
        self.calls = Counter(
            "edw_handler_calls",
            "Calls to the workflow's handler, by outcome: ok, rejected (4xx), defect (a 2xx the "
            "contract does not allow), failed (408, 429, 5xx), unreachable, timeout.",
            [*labels, "outcome"],
            registry=metrics.registry,
        )
        self.labels = labels
        self.seconds = Histogram(
            "edw_handler_seconds",
            "Time from POST to the handler's whole answer (or its failure).",
            list(labels),
            buckets=SECONDS_BUCKETS,
            registry=metrics.registry,
        ).labels(**labels)
        self.emitted = Counter(
            "edw_events_emitted",
            "Events a handler emitted that the router accepted.",
            list(labels),
            registry=metrics.registry,
        ).labels(**labels)

    def call(self, outcome: str) -> None:
        self.calls.labels(**self.labels, outcome=outcome).inc()


@dataclass
class Settled:
    """What the handler step made of a batch's valid events."""

    done: list[tuple[Received, Event]]  # handled (and their events published): rows to write
    rejects: list[tuple[Received, str]]  # to dead-letter, with the reason
    unhandled: list[Received]  # the handler failed past the time: fresh copies
    unpublished: list[Received]  # the router failed past the time: fresh copies


# The consumer's in-place backoff: (batch, attempt, until) -> False when out of time.
BackOff = Callable[[object, int, float], bool]


class HandlerStep:
    """Calls the handler for each event of a batch, then publishes what it emitted."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        metrics: Metrics,
        breaker: Breaker,
        back_off: BackOff,
        *,
        call_seconds: float,
    ) -> None:
        self.workflow = settings.workflow
        self.client = HandlerClient(settings.handler_url or "")
        # A publish may start until the batch's write deadline and must end before its
        # processing time runs out (app.backend.batch_call_seconds).
        self.router = open_publisher(settings, settings.concurrency + 2, call_seconds)
        self.table = backend.table
        self.breaker = breaker
        self.back_off = back_off
        self.metrics = HandlerMetrics(metrics, settings.cloud, settings.workflow)

    def wait_ready(self, stopping: threading.Event) -> bool:
        """Block until the handler's port accepts connections (False: stopped first)."""
        if self.client.accepting():
            return True
        log.info("waiting for the handler to accept connections", extra={"fields": self._where()})
        while not stopping.wait(WAIT_POLL_SECONDS):
            if self.client.accepting():
                log.info("the handler accepts connections", extra={"fields": self._where()})
                return True
        return False

    def _where(self) -> dict[str, str]:
        return {"handler": self.client.url}

    def close(self) -> None:
        self.client.close()

    def settle(self, batch: object, until: float, valid: list[tuple[Received, Event]]) -> Settled:
        settled = Settled([], [], [], [])
        emitting: list[tuple[Received, Event]] = []
        bodies: list[str] = []
        for n, (message, event) in enumerate(valid):
            answer = self._call(batch, until, message, event)
            if answer is None:  # failing past the time: the rest is not tried now
                settled.unhandled.extend(m for m, _ in valid[n:])
                break
            if answer.outcome != OK:
                settled.rejects.append((message, answer.reason))
                continue
            handled = Handled.of(event, answer.result, answer.emitted)
            refusal = self.table.refusal(handled)  # before anything is published for it
            if refusal:
                settled.rejects.append((message, f"the handler's result: {refusal}"))
            elif answer.emitted:
                emitting.append((message, handled))
                bodies.extend(answer.emitted)
            else:
                settled.done.append((message, handled))
        if bodies and self._publish(batch, until, bodies):
            settled.done.extend(emitting)
        else:
            settled.unpublished.extend(m for m, _ in emitting)
        return settled

    def _call(self, batch: object, until: float, message: Received, event: Event) -> Answer | None:
        """The handler's answer, retried in place while it is failing; None past ``until``."""
        attempt = 0
        while (left := until - time.monotonic()) > 0:
            started = time.monotonic()
            reply = self.client.post(message.body, left)
            self.metrics.seconds.observe(time.monotonic() - started)
            if isinstance(reply, str):
                answer = Answer(reply, f"handler {reply} ({self.client.url})")
            else:
                answer = read_answer(reply, self.workflow, event)
            self.metrics.call(answer.outcome)
            if answer.outcome not in FAILING:
                return answer
            self.breaker.failed("handler")
            log.info(
                "handler failing; retrying in place",
                extra={"fields": {"event_id": event.id, "error": answer.reason}},
            )
            if not self.back_off(batch, attempt, until):
                return None
            attempt += 1
        return None

    def _publish(self, batch: object, until: float, bodies: list[str]) -> bool:
        """Publish to the router, retried in place (the same ids each time); False past
        ``until``. A partly failed call is retried whole: a repeat is one more delivery of
        the same event, which the next workflow stores once."""
        attempt = 0
        while True:
            try:
                failed = self.router.send(bodies)
            except Exception as exc:  # the router's SDK: counted as every event failed
                log.warning("publish failed", extra={"fields": {"error": str(exc)[:300]}})
                failed = len(bodies)
            if not failed:
                self.metrics.emitted.inc(len(bodies))
                return True
            self.breaker.failed("router")
            if not self.back_off(batch, attempt, until):
                log.warning(
                    "router failing: emitted events not published in time",
                    extra={"fields": {"count": len(bodies)}},
                )
                return False
            attempt += 1
