"""Load a deployed stack and watch it scale: `make loadtest STACK=aws`.

    python -m tools.loadtest --stack aws [--count 20000] [--rate 500] [--pattern ramp]
                             [--interval 5] [--kubeconfig PATH] [--plot loadtest.png]

Sends the pattern to the stack's work queue (the target comes from `pulumi stack output`) and
samples once per interval: the queue's depth, in flight and dead-letter depth from the queue
APIs (Azure's count includes in-flight messages: shown as depth, in flight as "-"), and, with a
kubeconfig (`pulumi stack output kubeconfig --show-secrets > kubeconfig`), the consumer's
replicas (its Deployment and KEDA's HPA) and Karpenter's / NAP's nodes by capacity type
(NodeClaims) through the Kubernetes API (the `kubernetes` client). A live view shows each
sample; at the end a plot of depth, replicas and nodes over time, and the times from the first
message to the first pod and to the first new node, and from the last message to zero pods.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from app.producer import PATTERNS, Run, Target, produce, resolve_target, stack_outputs
from tools.live import LiveView

CONSUMER = "edw-consumer"
CAPACITY_LABEL = "karpenter.sh/capacity-type"


@dataclass(frozen=True)
class QueueSample:
    depth: int
    in_flight: int | None  # None where the API cannot tell (Azure counts both together)
    dead: int


class AwsQueues:
    def __init__(self, outputs: dict[str, str]) -> None:
        import boto3  # noqa: PLC0415

        self.sqs = boto3.session.Session(region_name=outputs.get("region")).client("sqs")
        self.queue, self.dlq = outputs["queueUrl"], outputs["deadLetterQueueUrl"]

    def _attrs(self, url: str) -> tuple[int, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return int(found[names[0]]), int(found[names[1]])

    def sample(self) -> QueueSample:
        visible, in_flight = self._attrs(self.queue)
        return QueueSample(visible, in_flight, sum(self._attrs(self.dlq)))


class AzureQueues:
    def __init__(self, outputs: dict[str, str], connection_string: str | None = None) -> None:
        from azure.storage.queue import QueueClient  # noqa: PLC0415

        names = outputs["queueName"], outputs["poisonQueueName"]
        if connection_string:
            self.queue, self.poison = (
                QueueClient.from_connection_string(connection_string, n) for n in names
            )
        else:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415

            url = f"https://{outputs['storageAccount']}.queue.core.windows.net"
            credential = DefaultAzureCredential()
            self.queue, self.poison = (QueueClient(url, n, credential=credential) for n in names)

    def sample(self) -> QueueSample:
        count = self.queue.get_queue_properties().approximate_message_count
        dead = self.poison.get_queue_properties().approximate_message_count
        return QueueSample(int(count), None, int(dead))


@dataclass(frozen=True)
class ClusterSample:
    replicas: int
    desired: int | None  # KEDA's HPA (None while KEDA holds the Deployment at zero)
    spot_nodes: int
    on_demand_nodes: int


class Cluster:
    """Reads the consumer's scale and the autoscaled nodes with the Kubernetes client."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client  # noqa: PLC0415

        self.apps = client.AppsV1Api(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    @classmethod
    def from_kubeconfig(cls, path: str, namespace: str) -> Cluster:
        from kubernetes import config  # noqa: PLC0415

        return cls(config.new_client_from_config(config_file=path), namespace)

    def sample(self) -> ClusterSample:
        deployment = self.apps.read_namespaced_deployment(CONSUMER, self.namespace)
        hpas = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(self.namespace).items
        desired = next(
            (h.status.desired_replicas for h in hpas if h.spec.scale_target_ref.name == CONSUMER),
            None,
        )
        claims = self.custom.list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims")
        kinds = [c["metadata"].get("labels", {}).get(CAPACITY_LABEL) for c in claims["items"]]
        return ClusterSample(
            replicas=deployment.status.replicas or 0,
            desired=desired,
            spot_nodes=kinds.count("spot"),
            on_demand_nodes=kinds.count("on-demand"),
        )


@dataclass(frozen=True)
class Sample:
    t: float
    sent: int
    queue: QueueSample
    cluster: ClusterSample | None


def milestones(samples: Sequence[Sample], sending_done: float | None) -> dict[str, float | None]:
    """Seconds from the first message to the first pod and to the first new node, and from the
    last message to zero pods (None where it did not happen during the run)."""
    with_cluster = [s for s in samples if s.cluster is not None]

    def nodes(s: Sample) -> int:
        return s.cluster.spot_nodes + s.cluster.on_demand_nodes if s.cluster else 0

    first_sent = next((s.t for s in samples if s.sent > 0), None)
    first_pod = next((s.t for s in with_cluster if s.cluster and s.cluster.replicas > 0), None)
    baseline = nodes(with_cluster[0]) if with_cluster else 0
    first_node = next((s.t for s in with_cluster if nodes(s) > baseline), None)
    zero = None
    if sending_done is not None and first_pod is not None:
        zero = next(
            (s.t for s in with_cluster if s.t > first_pod and s.cluster and not s.cluster.replicas),
            None,
        )

    def since(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 1)

    return {
        "first_message_to_first_pod": since(first_sent, first_pod),
        "first_message_to_first_new_node": since(first_sent, first_node),
        "last_message_to_zero_pods": since(sending_done, zero),
    }


HEADERS = ("t", "sent", "depth", "in flight", "dead", "pods", "hpa", "spot", "on-demand")


def cells(s: Sample) -> list[str]:
    c = s.cluster
    return [
        f"{s.t:.0f}s",
        str(s.sent),
        str(s.queue.depth),
        "-" if s.queue.in_flight is None else str(s.queue.in_flight),
        str(s.queue.dead),
        "-" if c is None else str(c.replicas),
        "-" if c is None or c.desired is None else str(c.desired),
        "-" if c is None else str(c.spot_nodes),
        "-" if c is None else str(c.on_demand_nodes),
    ]


def plot(samples: Sequence[Sample], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    t = [s.t for s in samples]
    figure, (top, bottom) = pyplot.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(t, [s.queue.depth for s in samples], label="queue depth")
    top.plot(t, [s.queue.in_flight or 0 for s in samples], label="in flight")
    top.set_ylabel("messages")
    top.legend(loc="upper right")
    top.set_title(title)
    bottom.step(t, [s.cluster.replicas if s.cluster else 0 for s in samples], label="pods")
    bottom.step(t, [s.cluster.spot_nodes if s.cluster else 0 for s in samples], label="spot nodes")
    bottom.step(
        t, [s.cluster.on_demand_nodes if s.cluster else 0 for s in samples], label="on-demand nodes"
    )
    bottom.set_ylabel("count")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def run(args: argparse.Namespace) -> int:
    outputs = stack_outputs(args.stack)
    no_flags = argparse.Namespace(
        cloud=None, queue=None, connection_string=None, storage_account=None
    )
    target: Target = resolve_target(no_flags, {}, outputs)
    queues = AwsQueues(outputs) if target.cloud == "aws" else AzureQueues(outputs)
    cluster = (
        Cluster.from_kubeconfig(args.kubeconfig, outputs.get("consumerNamespace", "edw"))
        if args.kubeconfig
        else None
    )
    producer_run = Run(args.count, 10 if target.cloud == "aws" else 32)
    options = argparse.Namespace(
        pattern=args.pattern, rate=args.rate, ramp_seconds=args.ramp_seconds,
        burst_seconds=10.0, payload_bytes=512, concurrency=4, source="urn:edw:loadtest",
        type="edw.loadtest", progress=False,
    )  # fmt: skip
    sender = threading.Thread(target=produce, args=(target, options, producer_run), daemon=True)
    samples: list[Sample] = []
    started, sending_done = time.monotonic(), None
    sender.start()
    title = f"{args.stack}: {args.count} events, {args.pattern} at {args.rate:.0f}/s"
    with LiveView(Console(), title, HEADERS) as view:
        while True:
            now = time.monotonic() - started
            if sending_done is None and not sender.is_alive():
                sending_done = now
            sample = Sample(
                now, producer_run.sent, queues.sample(), cluster.sample() if cluster else None
            )
            samples.append(sample)
            view.show(cells(sample))
            idle = (
                sending_done is not None and not sample.queue.depth and not sample.queue.in_flight
            )
            scaled_in = cluster is None or (
                sample.cluster is not None and not sample.cluster.replicas
            )
            if (idle and scaled_in) or now > args.timeout:
                break
            time.sleep(args.interval)
    if args.plot:
        plot(samples, Path(args.plot), title)
    times = milestones(samples, sending_done)
    print("  ".join(f"{k}={v if v is not None else '-'}s" for k, v in times.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.loadtest", description=__doc__)
    p.add_argument("--stack", required=True)
    p.add_argument("--count", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--pattern", choices=PATTERNS, default="ramp")
    p.add_argument("--ramp-seconds", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--kubeconfig", default="", help="watch pods and nodes through this kubeconfig")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--plot", default="loadtest.png", help="PNG to draw the run into ('' for none)")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
