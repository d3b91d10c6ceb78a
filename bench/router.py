"""The router hop on moto: publish to the SNS topic -> row, versus send to the queue -> row.

    python -m bench.router      (part of `make bench`)

One moto, one consumer (the production code path, in this process), one queue subscribed to a
topic with raw delivery, as a stack wires it. Events go one at a time, alternating the two
paths so both meet the same emulator state; each is timed from the send call until its row
reads back from DynamoDB. Prints the median latency of each path and their ratio (router/queue).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from unittest import mock

from app import backend as backends
from app import events
from app.backend import row_key
from app.consumer import Consumer
from app.observability import Metrics
from app.settings import DEFAULT_WORKFLOW, load
from bench.emulators import AWS_TEST_ENV, MotoEmulator

EVENTS_PER_PATH = 40
BENCH_SOURCE = "urn:edw:bench"
POLL_SECONDS = 0.002


def _latency(send: Callable[[str], None], table: str, dynamodb: Any, event_id: str) -> float:
    started = time.perf_counter()
    send(events.make({"bench": True}, source=BENCH_SOURCE, type_="bench", event_id=event_id))
    key = {"id": {"S": row_key(DEFAULT_WORKFLOW, BENCH_SOURCE, event_id)}}
    while "Item" not in dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True):
        time.sleep(POLL_SECONDS)
    return time.perf_counter() - started


def router_hop(per_path: int = EVENTS_PER_PATH) -> dict[str, Any]:
    # The consumer's clients read the endpoint from the environment; restored afterwards.
    with (
        MotoEmulator(own_process=True) as moto,
        mock.patch.dict(os.environ, {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": moto.endpoint}),
    ):
        target = moto.provision("router-hop", visibility_seconds=60)
        sns, sqs, dynamodb = moto.client("sns"), target.sqs, target.dynamodb
        topic = sns.create_topic(Name="router-hop")["TopicArn"]
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=target.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        settings = load({**target.env, "EDW_RECEIVE_WAIT_SECONDS": "1"})
        backend = backends.build(settings)
        consumer = Consumer(settings, backend, Metrics("aws"))
        consumer.start()
        paths: dict[str, Callable[[str], None]] = {
            "queue": lambda body: sqs.send_message(QueueUrl=target.queue_url, MessageBody=body),
            "router": lambda body: sns.publish(TopicArn=topic, Message=body),
        }
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        try:
            for i in range(per_path):
                order = ("queue", "router") if i % 2 == 0 else ("router", "queue")
                for name in order:
                    seconds[name].append(
                        _latency(paths[name], target.table, dynamodb, f"{name}-{i:04d}")
                    )
        finally:
            consumer.drain(10)
            backend.close()
    queue_ms = 1000 * statistics.median(seconds["queue"])
    router_ms = 1000 * statistics.median(seconds["router"])
    return {
        "cloud": "aws",
        "path": "publish to topic -> row vs send to queue -> row",
        "events_per_path": per_path,
        "queue_median_ms": round(queue_ms, 1),
        "router_median_ms": round(router_ms, 1),
        "router_over_queue": round(router_ms / queue_ms, 2),
    }


def main(argv: Sequence[str]) -> int:
    per_path = int(argv[0]) if argv else EVENTS_PER_PATH
    row = router_hop(per_path)
    print(json.dumps(row))
    print(
        f"router hop: queue {row['queue_median_ms']} ms, router {row['router_median_ms']} ms "
        f"(median to the row), ratio {row['router_over_queue']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
