"""Local emulators on loopback, shared by the tests and the benchmark.

``MotoEmulator`` runs moto's server (SQS + DynamoDB) in a thread; ``AzuriteEmulator`` runs Azurite
(Queue + Table) as a child process with telemetry off and in-memory persistence. Each exposes
``provision(name)``, which creates a work queue, a dead-letter queue and a table and returns a
``Target``: the consumer's environment plus inspection helpers the tests assert on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / "node_modules" / ".bin" / "azurite"
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MAX_RECEIVE_COUNT = 5
# The size limits the stack gives its SQS queues (components/aws/work_queue.py).
WORK_QUEUE_MAX_MESSAGE_BYTES = 262_144
DLQ_MAX_MESSAGE_BYTES = 1_048_576


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class DeadLetter:
    body: str
    reason: str


class Target(Protocol):
    """One provisioned queue + dead-letter queue + table, seen from outside the consumer."""

    cloud: str
    env: dict[str, str]

    def send(self, bodies: Sequence[str]) -> None: ...
    def rows(self) -> list[dict[str, str]]:
        """Every stored row as the consumer wrote it (``id``, the row's key, first, then the
        attributes)."""
        ...

    def row_ids(self) -> list[str]:
        """The event id (``eventId``) of every stored row, one per row."""
        ...

    def depth(self) -> int:
        """Messages on the work queue, visible or in flight."""
        ...

    def dead_letters(self) -> list[DeadLetter]: ...


@dataclass
class AwsTarget:
    sqs: Any
    dynamodb: Any
    queue_url: str
    dlq_url: str
    table: str
    env: dict[str, str] = field(default_factory=dict)
    cloud: str = "aws"

    def send(self, bodies: Sequence[str]) -> None:
        for i in range(0, len(bodies), 10):
            entries = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])]
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]

    def rows(self) -> list[dict[str, str]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        return [{k: v["S"] for k, v in item.items()} for page in pages for item in page["Items"]]

    def row_ids(self) -> list[str]:
        return [row["eventId"] for row in self.rows()]

    def depth(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        return sum(int(attrs["Attributes"][name]) for name in names)

    def dead_letters(self) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return found
            for m in messages:
                reason = m.get("MessageAttributes", {}).get("edw-dead-letter-reason", {})
                found.append(DeadLetter(m["Body"], reason.get("StringValue", "")))


def lock_sqs_deletes() -> None:
    """Make moto's SQS DeleteMessage atomic (moto 5.2.5, ``moto/sqs/models.py``).

    ``Queue.delete_message`` rebuilds the queue's message list and assigns it back without the
    queue's lock (``add_message`` takes it). Two consumers deleting at once can each write back a
    list that still holds the other's message: that message comes back after its visibility
    timeout (a second ``processed``, a queue that never drains), and a send during a rebuild is
    lost. Measured here: 2 consumers x 400 events under load left 10-30 messages behind in 3 of
    4 runs. Taking the lock moto already has changes nothing else. Idempotent.
    """
    from moto.sqs.models import Queue  # noqa: PLC0415 - a test-only dependency

    unlocked = Queue.delete_message
    if getattr(unlocked, "locked", False):
        return

    def delete_message(self: Queue, receipt_handle: str) -> None:
        with self._messages_lock:
            unlocked(self, receipt_handle)

    delete_message.locked = True  # type: ignore[attr-defined]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


def lock_sqs_receives() -> None:
    """Make moto's SQS ReceiveMessage atomic per queue (moto 5.2.5, ``moto/sqs/models.py``).

    ``SQSBackend.receive_message`` walks the queue, takes every visible message and marks it
    received, without a lock: two receives at once can both take the same message, so one
    message is delivered twice though nobody let it go. Measured here: two consumer workers
    long-polling the same 8 messages got 9 deliveries (6 + 3, the two calls overlapping by
    ~50 ms) in 6 of 80 runs under load; that was
    ``test_long_processing_extends_visibility_without_duplicates[aws]`` failing with
    ``9.0 == 8``. The queue's lock is a Condition on an RLock, and the long-poll wait inside
    (``wait_for_messages``) waits on that Condition, which releases the lock while it waits:
    senders and other receivers are held only while a receive walks the queue. Idempotent.
    """
    from moto.sqs.models import SQSBackend  # noqa: PLC0415 - a test-only dependency

    unlocked = SQSBackend.receive_message
    if getattr(unlocked, "locked", False):
        return

    def receive_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return unlocked(self, queue_name, *args, **kwargs)

    receive_message.locked = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def count_sqs_attribute_bytes() -> None:
    """Make moto's SQS count message attributes toward the queue's MaximumMessageSize, as SQS
    does ("All parts of the message attribute, including Name, Type, and Value, are part of the
    message size restriction": the MessageAttributeValue reference of the SQS API). moto 5.2.5
    counts the body's characters only (``SQSBackend._validate_message``), so a dead letter whose
    reason attribute takes it past the DLQ's limit would be accepted here and refused by SQS.
    Refused the way moto refuses a long body. Idempotent."""
    from moto.sqs.exceptions import InvalidParameterValue  # noqa: PLC0415 - test-only
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    uncounted = SQSBackend.send_message
    if getattr(uncounted, "counted", False):
        return

    def send_message(
        self: SQSBackend,
        queue_name: str,
        message_body: str,
        message_attributes: dict[str, Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        limit = int(self.get_queue(queue_name).maximum_message_size)
        size = len(message_body.encode())
        for name, value in (message_attributes or {}).items():
            size += len(name.encode()) + len(value["DataType"].encode())
            size += len(value.get("StringValue", "").encode()) + len(value.get("BinaryValue", b""))
        if size > limit:
            raise InvalidParameterValue(
                "One or more parameters are invalid. Reason: Message must be shorter than "
                f"{limit} bytes."
            )
        return uncounted(self, queue_name, message_body, message_attributes, *args, **kwargs)

    send_message.counted = True  # type: ignore[attr-defined]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]


def faithful_sqs() -> None:
    """Every fix that brings moto's SQS closer to SQS (each one's docstring says what)."""
    lock_sqs_deletes()
    lock_sqs_receives()
    count_sqs_attribute_bytes()


class MotoEmulator:
    """moto's server in a thread (tests) or, with ``own_process``, in a child process so that
    its CPU time is not billed to the process being measured (benchmark)."""

    def __init__(self, own_process: bool = False, server_module: str = "moto.server") -> None:
        self.port = 0
        self.own_process = own_process
        # tools.steady_moto serves deep queues at a steady cost (the demo's bursts).
        self.server_module = server_module
        self.server: Any = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoEmulator:
        if self.own_process:
            self.port = free_port()
            args = [
                sys.executable,
                "-m",
                self.server_module,
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ]
            self.process = subprocess.Popen(
                args,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # see AzuriteEmulator: Ctrl-C is for its owner to handle
            )
        else:
            from moto.server import ThreadedMotoServer  # noqa: PLC0415 - a test-only dependency

            faithful_sqs()
            # Port 0: the kernel picks a free one as it binds (no race with parallel workers).
            self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
            self.server.start()
            self.port = self.server.get_host_and_port()[1]
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self.server is not None:
            self.server.stop()

    def client(self, service: str, endpoint: str | None = None) -> Any:
        import boto3  # noqa: PLC0415 - keep `import bench.emulators` cheap

        return boto3.session.Session(**_boto_credentials()).client(
            service, endpoint_url=endpoint or self.endpoint
        )

    def provision(self, name: str, visibility_seconds: int = 30) -> AwsTarget:
        sqs, dynamodb = self.client("sqs"), self.client("dynamodb")
        dlq_url = sqs.create_queue(
            QueueName=f"{name}-dlq",
            Attributes={"MaximumMessageSize": str(DLQ_MAX_MESSAGE_BYTES)},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        queue_url = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(visibility_seconds),
                "MaximumMessageSize": str(WORK_QUEUE_MAX_MESSAGE_BYTES),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        env = {
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": self.endpoint,
            "EDW_CLOUD": "aws",
            "EDW_QUEUE": queue_url,
            "EDW_DEAD_LETTER_QUEUE": dlq_url,
            "EDW_TABLE": name,
        }
        return AwsTarget(sqs, dynamodb, queue_url, dlq_url, name, env)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_TEST_ENV["AWS_REGION"],
    }


def azurite_connection_string(queue_port: int, table_port: int, blob_port: int = 0) -> str:
    blob = f"BlobEndpoint=http://127.0.0.1:{blob_port}/{AZURITE_ACCOUNT};" if blob_port else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{AZURITE_ACCOUNT};{blob}"
    )


@dataclass
class AzureTarget:
    queue: Any
    poison: Any
    table: Any
    env: dict[str, str] = field(default_factory=dict)
    cloud: str = "azure"

    def send(self, bodies: Sequence[str]) -> None:
        for body in bodies:
            self.queue.send_message(body)

    def rows(self) -> list[dict[str, str]]:
        found = []
        for entity in self.table.list_entities():
            row = {"id": entity["RowKey"], "partition": entity["PartitionKey"]}
            row.update({k: v for k, v in entity.items() if k not in ("RowKey", "PartitionKey")})
            found.append(row)
        return found

    def row_ids(self) -> list[str]:
        return [e["eventId"] for e in self.table.list_entities(select=["eventId"])]

    def depth(self) -> int:
        return int(self.queue.get_queue_properties().approximate_message_count)

    def dead_letters(self) -> list[DeadLetter]:
        """Envelopes with their bodies; an envelope whose body did not fit names the poison
        message that holds it (``body_message_id``), which is resolved here."""
        messages = {
            m.id: m.content
            for m in self.poison.receive_messages(messages_per_page=32, visibility_timeout=300)
        }
        envelopes = []
        for content in messages.values():
            try:
                doc = json.loads(content)
            except ValueError:
                continue  # a body stored on its own; its envelope points at it
            if isinstance(doc, dict) and "reason" in doc and "message_id" in doc:
                envelopes.append(doc)
        return [
            DeadLetter(
                doc["body"] if "body" in doc else messages[doc["body_message_id"]], doc["reason"]
            )
            for doc in envelopes
        ]


class EmulatorStartError(RuntimeError):
    """An emulator that exited, or never said it listens, while starting; the message ends with
    what it printed (its stderr is kept for this, never shown on the terminal)."""


class AzuriteEmulator:
    """Azurite on ports it picks itself (port 0) and reports on stdout: no race with another
    process (parallel test workers) for a port chosen in advance."""

    SERVICES = ("blob", "queue", "table")
    LISTENING = re.compile(
        r"Azurite (Blob|Queue|Table) service is successfully listening at .*:(\d+)"
    )

    def __init__(self, gc_interval_ms: int = 0, start_timeout: float = 60.0) -> None:
        if not AZURITE.exists():
            raise FileNotFoundError(f"{AZURITE} is missing: run `make deps` (npm ci)")
        # 0: Azurite's own (60 s). The demo sets hours (tools/azurite_gc.cjs says why).
        self.gc_interval_ms = gc_interval_ms
        # How long it may take to report all its services listening before it is stopped.
        self.start_timeout = start_timeout
        self.ports: dict[str, int] = {}
        self.workdir = tempfile.mkdtemp(prefix="azurite-")
        self.process: subprocess.Popen[bytes] | None = None
        self.connection_string = ""

    def __enter__(self) -> AzuriteEmulator:
        args = [str(AZURITE), "--disableTelemetry", "--inMemoryPersistence", "--silent"]
        args += ["--skipApiVersionCheck", "--loose"]
        for service in self.SERVICES:
            args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", "0"]
        env = dict(os.environ)
        if self.gc_interval_ms:
            script = REPO / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
            preload = REPO / "tools" / "azurite_gc.cjs"
            args = ["node", "--require", str(preload), str(script), *args[1:]]
            env["AZURITE_GC_INTERVAL_MS"] = str(self.gc_interval_ms)
        # A session of its own: a terminal's Ctrl-C reaches the owner only (the demo, a test),
        # which stops its consumers first and the emulator last, not everything at once.
        errors = Path(self.workdir) / "stderr.log"
        try:
            with errors.open("wb") as stderr:
                self.process = subprocess.Popen(
                    args,
                    cwd=self.workdir,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    start_new_session=True,
                )
        except OSError as error:  # `node` itself is missing
            self.__exit__()
            raise EmulatorStartError(f"Azurite could not start: {error}") from error
        try:
            self._wait_until_listening(errors, args)
        except EmulatorStartError:
            self.__exit__()  # a slow start may still be running: stopped, not left behind
            raise
        self.connection_string = azurite_connection_string(
            self.ports["queue"], self.ports["table"], self.ports["blob"]
        )
        return self

    def _wait_until_listening(self, errors: Path, command: Sequence[str]) -> None:
        assert self.process is not None
        stdout = self.process.stdout
        assert stdout is not None
        # A thread reads its lines, for as long as it runs (so a full pipe never blocks it), and
        # the wait has a deadline: a blocking readline would wait forever on an Azurite that
        # hangs silently.
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for raw in iter(stdout.readline, b""):
                lines.put(raw.decode(errors="replace"))
            lines.put("")  # its end: it exited

        threading.Thread(target=read, name="azurite-stdout", daemon=True).start()
        printed: list[str] = []
        deadline = time.monotonic() + self.start_timeout
        while len(self.ports) < len(self.SERVICES):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None or time.monotonic() > deadline:
                raise EmulatorStartError(self._hung(command, printed, errors))
            if not line:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(10)
                why = f"Azurite exited while starting (exit {self.process.poll()})"
                raise EmulatorStartError(f"{why}: {_output(printed, errors)}")
            printed.append(line)
            if match := self.LISTENING.search(line):
                self.ports[match.group(1).lower()] = int(match.group(2))

    def _hung(self, command: Sequence[str], printed: Sequence[str], errors: Path) -> str:
        """Why the wait ended, what ran, where it should have listened, what to try next."""
        listening = ", ".join(f"{s} on {p}" for s, p in sorted(self.ports.items())) or "none"
        return (
            f"Azurite did not report its {', '.join(self.SERVICES)} services listening within "
            f"{self.start_timeout:g} s, so it was stopped.\n"
            f"  command: {shlex.join(command)}\n"
            "  port: 0 on 127.0.0.1 for each service (Azurite picks free ports and prints them); "
            f"listening so far: {listening}\n"
            "  try: run the command by hand to see where it stops; `node --version` (Node.js 22+); "
            "another node process stuck on the machine (ps -ef | grep azurite); on a slow "
            "machine, a longer wait (the demo's --start-timeout)\n"
            f"  its output so far:\n{_output(printed, errors)}"
        )

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def provision(self, name: str, connection_string: str | None = None) -> AzureTarget:
        """``connection_string`` lets the consumer reach Azurite through a proxy."""
        from azure.data.tables import TableServiceClient  # noqa: PLC0415 - test-only paths
        from azure.storage.queue import QueueServiceClient  # noqa: PLC0415

        queues = QueueServiceClient.from_connection_string(self.connection_string)
        queue = queues.create_queue(name)
        poison = queues.create_queue(f"{name}-poison")
        tables = TableServiceClient.from_connection_string(self.connection_string)
        table = tables.create_table(name.replace("-", ""))
        env = {
            "EDW_CLOUD": "azure",
            "EDW_QUEUE": name,
            "EDW_DEAD_LETTER_QUEUE": f"{name}-poison",
            "EDW_TABLE": table.table_name,
            "EDW_AZURE_CONNECTION_STRING": connection_string or self.connection_string,
        }
        return AzureTarget(queue, poison, table, env)


def _output(stdout: Sequence[str], stderr: Path, lines: int = 20) -> str:
    """The last lines an emulator printed (stdout, then stderr), or that it printed nothing."""
    text = "".join(stdout) + stderr.read_text(errors="replace")
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept) if kept else "(it printed nothing)"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """Environment for a consumer child process: no stray EDW_* or cloud settings leak in."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("EDW_", "AWS_", "AZURE_"))}
    return {**keep, "PYTHONPATH": str(REPO), **extra}


def main(argv: Sequence[str]) -> None:
    """``python -m bench.emulators aws|azure``: start one emulator with a ``demo`` queue and
    table, print the consumer's environment as ``export`` lines, and serve until Ctrl-C."""
    cloud = argv[0] if argv else "aws"
    emulator = MotoEmulator() if cloud == "aws" else AzuriteEmulator()
    # SIGTERM must unwind the `with` too, or Azurite outlives us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with emulator:
        env = emulator.provision("demo").env
        print("\n".join(f"export {k}='{v}'" for k, v in env.items()), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
