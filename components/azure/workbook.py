"""One Azure Monitor workbook per stack: every workflow's queues (the per-queue custom metrics),
the router and the results table, from the metrics the alerts watch."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import applicationinsights

from components.azure.alerts import QUEUE_AGE, QUEUE_DEPTH, QUEUE_METRICS_NAMESPACE

# Azure Monitor workbook JSON ("Notebook/1.0"): text items (type 1) and metric charts (type 10).
SCHEMA = (
    "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json"
)
LINE_CHART, LAST_DAY_MS = 2, 24 * 3600 * 1000
# The workbook's aggregation codes, as Microsoft's own workbook templates use them
# (microsoft/Application-Insights-Workbooks: Sum/Total 1 on Service Bus IncomingMessages, Count 7
# on Cosmos DB TotalRequests in "App Hub/Cosmos Databases"). A metric charts only with an
# aggregation it supports: Cosmos DB TotalRequests supports Count only (supported metrics of
# Microsoft.DocumentDB/databaseAccounts).
AGGREGATION = {"Total": 1, "Maximum": 3, "Count": 7}


@dataclass(frozen=True)
class WorkbookArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    stack_name: str
    id_namespace: str  # <subscription>/<stack>: seeds the workbook's GUID name
    tenant_id: str
    queue_account_id: pulumi.Input[str]
    router_topic_id: pulumi.Input[str]
    cosmos_account_id: pulumi.Input[str]


def _chart(
    title: str, resource_type: str, resource_id: str, metrics: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": 10,
        "name": title,
        "content": {
            "version": "MetricsItem/2.0",
            "chartType": LINE_CHART,
            "title": title,
            "resourceType": resource_type,
            "metricScope": 0,
            "resourceIds": [resource_id],
            "timeContext": {"durationMs": LAST_DAY_MS},
            "metrics": metrics,
        },
    }


def _metric(
    namespace: str, name: str, aggregation: str, split: str | None = None
) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "namespace": namespace,
        "metric": f"{namespace}--{name}",
        "aggregation": AGGREGATION[aggregation],
    }
    if split:
        metric["splitBy"] = split
    return metric


def workbook_body(stack: str, queues: str, topic: str, cosmos: str) -> str:
    storage = "microsoft.storage/storageaccounts"
    grid = "microsoft.eventgrid/topics"
    documents = "microsoft.documentdb/databaseaccounts"
    items = [
        {"type": 1, "name": "title", "content": {"json": f"## EDW stack {stack}"}},
        _chart(
            "queues: depth (work and poison)",
            storage,
            queues,
            [_metric(QUEUE_METRICS_NAMESPACE, QUEUE_DEPTH, "Maximum", "Queue")],
        ),
        _chart(
            "queues: oldest message (s)",
            storage,
            queues,
            [_metric(QUEUE_METRICS_NAMESPACE, QUEUE_AGE, "Maximum", "Queue")],
        ),
        _chart(
            "router: published, delivered, dead-lettered, dropped",
            grid,
            topic,
            [
                _metric(grid, m, "Total")
                for m in (
                    "PublishSuccessCount",
                    "DeliverySuccessCount",
                    "DeadLetteredCount",
                    "DroppedEventCount",
                )
            ],
        ),
        _chart(
            "results table: requests by status",
            documents,
            cosmos,
            [_metric(documents, "TotalRequests", "Count", "StatusCode")],
        ),
    ]
    return json.dumps({"version": "Notebook/1.0", "items": items, "$schema": SCHEMA})


class StackWorkbook(pulumi.ComponentResource):
    """The workbook and its portal URL."""

    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: WorkbookArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:StackWorkbook", name, None, opts)
        body = pulumi.Output.all(
            args.queue_account_id, args.router_topic_id, args.cosmos_account_id
        ).apply(lambda ids: workbook_body(args.stack_name, *ids))
        workbook = applicationinsights.Workbook(
            f"{name}-workbook",
            # Workbooks are named by a GUID: a stable one per stack, so a re-run updates it.
            resource_name_=str(uuid.uuid5(uuid.NAMESPACE_URL, f"edw/{args.id_namespace}/workbook")),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="shared",
            category="workbook",
            display_name=f"EDW {args.stack_name}",
            serialized_data=body,
            source_id="Azure Monitor",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = workbook.id.apply(
            lambda i: f"https://portal.azure.com/#@{args.tenant_id}/resource{i}/workbook"
        )
        self.register_outputs({"url": self.url})
