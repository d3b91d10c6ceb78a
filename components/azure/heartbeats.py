"""Heartbeats of the periodic tasks on Azure, and the alerts that fire when they stop.

Azure Monitor metric alerts never fire on a metric that stops coming (a custom metric with no
data is NULL, not 0: "Azure Monitor Metrics aggregation and display explained", NULL and zero
values), so a stopped task cannot be caught on its own metrics. Each successful run writes a row
to the Log Analytics table ``EdwHeartbeat_CL`` through the Logs Ingestion API (a data collection
endpoint and rule, ``app.heartbeat``), and a log search alert per task counts the rows of its
window and fires at none ("Create a log search alert rule": a count of table rows against a
threshold; the query time range is at most two days).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor, operationalinsights

from components.azure.identity import IdentityFactory, RoleGrant
from components.azure.roles import MONITORING_METRICS_PUBLISHER
from components.ticks import log_alert_window

TABLE = "EdwHeartbeat_CL"
STREAM = "Custom-EdwHeartbeat"  # what app.heartbeat posts to (its STREAM)
DESTINATION = "heartbeats"
# The same two columns, as a table spells their types and as a stream declaration does.
TABLE_COLUMNS = (("TimeGenerated", "dateTime"), ("Task", "string"))
STREAM_COLUMNS = (("TimeGenerated", "datetime"), ("Task", "string"))
SEVERITY_ERROR = 1
EVALUATION = "PT5M"


@dataclass(frozen=True)
class HeartbeatSinkArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    workspace_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    tags: Mapping[str, str]


class HeartbeatSink(pulumi.ComponentResource):
    """The table, and the endpoint and rule the tasks post their beats through (an identity
    needs Monitoring Metrics Publisher on the rule to post)."""

    ingestion_endpoint: pulumi.Output[str]
    rule_id: pulumi.Output[str]  # grant the publisher role here
    rule_immutable_id: pulumi.Output[str]  # what the ingestion URL names

    def __init__(
        self, name: str, args: HeartbeatSinkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:HeartbeatSink", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        table = operationalinsights.Table(
            f"{name}-table",
            resource_group_name=args.resource_group_name,
            workspace_name=args.workspace_name,
            table_name=TABLE,
            plan="Analytics",
            schema=operationalinsights.SchemaArgs(
                name=TABLE,
                columns=[operationalinsights.ColumnArgs(name=n, type=t) for n, t in TABLE_COLUMNS],
            ),
            opts=child,
        )
        endpoint = monitor.DataCollectionEndpoint(
            f"{name}-endpoint",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=dict(args.tags),
            opts=child,
        )
        rule = monitor.DataCollectionRule(
            f"{name}-rule",
            resource_group_name=args.resource_group_name,
            location=args.location,
            data_collection_endpoint_id=endpoint.id,
            stream_declarations={
                STREAM: monitor.StreamDeclarationArgs(
                    columns=[
                        monitor.ColumnDefinitionArgs(name=n, type=t) for n, t in STREAM_COLUMNS
                    ]
                )
            },
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        name=DESTINATION, workspace_resource_id=args.workspace_id
                    )
                ]
            ),
            data_flows=[
                monitor.DataFlowArgs(
                    streams=[STREAM],
                    destinations=[DESTINATION],
                    transform_kql="source",
                    output_stream=f"Custom-{TABLE}",
                )
            ],
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[table]),
        )
        self.ingestion_endpoint = endpoint.logs_ingestion.apply(lambda i: i.endpoint if i else "")
        self.rule_id = rule.id
        self.rule_immutable_id = rule.immutable_id
        # What app.heartbeat reads to post a beat.
        self.env: dict[str, pulumi.Input[str]] = {
            "EDW_HEARTBEAT_ENDPOINT": self.ingestion_endpoint,
            "EDW_HEARTBEAT_RULE": self.rule_immutable_id,
        }
        self.register_outputs(
            {"ingestion_endpoint": self.ingestion_endpoint, "rule_id": self.rule_id}
        )

    def sender(self, identities: IdentityFactory) -> RoleGrant:
        """What a task's identity needs to post its heartbeats: publish through this rule only."""
        return identities.role("heartbeat-sender", MONITORING_METRICS_PUBLISHER, self.rule_id)


@dataclass(frozen=True)
class Heartbeat:
    task: str  # the Task column its rows carry
    window_seconds: int  # no row for this long: the task stopped
    first_beat: pulumi.Resource | None = None  # the alert is made after it


@dataclass(frozen=True)
class HeartbeatAlertsArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    stack_name: str
    workspace_id: pulumi.Input[str]
    action_group_id: pulumi.Input[str]
    heartbeats: Sequence[Heartbeat]
    tags: Mapping[str, str]


def heartbeat_query(task: str) -> str:
    return f'{TABLE} | where Task == "{task}"'


class HeartbeatAlerts(pulumi.ComponentResource):
    """One log search alert per task: fewer than one heartbeat row in its window fires, and
    resolves by itself once a beat arrives."""

    def __init__(
        self, name: str, args: HeartbeatAlertsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:HeartbeatAlerts", name, None, opts)
        for beat in args.heartbeats:
            monitor.ScheduledQueryRule(
                f"{name}-{beat.task}",
                rule_name=f"{args.stack_name}-{beat.task}-heartbeat",
                resource_group_name=args.resource_group_name,
                location=args.location,
                kind="LogAlert",
                description=f"No heartbeat from {beat.task} for {beat.window_seconds}s: a run "
                "failed or was missed (docs/operations.md)",
                severity=SEVERITY_ERROR,
                enabled=True,
                scopes=[args.workspace_id],
                evaluation_frequency=EVALUATION,
                window_size=log_alert_window(beat.window_seconds),
                criteria=monitor.ScheduledQueryRuleCriteriaArgs(
                    all_of=[
                        monitor.ConditionArgs(
                            query=heartbeat_query(beat.task),
                            time_aggregation="Count",
                            operator="LessThan",
                            threshold=1,
                            failing_periods=monitor.ConditionFailingPeriodsArgs(
                                number_of_evaluation_periods=1, min_failing_periods_to_alert=1
                            ),
                        )
                    ]
                ),
                auto_mitigate=True,
                actions=monitor.ActionsArgs(action_groups=[args.action_group_id]),
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[beat.first_beat] if beat.first_beat else []
                ),
            )
        self.register_outputs({})
