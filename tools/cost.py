"""What a stack costs: fixed per month (idle) and per million events, from its own resource graph.

    python -m tools.cost --stack aws [--messages-per-month N] [--message-bytes B] [--json]
        [--arrival steady|bursty] [--bursts-per-day N]
    make cost STACK=aws

The program runs offline through the same mocks as the policy check (``--override key=value``
like ``policy.offline``), so what is priced is what ``pulumi up`` would create for that config.
Unit prices come from ``tools/prices/<cloud>/<region>.json`` (data: each price with its unit,
source page, the date it was written down and whether it was read from that page then,
``verified``; an unverified price is marked ``*`` in the table and ``"verified": false`` in the
JSON, and so is every monthly figure and total computed from one, ``totalsVerified``);
throughput per consumer pod from ``bench/results/latest.json`` (``make bench``). The model
and its assumptions: docs/cost.md.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from rich.console import Console
from rich.table import Table

from app.observability import Metrics
from components.aws.alarms import HEARTBEAT_NAMESPACE
from components.ticks import START
from policy.offline import parse_overrides
from policy.rules.common import quantity
from stacks.offline import StackRun, run_stack, stack_names

REPO = Path(__file__).resolve().parents[1]
PRICES = REPO / "tools" / "prices"
BENCH = REPO / "bench" / "results" / "latest.json"
BENCH_CONCURRENCY = 4  # bench/__main__.py CONCURRENCY: the measured pod's worker threads
BENCH_LATENCY_MS = 15  # the bench row closest to a cloud API round trip
SECONDS_PER_MONTH = 730 * 3600
CHUNK = 64 * 1024  # SQS, SNS and Event Grid bill each 64 KB of a request as one
SQS_BATCH, AZURE_RECEIVE = 10, 32  # the consumer's receive batches (app/aws.py, app/azure.py)
# What the model assumes where the graph cannot say (docs/cost.md).
IMAGE_GB = 0.25  # the consumer image in the registry
NODE_DISK_GB = 20  # an EKS managed node group's default root volume
ENVELOPE_BYTES = 1024  # request and response framing per event on the wire
ROW_OVERHEAD_BYTES = 128  # a row's attribute names, key and workflow beside the event
COSMOS_RU_PER_KB_WRITE = 5.5  # Cosmos DB: a 1 KB upsert costs about 5-6 RU
KEDA_SERIES = 150  # series KEDA's operator exposes for a few ScaledObjects (full observability)
SCRAPES_PER_HOUR = 3600 / 30  # the managed scrapers' interval (components/observability/scrape.py)
# Orders of magnitude for what observability full collects that the graph cannot tell: measure
# yours (docs/cost.md). AKS's managed Prometheus also scrapes its default targets (cAdvisor,
# kubelet, node exporter, kube-state-metrics) per node; container logs of a quiet system node.
AKS_DEFAULT_SERIES_PER_NODE = 1000
CONTAINER_LOG_GB_PER_NODE_DAY = 0.1
# A node is billed from launch, about a minute before its first pod runs (an assumption).
NODE_START_SECONDS = 60
# A heartbeat row in Log Analytics: its two columns and the table's own (an assumption).
HEARTBEAT_ROW_BYTES = 200
DAYS_PER_MONTH = 730 / 24
# The NodePools' .large / 2-vCPU size per Azure NAP SKU family (the priced ones).
AZURE_FAMILY_SIZES = {"D": "Standard_D2s_v5", "F": "Standard_F2s_v2"}
ARRIVALS = ("steady", "bursty")
# The CloudWatch add-on's pipelines on by default that the model does not price (components/aws/
# prometheus.py turns them off).
UNPRICED_PIPELINES = ("containerInsights", "applicationSignals")

Kind = Literal["fixed", "variable"]
UNVERIFIED_MARK = "*"


class PriceError(ValueError):
    """A price the table does not have (an unpriced region or size)."""


@dataclass(frozen=True)
class LineItem:
    name: str
    kind: Kind
    quantity: float
    unit: str
    unit_price: float
    verified: bool  # the unit price was read from its source page on the date the file gives

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Unpriced:
    """Something the stack bills that the model cannot price, with how much of it and why."""

    name: str
    quantity: float
    unit: str
    reason: str


@dataclass(frozen=True)
class Volume:
    messages_per_month: int
    message_bytes: int
    # steady: the month's events spread evenly; bursty: ``bursts_per_day`` bursts of events.
    arrival: Literal["steady", "bursty"] = "steady"
    bursts_per_day: int = 4

    @property
    def bursts(self) -> float:
        """Separate arrivals a month: each steady event, or each burst."""
        if self.arrival == "steady":
            return float(self.messages_per_month)
        return min(float(self.messages_per_month), self.bursts_per_day * DAYS_PER_MONTH)

    @property
    def millions(self) -> float:
        return self.messages_per_month / 1e6

    @property
    def chunks(self) -> int:
        """64 KB request units one event occupies."""
        return max(1, math.ceil(self.message_bytes / CHUNK))

    @property
    def row_bytes(self) -> int:
        return self.message_bytes + ROW_OVERHEAD_BYTES

    @property
    def wire_gb(self) -> float:
        """Bytes one event moves through the cluster's egress per workflow: in, out, framing."""
        return self.messages_per_month * (2 * self.message_bytes + ENVELOPE_BYTES) / 1e9


def priced_regions(cloud: str) -> list[str]:
    return sorted(path.stem for path in (PRICES / cloud).glob("*.json"))


def verified(price: Mapping[str, Any]) -> bool:
    """Whether a price was read from its page: only an explicit ``"verified": true`` says so."""
    return price.get("verified") is True


class PriceBook:
    """One region's prices (its own file); every lookup names the region and what is priced
    when it fails."""

    def __init__(self, cloud: str, region: str, table: Mapping[str, Any] | None = None) -> None:
        path = PRICES / cloud / f"{region}.json"
        if table is None and not path.exists():
            raise PriceError(
                f"no prices for {cloud} region {region!r}; priced: "
                f"{', '.join(priced_regions(cloud))} (add tools/prices/{cloud}/{region}.json)"
            )
        data = table or json.loads(path.read_text())
        self.cloud, self.region, self.data = cloud, region, data
        self.prices: Mapping[str, Mapping[str, Any]] = data["prices"]
        self.hours = float(data["hoursPerMonth"])

    def item(self, name: str, kind: Kind, key: str, quantity: float) -> LineItem:
        if key not in self.prices:
            raise PriceError(f"no price {key!r} for {self.cloud} {self.region}")
        price = self.prices[key]
        return LineItem(name, kind, quantity, price["unit"], float(price["price"]), verified(price))

    def hourly(self, name: str, key: str, count: float) -> LineItem:
        """Something billed by the hour all month."""
        return self.item(name, "fixed", key, count * self.hours)

    def cheapest_node(self, prefix: str, sizes: Sequence[str]) -> tuple[str, Mapping[str, Any]]:
        priced = [
            (s, self.prices[f"{prefix}:{s}"]) for s in sizes if f"{prefix}:{s}" in self.prices
        ]
        if not priced:
            known = sorted(k.split(":", 1)[1] for k in self.prices if k.startswith(f"{prefix}:"))
            raise PriceError(
                f"none of {list(sizes)} is priced as {prefix} in {self.region}; priced: {known}"
            )
        return min(priced, key=lambda p: p[1]["price"] / p[1]["vcpu"])


@dataclass(frozen=True)
class Workload:
    """A workflow's consumer as the graph renders it."""

    name: str
    min_replicas: int
    polling_seconds: float
    cpu: float
    memory_gib: float
    concurrency: int
    simulated_work_ms: int
    # How long a pod stays after the last message: KEDA's cooldown (a service), the job's idle
    # exit (a job).
    idle_tail_seconds: float = 0


def workloads(run: StackRun) -> list[Workload]:
    found = []
    for scaler in [*run.custom_resources("ScaledObject"), *run.custom_resources("ScaledJob")]:
        spec = scaler.inputs["spec"]
        name = scaler.inputs["metadata"]["name"]
        if "jobTargetRef" in spec:
            template = spec["jobTargetRef"]["template"]
        else:
            (deployment,) = [
                d
                for d in run.of_type("kubernetes:apps/v1:Deployment")
                if d.inputs["metadata"]["name"] == spec["scaleTargetRef"]["name"]
            ]
            template = deployment.inputs["spec"]["template"]
        (container,) = template["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        # A native sidecar (a workflow's handler) runs beside the consumer all the pod's life:
        # its requests add to the pod's (Kubernetes docs, "Sidecar containers", resource sharing).
        sidecars = [
            c
            for c in template["spec"].get("initContainers") or []
            if c.get("restartPolicy") == "Always"
        ]
        requests = [c["resources"]["requests"] for c in [container, *sidecars]]
        found.append(
            Workload(
                name,
                int(spec.get("minReplicaCount") or 0),
                float(spec.get("pollingInterval") or 30),
                sum(quantity(r["cpu"]) for r in requests),
                sum(quantity(r["memory"]) for r in requests) / 2**30,
                int(env["EDW_CONCURRENCY"]),
                int(env.get("EDW_SIMULATED_WORK_MS", "0")),
                float(
                    spec["cooldownPeriod"]
                    if "cooldownPeriod" in spec
                    else env.get("EDW_EXIT_WHEN_IDLE_SECONDS", 0)
                ),
            )
        )
    return found


def pod_seconds_per_event(cloud: str, w: Workload) -> float:
    """From the consumer's measured rate at 4 workers, scaled to the workflow's workers, plus
    its simulated work spread over them."""
    rows = json.loads(BENCH.read_text())
    (row,) = [r for r in rows if r["cloud"] == cloud and r["latency_ms"] == BENCH_LATENCY_MS]
    rate = row["consumer_msgs_per_s"] * w.concurrency / BENCH_CONCURRENCY
    return 1 / rate + w.simulated_work_ms / 1000 / w.concurrency


def pod_hours(cloud: str, volume: Volume, w: Workload, hours_per_month: float) -> float:
    """A workflow's pod-hours a month: its work at the measured rate, and after each separate
    arrival (a steady event, a burst) a pod kept for its idle tail, at most one all month."""
    work = volume.messages_per_month * pod_seconds_per_event(cloud, w) / 3600
    tails = volume.bursts * w.idle_tail_seconds / 3600 if work else 0.0
    return max(work, min(hours_per_month, work + tails))


def pod_share_per_hour(node: Mapping[str, Any], w: Workload) -> float:
    """What one pod costs an hour on a node: its larger share of the node's CPU or memory."""
    share = max(w.cpu / node["vcpu"], w.memory_gib / node["memoryGiB"])
    return float(node["price"]) * share


def families(run: StackRun, key: str) -> list[str]:
    values: set[str] = set()
    for pool in run.custom_resources("NodePool"):
        for requirement in pool.inputs["spec"]["template"]["spec"]["requirements"]:
            if requirement["key"] == key:
                values.update(requirement["values"])
    return sorted(values)


def duration_seconds(text: str) -> int:
    """A Karpenter duration (30s, 1m, 2h30m) in seconds; 0 for anything else ("Never")."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not parts:
        return 0
    hours, minutes, seconds = (int(v or 0) for v in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def consolidate_after_seconds(run: StackRun) -> float:
    """How long an empty consumer node stays (the NodePools' consolidateAfter, the longest)."""
    return max(
        [0]
        + [
            duration_seconds(pool.inputs["spec"]["disruption"].get("consolidateAfter", ""))
            for pool in run.custom_resources("NodePool")
        ]
    )


def compute_items(
    book: PriceBook, run: StackRun, volume: Volume, sizes: Sequence[str]
) -> tuple[list[LineItem], list[LineItem]]:
    """Consumer compute: spot (what spot-first NodePools buy) in the totals, on-demand beside.

    The work itself is pod-hours at the measured rate. Each separate arrival (a steady event,
    or a burst) also keeps a pod until its idle tail ends and a node until it is consolidated,
    so while traffic flows at least one pod per workflow and one node run: under steady
    traffic that is every hour of the month. What the pods do not fill of that node is its own
    line."""
    cloud = book.cloud
    spot_size, spot = book.cheapest_node("spot", sizes)
    demand_prefix = "ec2" if cloud == "aws" else "vm"
    demand_size, demand = book.cheapest_node(demand_prefix, sizes)
    node_tail = consolidate_after_seconds(run) + NODE_START_SECONDS
    items: list[LineItem] = []
    alternatives: list[LineItem] = []
    for node, size, target, label in (
        (spot, spot_size, items, "spot"),
        (demand, demand_size, alternatives, "on-demand"),
    ):
        node_hours_of_pods = 0.0
        longest_tail = 0.0
        for w in workloads(run):
            hours = pod_hours(cloud, volume, w, book.hours)
            name = f"{w.name} consumer pods ({label} {size})"
            share = pod_share_per_hour(node, w)
            checked = verified(node)
            target.append(LineItem(name, "variable", hours, "pod-hour", share, checked))
            node_hours_of_pods += hours * share / float(node["price"])
            longest_tail = max(longest_tail, w.idle_tail_seconds)
            if w.min_replicas:
                idle = w.min_replicas * book.hours
                target.append(
                    LineItem(f"{name}, minReplicas", "fixed", idle, "pod-hour", share, checked)
                )
        tails = (
            volume.bursts * (longest_tail + node_tail) / 3600 if volume.messages_per_month else 0
        )
        node_hours = max(node_hours_of_pods, min(book.hours, node_hours_of_pods + tails))
        target.append(
            LineItem(
                f"consumer node beyond its pods ({label} {size})",
                "variable",
                node_hours - node_hours_of_pods,
                "node-hour",
                float(node["price"]),
                verified(node),
            )
        )
    return items, alternatives


def keda_polls(book: PriceBook, run: StackRun, key: str, per_unit: float) -> LineItem:
    """KEDA reads every workflow's queue length at its polling interval, idle or not."""
    calls = sum(SECONDS_PER_MONTH / w.polling_seconds for w in workloads(run))
    return book.item("KEDA queue-length reads", "fixed", key, calls / per_unit)


@dataclass(frozen=True)
class Priced:
    items: list[LineItem]
    alternatives: list[LineItem]  # the consumers on on-demand nodes only (not in the totals)
    unpriced: list[Unpriced]


def heartbeats_per_month(run: StackRun) -> float:
    """Heartbeats the periodic tasks send a month: one per tick of each CronJob with one. The
    config keeps ticks at most days apart, so a week of ticks scales to the month."""
    week = START + timedelta(days=7)
    beats = 0
    for cron in run.of_type("kubernetes:batch/v1:CronJob"):
        template = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        names = {e["name"] for c in template["containers"] for e in c.get("env", [])}
        if "EDW_HEARTBEAT_TASK" not in names:
            continue
        ticks = croniter(cron.inputs["spec"]["schedule"], START)
        while ticks.get_next(datetime) <= week:
            beats += 1
    return beats * (730 / (7 * 24))


def aws_items(book: PriceBook, run: StackRun, volume: Volume) -> Priced:
    items = [
        book.hourly("EKS control plane", "eks-cluster", len(run.of_type("eks:index:Cluster"))),
        book.hourly(
            "NAT gateways", "nat-gateway", len(run.of_type("aws:ec2/natGateway:NatGateway"))
        ),
        book.hourly("public IPv4 (NAT)", "public-ipv4", len(run.of_type("aws:ec2/eip:Eip"))),
    ]
    for group in run.of_type("aws:eks/nodeGroup:NodeGroup"):
        size = group.inputs["instanceTypes"][0]
        count = group.inputs["scalingConfig"]["desiredSize"]
        items.append(book.hourly(f"system nodes ({size} on-demand)", f"ec2:{size}", count))
        items.append(book.item("system node disks", "fixed", "ebs-gp3", count * NODE_DISK_GB))
    keys = len(run.of_type("aws:kms/key:Key")) + len(run.of_type("aws:kms/replicaKey:ReplicaKey"))
    alarms = len(run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    dashboards = len(run.of_type("aws:cloudwatch/dashboard:Dashboard"))
    repos = len(run.of_type("aws:ecr/repository:Repository"))
    items += [
        book.item("KMS keys", "fixed", "kms-key", keys),
        book.item("CloudWatch alarms", "fixed", "cloudwatch-alarm", alarms),
        book.item("CloudWatch dashboard", "fixed", "cloudwatch-dashboard", dashboards),
        book.item("ECR image storage", "fixed", "ecr-storage", repos * IMAGE_GB),
        keda_polls(book, run, "sqs-requests", 1e6),
    ]
    subscriptions = run.of_type("aws:sns/topicSubscription:TopicSubscription")
    to_queues = [s for s in subscriptions if s.inputs["protocol"] == "sqs"]
    to_partners = [s for s in subscriptions if s.inputs["protocol"] == "https"]
    flows = max(1, len(to_queues))  # each workflow's queue receives the event (an upper bound)
    m = volume.millions
    # Each workflow: one send (by SNS) per chunk, a receive and a delete per batch of 10.
    requests = m * flows * (volume.chunks + 2 / SQS_BATCH)
    items.append(book.item("SQS requests", "variable", "sqs-requests", requests))
    if to_queues:
        # PublishBatch: ten events share a request while they fit in 64 KB.
        per_call = max(1, math.ceil(SQS_BATCH * volume.message_bytes / CHUNK))
        items.append(
            book.item("router publishes", "variable", "sns-publishes", m * per_call / SQS_BATCH)
        )
    if to_partners:
        partners = m * len(to_partners) * volume.chunks
        items.append(book.item("partner webhook deliveries", "variable", "sns-https", partners))
    wru = math.ceil(volume.row_bytes / 1024)
    replicas = sum(
        len(t.inputs.get("replicas") or []) for t in run.of_type("aws:dynamodb/table:Table")
    )
    items.append(
        book.item(
            "DynamoDB writes", "variable", "dynamodb-writes", m * flows * wru * (1 + replicas)
        )
    )
    # Every replica stores the rows and keeps their continuous backups (PITR on each).
    stored_gb = volume.messages_per_month * flows * volume.row_bytes / 1e9 * (1 + replicas)
    items.append(book.item("DynamoDB storage added", "variable", "dynamodb-storage", stored_gb))
    items.append(book.item("DynamoDB backups (PITR) added", "variable", "dynamodb-pitr", stored_gb))
    items.append(book.item("NAT data processed", "variable", "nat-data", flows * volume.wire_gb))
    items += prometheus_items(book, run, volume)
    heartbeats = [
        a
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs["namespace"] == HEARTBEAT_NAMESPACE
    ]
    if heartbeats:
        items.append(
            book.item("heartbeat metrics", "fixed", "cloudwatch-custom-metric", len(heartbeats))
        )
        beats = heartbeats_per_month(run)
        items.append(book.item("heartbeats sent", "fixed", "cloudwatch-api-requests", beats / 1000))
    sizes = [f"{family}.large" for family in families(run, "karpenter.k8s.aws/instance-family")]
    compute, alternatives = compute_items(book, run, volume, sizes)
    filtered = [s for s in subscriptions if s.inputs.get("filterPolicyScope") == "MessageBody"]
    unpriced = (
        [
            Unpriced(
                "SNS payload-based filtering",
                volume.messages_per_month * volume.message_bytes * len(filtered) / 1e9,
                "GB of payload scanned",
                "the SNS pricing page bills payload-based (MessageBody) filtering by the payload "
                "data scanned; its rate could not be read from the machine that wrote this model",
            )
        ]
        if filtered
        else []
    )
    return Priced(items + compute, alternatives, unpriced)


def consumer_series() -> int:
    """Series one consumer pod exposes, counted on the real metrics (histograms observed)."""
    metrics = Metrics("aws")
    metrics.end_to_end_seconds.observe(1.0)
    metrics.batch_seconds.observe(1.0)
    text = metrics.exposition().decode()
    return sum(1 for line in text.splitlines() if line.startswith("edw_"))


def prometheus_items(book: PriceBook, run: StackRun, volume: Volume) -> list[LineItem]:
    """observability full: the managed collector, KEDA's series all month, the consumers'
    series while their pods run."""
    scrapers = len(run.of_type("aws:amp/scraper:Scraper"))
    if not scrapers:
        return []
    idle_samples = KEDA_SERIES * SCRAPES_PER_HOUR * book.hours
    consumer_hours = sum(pod_hours("aws", volume, w, book.hours) for w in workloads(run))
    pod_samples = consumer_hours * consumer_series() * SCRAPES_PER_HOUR
    return [
        book.hourly("managed Prometheus collector", "amp-collector", scrapers),
        book.item("Prometheus samples (KEDA)", "fixed", "amp-samples", idle_samples / 1e7),
        book.item("Prometheus samples (consumers)", "variable", "amp-samples", pod_samples / 1e7),
        *container_log_items(book, run),
    ]


def container_log_items(book: PriceBook, run: StackRun) -> list[LineItem]:
    """What the amazon-cloudwatch-observability add-on bills: Fluent Bit's container logs. Its
    other pipelines bill per observation (Container Insights) and per request (Application
    Signals), which this model does not price: a graph that turns them on is refused."""
    addons = [
        a
        for a in run.of_type("aws:eks/addon:Addon")
        if a.inputs["addonName"] == "amazon-cloudwatch-observability"
    ]
    if not addons:
        return []
    config = json.loads(addons[0].inputs.get("configurationValues") or "{}")
    unpriced = [p for p in UNPRICED_PIPELINES if config.get(p, {}).get("enabled", True)]
    if unpriced:
        raise PriceError(f"the CloudWatch observability add-on runs {unpriced}: not priced here")
    nodes = sum(
        g.inputs["scalingConfig"]["desiredSize"] for g in run.of_type("aws:eks/nodeGroup:NodeGroup")
    )
    logs_gb = nodes * CONTAINER_LOG_GB_PER_NODE_DAY * book.hours / 24
    return [book.item("container logs (system nodes)", "fixed", "cloudwatch-logs-ingest", logs_gb)]


def azure_monitoring_items(book: PriceBook, run: StackRun, volume: Volume) -> list[LineItem]:
    """observability full on Azure: managed Prometheus samples (AKS's default targets per
    system node, the consumers while they run; the KEDA add-on serves none) and Container
    Insights logs."""
    if not run.of_type("azure-native:monitor:AzureMonitorWorkspace"):
        return []
    pools = run.one("azure-native:containerservice:ManagedCluster").inputs["agentPoolProfiles"]
    nodes = sum(p["count"] for p in pools)
    idle_series = nodes * AKS_DEFAULT_SERIES_PER_NODE
    consumer_hours = sum(pod_hours("azure", volume, w, book.hours) for w in workloads(run))
    logs_gb = nodes * CONTAINER_LOG_GB_PER_NODE_DAY * book.hours / 24
    return [
        book.item(
            "Prometheus samples (cluster)",
            "fixed",
            "prometheus-samples",
            idle_series * SCRAPES_PER_HOUR * book.hours / 1e7,
        ),
        book.item(
            "Prometheus samples (consumers)",
            "variable",
            "prometheus-samples",
            consumer_hours * consumer_series() * SCRAPES_PER_HOUR / 1e7,
        ),
        book.item("container logs (system pool)", "fixed", "log-analytics-ingest", logs_gb),
    ]


def azure_heartbeat_items(book: PriceBook, run: StackRun) -> list[LineItem]:
    """The tasks' heartbeat alerts (log search alerts, priced by how often they run) and the
    heartbeat rows they read in Log Analytics."""
    items = []
    for frequency, key in (("PT5M", "monitor-log-alert-5m"), ("PT15M", "monitor-log-alert-15m")):
        rules = [
            r
            for r in run.of_type("azure-native:monitor:ScheduledQueryRule")
            if r.inputs["evaluationFrequency"] == frequency
        ]
        if rules:
            name = f"heartbeat alerts (every {frequency[2:-1]} min)"
            items.append(book.item(name, "fixed", key, len(rules)))
    if run.of_type("azure-native:operationalinsights:Table"):
        rows_gb = heartbeats_per_month(run) * HEARTBEAT_ROW_BYTES / 1e9
        items.append(book.item("heartbeat rows", "fixed", "log-analytics-ingest", rows_gb))
    return items


def azure_items(book: PriceBook, run: StackRun, volume: Volume) -> Priced:
    cluster = run.one("azure-native:containerservice:ManagedCluster").inputs
    items = []
    if (cluster.get("sku") or {}).get("tier") == "Standard":
        items.append(book.hourly("AKS control plane (Standard tier)", "aks-standard", 1))
    for pool in cluster["agentPoolProfiles"]:
        size, count = pool["vmSize"], pool["count"]
        items.append(book.hourly(f"system pool ({size})", f"vm:{size}", count))
    if (cluster.get("networkProfile") or {}).get("outboundType") == "loadBalancer":
        items.append(book.hourly("outbound load balancer", "load-balancer", 1))
        items.append(book.hourly("outbound public IP", "public-ip", 1))
    registries = run.of_type("azure-native:containerregistry:Registry")
    items.append(
        book.item(
            "container registry (Standard)",
            "fixed",
            "acr-standard",
            len(registries) * book.hours / 24,
        )
    )
    items.append(keda_polls(book, run, "queue-read-ops", 1e4))
    series = sum(
        math.prod(
            len(d["values"]) for d in rule.inputs["criteria"]["allOf"][0].get("dimensions") or []
        )
        for rule in run.of_type("azure-native:monitor:MetricAlert")
    )
    items.append(book.item("Azure Monitor metric alerts", "fixed", "monitor-metric-alert", series))
    items += azure_heartbeat_items(book, run)
    serverless = []
    for account in run.of_type("azure-native:cosmosdb:DatabaseAccount"):
        capabilities = {c["name"] for c in account.inputs.get("capabilities") or []}
        if "EnableServerless" in capabilities:
            serverless.append(account)
        else:
            regions = len(account.inputs.get("locations") or [None])
            throughput = sum(
                (t.inputs.get("options") or {}).get("throughput", 400)
                for t in run.of_type("azure-native:cosmosdb:TableResourceTable")
            )
            items.append(
                book.hourly(
                    "Cosmos DB throughput", "cosmos-provisioned", throughput / 100 * regions
                )
            )
    subscriptions = run.of_type("azure-native:eventgrid:EventSubscription")
    to_queues = [s for s in subscriptions if "deliveryWithResourceIdentity" in s.inputs]
    to_partners = [s for s in subscriptions if "deliveryWithResourceIdentity" not in s.inputs]
    flows = max(1, len(to_queues))
    m = volume.millions
    if subscriptions:
        # A publish per 64 KB, and one delivery attempt per subscription the event reaches.
        ops = m * volume.chunks * (1 + len(to_queues) + len(to_partners))
        items.append(book.item("Event Grid operations", "variable", "eventgrid-operations", ops))
    # Per workflow: the put (Event Grid), one delete per message; a receive per 32.
    items.append(book.item("queue writes", "variable", "queue-write-ops", m * flows * 2 * 100))
    items.append(
        book.item("queue reads", "variable", "queue-read-ops", m * flows / AZURE_RECEIVE * 100)
    )
    if serverless:
        ru = COSMOS_RU_PER_KB_WRITE * math.ceil(volume.row_bytes / 1024)
        items.append(
            book.item("Cosmos DB request units", "variable", "cosmos-serverless-ru", m * flows * ru)
        )
    # Every region of the account stores the rows.
    regions = max(
        [1]
        + [
            len(a.inputs.get("locations") or [])
            for a in run.of_type("azure-native:cosmosdb:DatabaseAccount")
        ]
    )
    stored_gb = volume.messages_per_month * flows * volume.row_bytes / 1e9 * regions
    items.append(book.item("Cosmos DB storage added", "variable", "cosmos-storage", stored_gb))
    items.append(
        book.item("load balancer data", "variable", "load-balancer-data", flows * volume.wire_gb)
    )
    items += azure_monitoring_items(book, run, volume)
    sizes = [
        AZURE_FAMILY_SIZES[family]
        for family in families(run, "karpenter.azure.com/sku-family")
        if family in AZURE_FAMILY_SIZES
    ]
    compute, alternatives = compute_items(book, run, volume, sizes)
    filtered = [s for s in subscriptions if (s.inputs.get("filter") or {}).get("advancedFilters")]
    unpriced = (
        [
            Unpriced(
                "Event Grid advanced-filter evaluations",
                m * len(filtered),
                "million evaluations",
                "each event is evaluated against every filtered subscription (the topic's "
                "AdvancedFilterEvaluationCount metric counts them); whether the Event Grid pricing "
                "page bills an evaluation as an operation could not be read from the machine that "
                "wrote this model",
            )
        ]
        if filtered
        else []
    )
    unpriced.append(
        Unpriced(
            "Cosmos DB continuous backup (7 days)",
            stored_gb,
            "GB-month, every region",
            "continuous backup keeps each region's data; its price per GB could not be read "
            "from the machine that wrote this model (check the Cosmos DB pricing page)",
        )
    )
    return Priced(items + compute, alternatives, unpriced)


Model = Callable[[PriceBook, StackRun, Volume], "Priced"]
MODELS: dict[str, Model] = {"aws": aws_items, "azure": azure_items}


def cloud_of(run: StackRun) -> str:
    return "azure" if run.of_type("azure-native:containerservice:ManagedCluster") else "aws"


def estimate(
    run: StackRun, region: str, volume: Volume, table: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    cloud = cloud_of(run)
    book = PriceBook(cloud, region, table)
    priced = MODELS[cloud](book, run, volume)
    items, alternatives = priced.items, priced.alternatives
    idle = sum(i.monthly for i in items if i.kind == "fixed")
    variable = sum(i.monthly for i in items if i.kind == "variable")
    per_million = variable / volume.millions if volume.messages_per_month else 0.0

    def rows(found: list[LineItem]) -> list[dict[str, Any]]:
        return [
            {
                "name": i.name,
                "kind": i.kind,
                "quantity": round(i.quantity, 6),
                "unit": i.unit,
                "unitPrice": i.unit_price,
                "verified": i.verified,
                "monthly": round(i.monthly, 4),
            }
            for i in found
        ]

    return {
        "stack": run.stack,
        "cloud": cloud,
        "region": region,
        "currency": book.data["currency"],
        "messagesPerMonth": volume.messages_per_month,
        "messageBytes": volume.message_bytes,
        "arrival": volume.arrival,
        **({"burstsPerDay": volume.bursts_per_day} if volume.arrival == "bursty" else {}),
        "lineItems": rows(items),
        # What the consumers would cost on on-demand nodes only (not in the totals).
        "alternatives": rows(alternatives),
        # Billed, but not priced here: how much, and why.
        "unpriced": [
            {"name": u.name, "quantity": round(u.quantity, 6), "unit": u.unit, "reason": u.reason}
            for u in priced.unpriced
        ],
        "totals": {
            "idleMonthly": round(idle, 2),
            "monthlyAtVolume": round(idle + variable, 2),
            "perMillionEvents": round(per_million, 4),
        },
        # A total is only as verified as the least verified price it adds up.
        "totalsVerified": {
            "idleMonthly": all(i.verified for i in items if i.kind == "fixed"),
            "monthlyAtVolume": all(i.verified for i in items),
            "perMillionEvents": all(i.verified for i in items if i.kind == "variable"),
        },
    }


def marked(figure: str, checked: bool) -> str:
    """A figure with the unverified mark when it rests on a price not read from its page."""
    return figure + ("" if checked else UNVERIFIED_MARK)


def show(report: Mapping[str, Any], console: Console) -> None:
    table = Table(title=f"{report['stack']} ({report['region']}), {report['currency']}")
    for column in ("line item", "kind", "quantity", "unit", "unit price", "monthly"):
        table.add_column(
            column, justify="left" if column in ("line item", "unit", "kind") else "right"
        )
    for i in report["lineItems"]:
        table.add_row(
            i["name"],
            i["kind"],
            f"{i['quantity']:,.3f}",
            i["unit"],
            marked(f"{i['unitPrice']:g}", i["verified"]),
            marked(f"{i['monthly']:,.2f}", i["verified"]),
        )
    console.print(table)
    unverified = [i for i in report["lineItems"] if not i["verified"]]
    if unverified:
        console.print(
            f"{UNVERIFIED_MARK} {len(unverified)} of {len(report['lineItems'])} unit prices are "
            "not verified: not read from their source page on the date tools/prices gives. "
            f"A monthly figure or total marked {UNVERIFIED_MARK} is computed from at least one "
            "of them. Check them there before budgeting (docs/cost.md)."
        )
    t, checked = report["totals"], report["totalsVerified"]
    idle = marked(f"{t['idleMonthly']:,.2f}", checked["idleMonthly"])
    at_volume = marked(f"{t['monthlyAtVolume']:,.2f}", checked["monthlyAtVolume"])
    per_million = marked(f"{t['perMillionEvents']:,.4f}", checked["perMillionEvents"])
    console.print(
        f"idle: {idle}/month   at {report['messagesPerMonth']:,} events "
        f"of {report['messageBytes']} B: {at_volume}/month   "
        f"per million events: {per_million}"
    )
    variable = [i for i in report["alternatives"] if i["kind"] == "variable"]
    demand = marked(
        f"{sum(i['monthly'] for i in variable):,.2f}", all(i["verified"] for i in variable)
    )
    console.print(f"(consumer pods on on-demand nodes only: {demand}/month at that volume)")
    for u in report["unpriced"]:
        console.print(f"not priced: {u['name']}, {u['quantity']:,.3f} {u['unit']}: {u['reason']}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.cost", description=__doc__.split("\n")[0])
    p.add_argument(
        "--stack", required=True, choices=stack_names(), help="a Pulumi.<stack>.yaml (dev: Azure)"
    )
    p.add_argument("--messages-per-month", type=int, default=10_000_000)
    p.add_argument("--message-bytes", type=int, default=512, help="the producer's default")
    p.add_argument(
        "--arrival",
        choices=ARRIVALS,
        default="steady",
        help="steady: the month's events spread evenly; bursty: --bursts-per-day bursts",
    )
    p.add_argument("--bursts-per-day", type=int, default=4)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.messages_per_month < 0 or args.message_bytes < 1 or args.bursts_per_day < 1:
        parser().error(
            "--messages-per-month must be >= 0, --message-bytes and --bursts-per-day >= 1"
        )
    overrides = parse_overrides(args.override)
    run = run_stack(args.stack, overrides or None)
    # The region the program itself reports (aws:region / azure-native:location).
    region = str(run.outputs.get("region") or run.outputs.get("location") or "")
    try:
        volume = Volume(
            args.messages_per_month, args.message_bytes, args.arrival, args.bursts_per_day
        )
        report = estimate(run, region, volume)
    except PriceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
