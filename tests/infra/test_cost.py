"""The cost model: quantities follow the graph, the arithmetic matches a hand computation per
cloud and arrival pattern, what cannot be priced is listed with its reason, and every price
carries its unit, source and the date it was read, one file per cloud and region."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from rich.console import Console

from tools import cost
from tools.cost import PriceBook, PriceError, Volume, estimate

PRICED_DEFAULTS = {"aws": "us-east-1", "azure": "westeurope"}
VOLUME = Volume(messages_per_month=10_000_000, message_bytes=512)


def report(stack: str, volume: Volume = VOLUME, **overrides: Any) -> dict[str, Any]:
    raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in overrides.items()}
    run = cost.run_stack(stack, raw or None)
    region = PRICED_DEFAULTS["aws" if stack == "aws" else "azure"]
    return estimate(run, region, volume)


def line(found: dict[str, Any], prefix: str) -> dict[str, Any]:
    (item,) = [i for i in found["lineItems"] if i["name"].startswith(prefix)]
    return item


@pytest.mark.parametrize("cloud", ["aws", "azure"])
def test_each_region_has_its_file_and_every_price_a_unit_a_source_and_the_date_read(
    cloud: str,
) -> None:
    files = sorted((cost.PRICES / cloud).glob("*.json"))
    assert PRICED_DEFAULTS[cloud] in [f.stem for f in files]
    keys = set()
    for path in files:
        table = json.loads(path.read_text())
        assert (table["cloud"], table["region"], table["currency"]) == (cloud, path.stem, "USD")
        for key, price in table["prices"].items():
            where = f"{path.name} {key}"
            assert isinstance(price["price"], int | float), where
            assert price["price"] >= 0, where
            assert price["unit"], where
            assert price["source"].startswith("https://"), where
            assert re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", price["read"]), where
            # Whether the figure was read from its page that day; if so, the day is named.
            assert isinstance(price["verified"], bool), where
            if price["verified"]:
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price["read"]), where
            if key.split(":", 1)[0] in ("ec2", "spot", "vm"):
                assert price["vcpu"] > 0, where
                assert price["memoryGiB"] > 0, where
        keys.add(frozenset(table["prices"]))
    assert len(keys) == 1, "every region prices the same things"


def test_the_azure_queue_write_is_the_published_class_1_rate() -> None:
    """It was $0.065 per 10,000 (16x too high); GPv2 LRS class 1 is $0.004."""
    for path in (cost.PRICES / "azure").glob("*.json"):
        assert json.loads(path.read_text())["prices"]["queue-write-ops"]["price"] == 0.004


def test_an_unpriced_region_is_an_error_naming_the_priced_ones() -> None:
    with pytest.raises(
        PriceError, match=r"no prices for aws region 'ap-south-1'; priced: eu-west-1"
    ):
        PriceBook("aws", "ap-south-1")


def test_aws_arithmetic_matches_a_hand_computation() -> None:
    found = report("aws")
    # Idle: EKS 730 h x 0.10, one NAT gateway and its IPv4, 2 m6i.large with 20 GB gp3 each,
    # 3 KMS keys, 6 alarms, a dashboard, 0.25 GB of image, KEDA's reads every 5 s (525,600
    # a month).
    idle = 73 + 32.85 + 3.65 + 2 * 730 * 0.096 + 40 * 0.08 + 3 + 0.6 + 3 + 0.025 + 0.5256 * 0.4
    assert found["totals"]["idleMonthly"] == pytest.approx(idle, abs=0.01)
    # Per million events of 512 B, one workflow: SQS send + receive/10 + delete/10, a
    # PublishBatch per 10, 1 WRU per 640 B row, 0.64 GB stored and backed up, 2 KB per event
    # through NAT, and the pod-hours of the measured rate on the cheapest spot node (c6a.large,
    # $0.0319/h: a quarter vCPU of its two).
    rate = next(
        r
        for r in json.loads(cost.BENCH.read_text())
        if r["cloud"] == "aws" and r["latency_ms"] == 15
    )
    pod_hours = 1e6 / rate["consumer_msgs_per_s"] / 3600
    per_million = (
        1.2 * 0.40 + 0.1 * 0.50 + 1 * 0.625 + 0.64 * 0.25 + 0.64 * 0.20 + 2.048 * 0.045
    )  # fmt: skip
    # Steady arrival: some event every hour, so one pod and one node (c6a.large spot, $0.0319
    # an hour; the pod a quarter vCPU of its two) run all 730 hours of the month.
    assert 10 * pod_hours < 730
    floor = 730 * 0.0319
    assert found["totals"]["perMillionEvents"] == pytest.approx(per_million + floor / 10, abs=1e-3)
    assert found["totals"]["monthlyAtVolume"] == pytest.approx(
        idle + 10 * per_million + floor, abs=0.02
    )
    pods = line(found, "edw-consumer consumer pods")
    assert (pods["quantity"], pods["unitPrice"]) == (730, pytest.approx(0.125 * 0.0319))
    node = line(found, "consumer node beyond its pods")
    assert node["quantity"] == pytest.approx(730 - 730 * 0.125)


def test_azure_arithmetic_matches_a_hand_computation() -> None:
    found = report("dev")
    # Idle: AKS Standard tier, 2 D4ds_v5 system nodes, the outbound load balancer and its IP,
    # ACR Standard by the day, KEDA's queue-metadata reads (class 2, per 10,000), the alerts'
    # ten time series (the poison queue's depth, the work queue's age, five router metrics,
    # 429, 500 and 503), the queue-metrics job's heartbeat alert (every 5 minutes, $1.50) and
    # its heartbeat rows (one a minute, 200 bytes each, $2.30 per GB).
    rows_gb = 730 * 60 * 200 / 1e9
    idle = (
        73 + 2 * 730 * 0.264 + 18.25 + 3.65 + 730 / 24 * 0.667 + 52.56 * 0.004 + 10 * 0.10
        + 1.50 + rows_gb * 2.30
    )  # fmt: skip
    assert found["totals"]["idleMonthly"] == pytest.approx(idle, abs=0.01)
    rate = next(
        r
        for r in json.loads(cost.BENCH.read_text())
        if r["cloud"] == "azure" and r["latency_ms"] == 15
    )
    pod_hours = 1e6 / rate["consumer_msgs_per_s"] / 3600
    # Event Grid publish + delivery, 2 queue writes (put, delete: class 1, $0.004 per 10,000)
    # and 1/32 read per event, 5.5 RU per row, storage, load balancer data: ~$3.6.
    per_million = (
        2 * 0.60 + 200 * 0.004 + 100 / 32 * 0.004 + 5.5 * 0.25 + 0.64 * 0.25 + 2.048 * 0.005
    )  # fmt: skip
    assert per_million == pytest.approx(3.55, abs=0.01)
    # Bursty arrival, 4 bursts a day: each keeps a pod 60 s (KEDA's cooldown) and a node 60 s
    # more (consolidateAfter) and the minute it took to start; the work on F2s_v2 spot.
    volume = Volume(10_000_000, 512, "bursty", 4)
    bursty = report("dev", volume)
    bursts = 4 * 730 / 24
    pods = 10 * pod_hours + bursts * 60 / 3600
    node = bursts * 180 / 3600
    assert line(bursty, "edw-consumer consumer pods")["quantity"] == pytest.approx(pods)
    assert line(bursty, "consumer node beyond its pods")["quantity"] == pytest.approx(node)
    compute = pods * 0.125 * 0.0195 + node * 0.0195
    assert bursty["totals"]["perMillionEvents"] == pytest.approx(
        per_million + compute / 10, abs=1e-3
    )
    # Steady: the same events spread evenly keep a pod and a node up all month.
    steady = found["totals"]["perMillionEvents"]
    assert steady == pytest.approx(per_million + 730 * 0.0195 / 10, abs=1e-3)


def test_one_nat_gateway_per_zone_triples_the_nat_line() -> None:
    one, three = report("aws"), report("aws", natGatewayPerAz=True)
    assert line(three, "NAT gateways")["quantity"] == 3 * line(one, "NAT gateways")["quantity"]
    assert line(three, "public IPv4")["quantity"] == 3 * line(one, "public IPv4")["quantity"]


@pytest.mark.parametrize(
    ("stack", "per_workflow"),
    [
        ("aws", ["SQS requests", "DynamoDB writes"]),
        ("dev", ["queue writes", "Cosmos DB request units"]),
    ],
)
def test_a_second_workflow_adds_its_deliveries(stack: str, per_workflow: list[str]) -> None:
    one = report(stack)
    two = report(stack, workflows=[{"name": "work"}, {"name": "orders"}])
    for name in per_workflow:
        assert line(two, name)["quantity"] == pytest.approx(2 * line(one, name)["quantity"])
    if stack == "dev":  # Event Grid also bills each delivery attempt
        assert line(two, "Event Grid operations")["quantity"] == pytest.approx(30.0)
    pods = [i for i in two["lineItems"] if "consumer pods" in i["name"]]
    assert len(pods) == 2
    # Each workflow keeps a pod all month under steady traffic; they share one node.
    assert [p["quantity"] for p in pods] == [730, 730]
    node = line(two, "consumer node beyond its pods")
    assert node["quantity"] == pytest.approx(
        730 - 2 * 730 * pods[0]["unitPrice"] / (node["unitPrice"])
    )


@pytest.mark.parametrize("stack", ["aws", "dev"])
def test_max_replicas_leaves_idle_alone_and_scale_to_zero_has_no_idle_compute(stack: str) -> None:
    base = report(stack)
    assert report(stack, maxReplicas=300)["totals"]["idleMonthly"] == base["totals"]["idleMonthly"]
    assert not [
        i for i in base["lineItems"] if "consumer pods" in i["name"] and i["kind"] == "fixed"
    ]
    warm = report(stack, minReplicas=2)
    (kept,) = [i for i in warm["lineItems"] if "minReplicas" in i["name"]]
    assert kept["kind"] == "fixed"
    assert kept["quantity"] == 2 * 730
    assert warm["totals"]["idleMonthly"] == pytest.approx(
        base["totals"]["idleMonthly"] + kept["monthly"], abs=0.01
    )


def test_replicas_multiply_storage_and_backups_not_only_writes() -> None:
    one = report("aws")
    two = report("aws", replicaRegions=["us-west-2"])
    for name in ("DynamoDB writes", "DynamoDB storage added", "DynamoDB backups (PITR) added"):
        assert line(two, name)["quantity"] == pytest.approx(2 * line(one, name)["quantity"])
    single = report("dev", cosmosServerless=False)
    replicated = report("dev", cosmosServerless=False, replicaLocations=["westus3"])
    assert line(replicated, "Cosmos DB storage added")["quantity"] == pytest.approx(
        2 * line(single, "Cosmos DB storage added")["quantity"]
    )
    (backup,) = [u for u in replicated["unpriced"] if u["name"].startswith("Cosmos DB")]
    assert backup["quantity"] == pytest.approx(
        line(replicated, "Cosmos DB storage added")["quantity"]
    )


FILTERED = [{"name": "work"}, {"name": "orders", "filter": {"type": ["com.example.order"]}}]


def test_router_filtering_is_listed_unpriced_with_its_quantity_and_reason() -> None:
    aws = report("aws", workflows=FILTERED)
    (sns,) = aws["unpriced"]
    # 10 M events of 512 B scanned by the one filtered subscription.
    assert (sns["name"], sns["quantity"], sns["unit"]) == (
        "SNS payload-based filtering",
        pytest.approx(5.12),
        "GB of payload scanned",
    )
    assert "could not be read" in sns["reason"]
    assert report("aws")["unpriced"] == []  # no filter, nothing scanned
    dev = report("dev", workflows=FILTERED)
    grid = next(u for u in dev["unpriced"] if u["name"].startswith("Event Grid"))
    assert (grid["quantity"], grid["unit"]) == (10, "million evaluations")


def test_schedules_add_their_heartbeat_metric_and_alarm() -> None:
    nightly = {
        "name": "nightly",
        "schedule": "0 2 * * *",
        "filter": {"type": ["edw.schedule.nightly"]},
    }
    aws = report("aws", workflows=[{"name": "work"}, nightly])
    assert line(aws, "heartbeat metrics")["quantity"] == 1
    assert line(aws, "heartbeats sent")["quantity"] == pytest.approx(730 / 24 / 1000, abs=1e-6)
    assert line(aws, "CloudWatch alarms")["quantity"] == 2 * 2 + 4 + 1  # the heartbeat's too
    dev = report("dev", workflows=[{"name": "work"}, nightly])
    assert line(dev, "heartbeat alerts (every 5 min)")["quantity"] == 2


def test_the_command_prints_the_documented_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--stack", "aws", "--json", "--messages-per-month", "1000000"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {"stack", "region", "currency", "lineItems", "totals", "arrival", "unpriced"} <= set(
        found
    )
    assert found["region"] == "us-east-1"
    assert set(found["totals"]) == {"idleMonthly", "monthlyAtVolume", "perMillionEvents"}
    for item in found["lineItems"]:
        assert set(item) == {
            "name", "kind", "quantity", "unit", "unitPrice", "verified", "monthly"
        }  # fmt: skip
        assert item["kind"] in ("fixed", "variable")
    assert found["alternatives"], "the on-demand price of the consumer pods is shown beside"


def test_an_unpriced_region_fails_the_command_with_the_priced_ones_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cost.main(["--stack", "aws", "--override", "aws:region=ap-south-1"]) == 2
    assert "priced: eu-west-1, us-east-1, us-west-2" in capsys.readouterr().err


@pytest.mark.parametrize(("stack", "label"), [("aws", "AWS `aws`"), ("dev", "Azure `dev`")])
def test_the_cost_page_quotes_what_the_command_prints(stack: str, label: str) -> None:
    page = (cost.REPO / "docs" / "cost.md").read_text()
    headline = re.search(
        rf"{re.escape(label)} \([a-z0-9-]+\): \*\*\$([\d.,]+) a month idle, \$([\d.]+) per million",
        page,
    )
    assert headline, f"docs/cost.md has no headline for {label}"
    totals = cost.estimate(
        cost.run_stack(stack), PRICED_DEFAULTS["aws" if stack == "aws" else "azure"],
        Volume(10_000_000, 512),
    )["totals"]  # fmt: skip
    assert float(headline[1].replace(",", "")) == totals["idleMonthly"]
    assert float(headline[2]) == round(totals["perMillionEvents"], 2)


def test_full_observability_adds_the_collector_and_its_samples() -> None:
    basic, full = report("aws"), report("aws", observability="full")
    collector = line(full, "managed Prometheus collector")
    assert (collector["kind"], collector["quantity"]) == ("fixed", 730)
    keda = line(full, "Prometheus samples (KEDA)")
    assert keda["quantity"] == pytest.approx(cost.KEDA_SERIES * 120 * 730 / 1e7)
    pods = sum(i["quantity"] for i in full["lineItems"] if "consumer pods" in i["name"])
    consumers = line(full, "Prometheus samples (consumers)")
    assert consumers["quantity"] == pytest.approx(
        pods * cost.consumer_series() * 120 / 1e7, rel=1e-3
    )
    logs = line(full, "container logs (system nodes)")
    assert logs["quantity"] == pytest.approx(2 * cost.CONTAINER_LOG_GB_PER_NODE_DAY * 730 / 24)
    assert full["totals"]["idleMonthly"] == pytest.approx(
        basic["totals"]["idleMonthly"] + collector["monthly"] + keda["monthly"] + logs["monthly"],
        abs=0.02,
    )
    assert not [i for i in basic["lineItems"] if "Prometheus" in i["name"]]


def test_the_cloudwatch_add_on_bills_only_what_the_model_prices() -> None:
    """Only container logs stay on; the add-on's defaults (Container Insights metrics per
    observation, Application Signals per request) would bill what no line item counts."""
    full = cost.run_stack("aws", {"observability": "full"})
    (addon,) = [r for r in full.of_type("aws:eks/addon:Addon") if r.name == "container-logs-addon"]
    values = json.loads(addon.inputs["configurationValues"])
    assert [values[p]["enabled"] for p in cost.UNPRICED_PIPELINES] == [False, False]
    assert estimate(full, "us-east-1", Volume(10_000_000, 512))["lineItems"]
    defaults = dataclasses.replace(addon, inputs={**addon.inputs, "configurationValues": "{}"})
    graph = dataclasses.replace(
        full, resources=[defaults if r is addon else r for r in full.resources]
    )
    with pytest.raises(PriceError, match=r"containerInsights.*applicationSignals"):
        estimate(graph, "us-east-1", Volume(10_000_000, 512))


def test_full_observability_on_azure_prices_its_samples_and_logs() -> None:
    basic, full = report("dev"), report("dev", observability="full")
    samples = line(full, "Prometheus samples (cluster)")
    series = 2 * cost.AKS_DEFAULT_SERIES_PER_NODE  # two system nodes; the KEDA add-on serves none
    assert samples["quantity"] == pytest.approx(series * 120 * 730 / 1e7)
    logs = line(full, "container logs (system pool)")
    assert (logs["kind"], logs["unit"]) == ("fixed", "GB")
    added = samples["monthly"] + logs["monthly"]
    assert full["totals"]["idleMonthly"] == pytest.approx(
        basic["totals"]["idleMonthly"] + added, abs=0.02
    )


def test_a_stack_name_that_is_no_stack_is_refused_with_the_stacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cost.parser().parse_args(["--stack", "azure"])
    assert stopped.value.code == 2
    assert "invalid choice: 'azure' (choose from 'aws', 'dev')" in capsys.readouterr().err


def test_unverified_prices_are_marked_in_the_json_and_with_a_star_and_footnote() -> None:
    """A price not read from its page (``"verified": false``, every price in tools/prices for
    now) is flagged on its line; one read there is not."""
    table = json.loads((cost.PRICES / "aws" / "us-east-1.json").read_text())
    table["prices"]["eks-cluster"] = {**table["prices"]["eks-cluster"], "verified": True}
    found = estimate(cost.run_stack("aws"), "us-east-1", VOLUME, table)
    assert line(found, "EKS control plane")["verified"] is True
    assert line(found, "NAT gateways")["verified"] is False
    assert line(found, "consumer node beyond its pods")["verified"] is False  # from the node's
    console = Console(record=True, width=300)
    cost.show(found, console)
    text = console.export_text()
    cells = [[c.strip() for c in r.split("│")[1:-1]] for r in text.splitlines()]
    unit_price = {c[0]: c[4] for c in cells if len(c) == 6}
    assert unit_price["EKS control plane"] == "0.1"
    assert unit_price["NAT gateways"] == "0.045*"
    unverified = sum(1 for i in found["lineItems"] if not i["verified"])
    assert f"* {unverified} of {len(found['lineItems'])} unit prices are not verified" in text
    for price in table["prices"].values():
        price["verified"] = True
    console = Console(record=True, width=300)
    cost.show(estimate(cost.run_stack("aws"), "us-east-1", VOLUME, table), console)
    assert "*" not in console.export_text()


def rendered(found: dict[str, Any]) -> tuple[dict[str, list[str]], str]:
    console = Console(record=True, width=300)
    cost.show(found, console)
    text = console.export_text()
    cells = [[c.strip() for c in r.split("│")[1:-1]] for r in text.splitlines()]
    return {c[0]: c for c in cells if len(c) == 6}, text


@pytest.mark.parametrize(
    ("key", "name", "idle", "per_million"),
    [
        ("dynamodb-writes", "DynamoDB writes", "259.70", "3.8639*"),
        ("eks-cluster", "EKS control plane", "259.70*", "3.8639"),
    ],
)
def test_a_total_built_from_an_unverified_price_is_starred_like_it(
    key: str, name: str, idle: str, per_million: str
) -> None:
    """One unverified price, everything else read from its page: its line's monthly figure and
    every total it adds into carry the star; the totals it does not touch do not."""
    table = json.loads((cost.PRICES / "aws" / "us-east-1.json").read_text())
    for price in table["prices"].values():
        price["verified"] = True
    table["prices"][key]["verified"] = False
    found = estimate(cost.run_stack("aws"), "us-east-1", VOLUME, table)
    rows, text = rendered(found)
    assert rows[name][5].endswith("*")
    assert not any(r[5].endswith("*") for n, r in rows.items() if n != name)
    assert f"idle: {idle}/month" in text
    assert "events of 512 B: 298.33*/month" in text
    assert f"per million events: {per_million}\n" in text
    assert "(consumer pods on on-demand nodes only: 55.85/month" in text
    assert "A monthly figure or total marked * is computed from at least one of them" in text
    assert found["totalsVerified"] == {
        "idleMonthly": idle[-1] != "*",
        "monthlyAtVolume": False,
        "perMillionEvents": per_million[-1] != "*",
    }


@pytest.mark.parametrize("stack", ["aws", "dev"])
def test_a_handler_sidecar_adds_its_requests_to_the_pod(stack: str) -> None:
    """The handler runs beside the consumer all the pod's life: the pod costs both."""
    from stacks.offline import run_stack

    handler = {"image": "ghcr.io/acme/orders:1.0.0", "port": 8080}
    workflows = [{"name": "work"}, {"name": "orders", "handler": handler}]
    found = {
        w.name: w for w in cost.workloads(run_stack(stack, {"workflows": json.dumps(workflows)}))
    }
    bare, handled = found["edw-consumer"], found["edw-orders-consumer"]
    # The handler's default requests: 100m CPU and 128Mi (docs/handlers.md).
    assert handled.cpu == pytest.approx(bare.cpu + 0.1)
    assert handled.memory_gib == pytest.approx(bare.memory_gib + 128 / 1024)
