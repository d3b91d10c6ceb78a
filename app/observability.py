"""JSON logs, Prometheus metrics and the health/metrics HTTP server of the consumer."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.settings import DEFAULT_WORKFLOW

# Batch work ranges from milliseconds (emulator) to minutes (simulated work).
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class Metrics:
    """The consumer's metrics in their own registry (several consumers can share a process)."""

    def __init__(self, cloud: str, workflow: str = DEFAULT_WORKFLOW) -> None:
        self.registry = CollectorRegistry()
        # Workflows share the consumer namespace: the workflow label tells their series apart.
        labels = {"cloud": cloud, "workflow": workflow}
        names = list(labels)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, names, registry=self.registry).labels(**labels)

        self.received = counter("edw_messages_received", "Messages received from the work queue.")
        self.processed = counter("edw_messages_processed", "Messages stored and deleted.")
        self.failed = counter("edw_messages_failed", "Messages left for redelivery after errors.")
        self.dead_lettered = counter(
            "edw_messages_dead_lettered", "Messages moved to the dead-letter/poison queue."
        )
        self.filtered_through_arrays = counter(
            "edw_events_filtered_through_arrays",
            "Events whose filtered data path crosses an array of objects: SNS routes them by "
            "any element, Event Grid never (docs/routing.md).",
        )
        self.delete_failures = counter(
            "edw_delete_failures", "Stored messages whose delete failed (they come back once)."
        )
        self.batch_seconds = Histogram(
            "edw_batch_seconds",
            "Time from receive to delete of one batch.",
            names,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.end_to_end_seconds = Histogram(
            "edw_end_to_end_seconds",
            "Time from the CloudEvent's time to its row being stored.",
            names,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.in_flight = Gauge(
            "edw_messages_in_flight",
            "Messages received and not yet settled.",
            names,
            registry=self.registry,
        ).labels(**labels)
        self.requeued = counter(
            "edw_messages_requeued",
            "Valid messages put back as fresh copies because the table failed.",
        )
        self.over_copy_limit = counter(
            "edw_messages_over_copy_limit",
            "Valid messages set aside because the table could not take them after "
            "EDW_MAX_COPIES fresh copies.",
        )
        self.table_full = counter(
            "edw_table_full",
            "Writes the table refused for lack of room (Cosmos DB: a logical partition at its "
            "20 GB cap); only an operator can make room.",
        )
        self.breaker_open = Gauge(
            "edw_breaker_open",
            "1 while the table's circuit breaker is open or probing: the consumer receives no new "
            "messages, 0 once a write succeeded.",
            names,
            registry=self.registry,
        ).labels(**labels)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """/healthz (liveness), /readyz (readiness) and /metrics on one port, in a daemon thread."""

    def __init__(
        self,
        port: int,
        metrics: Metrics,
        live: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "0.0.0.0",
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/healthz": lambda: _probe(live()),
            "/readyz": lambda: _probe(ready()),
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics.exposition()),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, kind, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Probes every few seconds would drown the logs."""

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])  # the bound one, when asked for 0
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _probe(ok: bool) -> tuple[int, str, bytes]:
    return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"unavailable\n")
