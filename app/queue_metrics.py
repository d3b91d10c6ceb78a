"""Per-queue depth and oldest-message age of Storage queues, sent to Azure Monitor as custom
metrics: what the Azure stack's poison-queue and backlog alerts watch.

Storage's platform metrics are per account (``QueueMessageCount`` has no queue dimension) and
have no age at all; each queue's own metadata (its approximate count, what KEDA scales on) and
its first message's insertion time (a peek) do tell both, per queue. A CronJob runs this every
minute:

    EDW_STORAGE_ACCOUNT=... EDW_QUEUES=work,work-poison EDW_METRICS_RESOURCE_ID=<account id> \\
        EDW_METRICS_REGION=westeurope python -m app.queue_metrics

Metric alerts never fire on metrics that stop coming, so each accepted run also sends the task's
heartbeat (``app.heartbeat``, with EDW_HEARTBEAT_TASK), whose absence the stack alerts on.
Exit 0 when the metrics (and the heartbeat) were accepted, 1 when not, 2 on bad settings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from app import heartbeat
from app.azure import Clients, http_session
from app.observability import setup_logging

NAMESPACE = "edw"
DEPTH, AGE = "QueueDepth", "OldestMessageAgeSeconds"
DIMENSION = "Queue"
MONITOR_SCOPE = "https://monitoring.azure.com/.default"
EXIT_REFUSED, EXIT_BAD_SETTINGS = 1, 2
log = logging.getLogger("edw.queue_metrics")


@dataclass(frozen=True)
class QueueState:
    queue: str
    depth: int
    oldest_age_seconds: float


def read(
    clients: Clients, account: str | None, queues: Sequence[str], now: datetime
) -> list[QueueState]:
    """Each queue's approximate count and its first visible message's age (0 when empty)."""
    states = []
    for name in queues:
        client = clients.queue(name, account)
        depth = client.get_queue_properties().approximate_message_count or 0
        first = next(iter(client.peek_messages(max_messages=1)), None)
        age = (now - first.inserted_on).total_seconds() if first and first.inserted_on else 0.0
        states.append(QueueState(name, depth, max(0.0, age)))
    return states


def custom_metrics(states: Sequence[QueueState], now: datetime) -> list[dict[str, Any]]:
    """One request body per metric (Azure Monitor custom metrics REST API shape)."""

    def body(metric: str, values: list[tuple[str, float]]) -> dict[str, Any]:
        return {
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {
                "baseData": {
                    "metric": metric,
                    "namespace": NAMESPACE,
                    "dimNames": [DIMENSION],
                    "series": [
                        {"dimValues": [queue], "min": v, "max": v, "sum": v, "count": 1}
                        for queue, v in values
                    ],
                }
            },
        }

    return [
        body(DEPTH, [(s.queue, s.depth) for s in states]),
        body(AGE, [(s.queue, round(s.oldest_age_seconds, 1)) for s in states]),
    ]


def publish(
    session: requests.Session, endpoint: str, token: str, bodies: Sequence[Mapping[str, Any]]
) -> bool:
    ok = True
    for body in bodies:
        response = session.post(
            endpoint,
            data=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=(5, 30),
        )
        if response.status_code >= 300:
            log.warning(
                "metrics refused",
                extra={"fields": {"status": response.status_code, "body": response.text[:200]}},
            )
            ok = False
    return ok


def main(env: Mapping[str, str] = os.environ, credential: Any = None) -> int:
    setup_logging("INFO")
    queues = [q for q in env.get("EDW_QUEUES", "").split(",") if q]
    resource, region = env.get("EDW_METRICS_RESOURCE_ID", ""), env.get("EDW_METRICS_REGION", "")
    connection, account = env.get("EDW_AZURE_CONNECTION_STRING"), env.get("EDW_STORAGE_ACCOUNT")
    if not (queues and resource and region and (connection or account)):
        log.error(
            "EDW_QUEUES, EDW_METRICS_RESOURCE_ID, EDW_METRICS_REGION and EDW_STORAGE_ACCOUNT (or "
            "EDW_AZURE_CONNECTION_STRING) are required"
        )
        return EXIT_BAD_SETTINGS
    session = http_session(4)
    clients = Clients(session, connection)
    now = datetime.now(UTC)
    states = read(clients, account, queues, now)
    # The endpoint can be pointed elsewhere for tests; in Azure it is the region's ingestion.
    base = env.get("EDW_METRICS_ENDPOINT") or f"https://{region}.monitoring.azure.com"
    token = (credential or clients.credential).get_token(MONITOR_SCOPE).token
    accepted = publish(session, f"{base}{resource}/metrics", token, custom_metrics(states, now))
    log.info(
        "queue metrics",
        extra={"fields": {"queues": {s.queue: [s.depth, s.oldest_age_seconds] for s in states}}},
    )
    return heartbeat.after_run(env, credential) if accepted else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
