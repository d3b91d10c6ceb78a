"""What the hop to a handler costs: the consumer with a no-op handler against the consumer alone.

    python -m bench.handler [aws] [azure]        (part of `make bench`)

On each emulator (moto, Azurite; no injected latency, where the hop weighs most), rounds alternate
the consumer alone and the consumer with ``EDW_HANDLER_URL`` pointing at a handler that answers
204 at once (bench/noop_handler.py, its own process), both with ``bench.CONCURRENCY`` workers,
each draining ``bench.MESSAGES`` messages the feeder keeps topped up. Prints the medians: msgs/s,
their ratio (handler/alone) and the consumer's CPU seconds per 1,000 messages (this process: the
handler's, the emulator's and the feeder's CPU are not counted). The bar: the hop costs no more
than 20% of throughput (ratio >= 0.8). Results: bench/results/handler.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from bench.__main__ import (
    MESSAGES,
    RESULTS,
    ROUNDS,
    ConsumerRunner,
    Runner,
    Sample,
    Scenario,
    compare,
    markdown_table,
    measure,
    scenario_for,
)
from bench.chain import HandlerProcess
from bench.emulators import AWS_TEST_ENV, free_port

BAR = 0.8
OUT = RESULTS.parent / "handler.json"


def router(scenario: Scenario) -> str:
    """A router the consumer is configured with; a no-op handler never emits to it."""
    if scenario.cloud == "azure":
        return "http://127.0.0.1:9/api/events"
    import boto3  # noqa: PLC0415 - only the chosen cloud's SDK

    sns = boto3.session.Session().client("sns", endpoint_url=scenario.direct)
    return sns.create_topic(Name="bench-router")["TopicArn"]


def with_handler(url: str, address: str) -> Any:
    def make(scenario: Scenario, env: dict[str, str], consumed: Synchronized, total: int) -> Runner:
        return ConsumerRunner(
            scenario, {**env, "EDW_HANDLER_URL": url, "EDW_ROUTER": address}, consumed, total
        )

    return make


def bench(clouds: Sequence[str], logs: Path) -> list[dict[str, Any]]:
    os.environ.update(AWS_TEST_ENV)
    rows = []
    for cloud in clouds:
        samples: dict[str, list[Sample]] = defaultdict(list)
        with HandlerProcess(
            [sys.executable, "-m", "bench.noop_handler"], free_port(), logs / "handler.log"
        ) as handler:
            for round_ in range(ROUNDS):
                kinds = ("alone", "handler") if round_ % 2 == 0 else ("handler", "alone")
                with scenario_for(cloud, 0) as scenario:
                    make = with_handler(handler.url, router(scenario))
                    for kind in kinds:
                        runner = make if kind == "handler" else None
                        samples[kind].append(measure(scenario, "consumer", runner))
        rows.append(summarise(cloud, samples))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def summarise(cloud: str, samples: dict[str, list[Sample]]) -> dict[str, Any]:
    return {
        "cloud": cloud,
        "messages": MESSAGES[cloud],
        "rounds": ROUNDS,
        **compare(samples, "alone", "handler"),
    }


TABLE = {
    "cloud": "cloud",
    "alone msg/s": "alone_msgs_per_s",
    "with no-op handler msg/s": "handler_msgs_per_s",
    "ratio": "ratio",
    "CPU s/1k alone": "alone_cpu_s_per_1000",
    "CPU s/1k with handler": "handler_cpu_s_per_1000",
}


def main(argv: Sequence[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="edw-bench-handler-") as logs:
        rows = bench(argv or ["aws", "azure"], Path(logs))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown_table(rows, TABLE))
    met = all(r["ratio"] >= BAR for r in rows)
    print(
        f"\nbar (the hop costs <= 20% of throughput: ratio >= {BAR}): {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
