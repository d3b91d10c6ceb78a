"""Azure Monitor alerts that reach a person: an action group with the e-mail receivers, and
metric alerts on the router (Event Grid) and the results table (Cosmos DB). Every alert resolves
on its own (auto-mitigate) and notifies on the way out too (the common alert schema carries the
"Resolved" state)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import monitor

SEVERITY_ERROR = 1
# What app.queue_metrics sends (its NAMESPACE, DEPTH, AGE and DIMENSION).
QUEUE_METRICS_NAMESPACE = "edw"
QUEUE_DEPTH, QUEUE_AGE, QUEUE_DIMENSION = "QueueDepth", "OldestMessageAgeSeconds", "Queue"
EVERY_MINUTE, OVER_FIVE_MINUTES = "PT1M", "PT5M"


@dataclass(frozen=True)
class MetricRule:
    """One static-threshold alert on one metric of one resource: above ``threshold``."""

    suffix: str
    description: str
    scope: pulumi.Input[str]
    namespace: str
    metric: str
    aggregation: str
    threshold: float = 0
    dimensions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # A custom metric exists only once first sent: Azure Monitor must not check it at creation.
    custom: bool = False


@dataclass(frozen=True)
class MonitorAlertsArgs:
    resource_group_name: pulumi.Input[str]
    stack_name: str  # <prefix>-<stack>: names the rules and the action group
    emails: Sequence[str]
    router_topic_id: pulumi.Input[str]
    cosmos_account_id: pulumi.Input[str]
    # Per-queue custom metrics (app.queue_metrics) on the queue account.
    queue_account_id: pulumi.Input[str]
    work_queues: Sequence[str]
    poison_queues: Sequence[str]
    max_message_age_seconds: int
    tags: Mapping[str, str]
    # The account replicates to other locations: replication lag is watched.
    replicated: bool = False


# Replication slower than this pages: the RPO of docs/resilience.md rests on it.
REPLICATION_LAG_ALARM_SECONDS = 60


def rules(args: MonitorAlertsArgs) -> list[MetricRule]:
    """Metric names and dimensions: Azure Monitor "Supported metrics" for
    Microsoft.EventGrid/topics (also MicrosoftDocs/azure-docs
    articles/event-grid/monitor-push-reference.md) and Microsoft.DocumentDB/databaseAccounts
    (MicrosoftDocs/azure-reference-other, supported-metrics
    microsoft-documentdb-databaseaccounts-metrics-include.md)."""
    grid, cosmos = "Microsoft.EventGrid/topics", "Microsoft.DocumentDB/databaseAccounts"
    topic, account = args.router_topic_id, args.cosmos_account_id
    replication = MetricRule(
        "table-replication-lag",
        f"Replication of the results table lags over {REPLICATION_LAG_ALARM_SECONDS}s "
        "(P99 between a source and a target region): writes made here are not yet there",
        account,
        cosmos,
        "ReplicationLatency",  # milliseconds, by SourceRegion and TargetRegion
        "Maximum",
        threshold=REPLICATION_LAG_ALARM_SECONDS * 1000,
    )
    return [
        MetricRule(
            "poison-messages",
            "Messages were set aside on a poison queue: read their reason, then replay them",
            args.queue_account_id,
            QUEUE_METRICS_NAMESPACE,
            QUEUE_DEPTH,
            "Maximum",
            dimensions={QUEUE_DIMENSION: list(args.poison_queues)},
            custom=True,
        ),
        MetricRule(
            "backlog-age",
            f"A work queue's oldest message waits over {args.max_message_age_seconds}s: the "
            "workflow is not draining",
            args.queue_account_id,
            QUEUE_METRICS_NAMESPACE,
            QUEUE_AGE,
            "Maximum",
            threshold=args.max_message_age_seconds,
            dimensions={QUEUE_DIMENSION: list(args.work_queues)},
            custom=True,
        ),
        MetricRule(
            "router-dead-lettered",
            "The router dead-lettered events it could not deliver (blob container "
            "router-dead-letters)",
            topic,
            grid,
            "DeadLetteredCount",
            "Total",
        ),
        MetricRule(
            "router-dropped",
            "The router dropped events it could neither deliver nor dead-letter",
            topic,
            grid,
            "DroppedEventCount",
            "Total",
        ),
        MetricRule(
            "router-delivery-failed",
            "The router failed deliveries to a workflow queue or a partner (retried for up to "
            "24 h before dead-lettering): a broken subscription or a partner outage",
            topic,
            grid,
            "DeliveryAttemptFailCount",
            "Total",
        ),
        MetricRule(
            "router-unmatched",
            "Events matched no subscription of the router and were dropped: no workflow or "
            "partner wanted them",
            topic,
            grid,
            "UnmatchedEventCount",
            "Total",
        ),
        MetricRule(
            "router-publish-failed",
            "Publishers' events were refused by the router (not CloudEvents, not authorized)",
            topic,
            grid,
            "PublishFailCount",
            "Total",
        ),
        MetricRule(
            "table-throttled",
            "The results table answered requests with 429 (throttled)",
            account,
            cosmos,
            "TotalRequests",
            "Count",
            dimensions={"StatusCode": ["429"]},
        ),
        MetricRule(
            "table-server-errors",
            "The results table answered requests with server errors",
            account,
            cosmos,
            "TotalRequests",
            "Count",
            dimensions={"StatusCode": ["500", "503"]},
        ),
        *([replication] if args.replicated else []),
    ]


class MonitorAlerts(pulumi.ComponentResource):
    """Action group (e-mail receivers named by the address) + the stack's metric alerts."""

    action_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitorAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:MonitorAlerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = monitor.ActionGroup(
            f"{name}-action-group",
            action_group_name=f"{args.stack_name}-alerts",
            resource_group_name=args.resource_group_name,
            location="Global",
            enabled=True,
            group_short_name=args.stack_name[:12],  # what SMS and e-mail subjects show
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    # Named by the address, not its position: reordering changes nothing.
                    name=f"email-{hashlib.sha256(e.lower().encode()).hexdigest()[:8]}",
                    email_address=e,
                    use_common_alert_schema=True,
                )
                for e in args.emails
            ],
            tags=dict(args.tags),
            opts=child,
        )
        for rule in rules(args):
            monitor.MetricAlert(
                f"{name}-{rule.suffix}",
                rule_name=f"{args.stack_name}-{rule.suffix}",
                resource_group_name=args.resource_group_name,
                location="global",
                description=rule.description,
                severity=SEVERITY_ERROR,
                enabled=True,
                scopes=[rule.scope],
                evaluation_frequency=EVERY_MINUTE,
                window_size=OVER_FIVE_MINUTES,
                # Resolves by itself once the window is clean, and says so to the receivers.
                auto_mitigate=True,
                criteria=monitor.MetricAlertSingleResourceMultipleMetricCriteriaArgs(
                    odata_type="Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                    all_of=[
                        monitor.MetricCriteriaArgs(
                            criterion_type="StaticThresholdCriterion",
                            name=rule.metric,
                            metric_name=rule.metric,
                            metric_namespace=rule.namespace,
                            operator="GreaterThan",
                            threshold=rule.threshold,
                            time_aggregation=rule.aggregation,
                            skip_metric_validation=rule.custom or None,
                            dimensions=[
                                monitor.MetricDimensionArgs(
                                    name=dimension, operator="Include", values=list(values)
                                )
                                for dimension, values in rule.dimensions.items()
                            ],
                        )
                    ],
                ),
                actions=[monitor.MetricAlertActionArgs(action_group_id=group.id)],
                tags=dict(args.tags),
                opts=child,
            )
        self.action_group_id = group.id
        self.register_outputs({"action_group_id": self.action_group_id})
