"""Keeps the work queue topped up to a shallow depth while a measurement runs (own process).

moto's SQS slows down as the queue grows (it recomputes attributes per message), so instead of
pre-filling N messages the feeder keeps ``sent - consumed`` (visible plus in-flight messages) at
most ``depth``; ``consumed`` is a shared counter the measured side bumps after each delete.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

from app.producer import body

PAYLOAD_BYTES = 512


@dataclass(frozen=True)
class FeedPlan:
    cloud: str
    queue: str  # SQS queue URL or Azure queue name
    endpoint: str  # moto endpoint or Azurite connection string (direct, never through the proxy)
    total: int
    depth: int


def _sender(plan: FeedPlan) -> tuple[int, Any]:
    if plan.cloud == "aws":
        import boto3  # noqa: PLC0415 - only the chosen cloud's SDK

        sqs = boto3.session.Session().client("sqs", endpoint_url=plan.endpoint)

        def send_sqs(bodies: list[str]) -> None:
            for i in range(0, len(bodies), 10):
                entries = [
                    {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])
                ]
                sqs.send_message_batch(QueueUrl=plan.queue, Entries=entries)

        return 10, send_sqs
    from azure.storage.queue import QueueClient  # noqa: PLC0415 - only the chosen cloud's SDK

    client = QueueClient.from_connection_string(plan.endpoint, plan.queue)
    pool = ThreadPoolExecutor(8)

    def send_azure(bodies: list[str]) -> None:
        list(pool.map(client.send_message, bodies))

    return 32, send_azure


def feed(plan: FeedPlan, consumed: Synchronized, primed: Event) -> None:
    """Send ``plan.total`` events, never more than ``plan.depth`` ahead of the consumer."""
    batch, send = _sender(plan)
    sent = 0
    while sent < plan.total:
        room = min(plan.depth - (sent - consumed.value), plan.total - sent)
        if room < min(batch, plan.total - sent):
            time.sleep(0.002)
            continue
        send([body(sent + i, PAYLOAD_BYTES, "urn:edw:bench", "bench") for i in range(room)])
        sent += room
        if sent >= min(plan.depth, plan.total):
            primed.set()  # the clock starts once the queue holds its working depth
