"""One CloudWatch dashboard per stack: every workflow's queues, the router and the results table,
from the same metrics the alarms watch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import cloudwatch

WIDTH, HEIGHT = 12, 6
PERIOD = 60


@dataclass(frozen=True)
class WorkflowQueues:
    workflow: str
    queue_name: pulumi.Input[str]
    dlq_name: pulumi.Input[str]


@dataclass(frozen=True)
class DashboardArgs:
    dashboard_name: str
    region: str
    workflows: Sequence[WorkflowQueues]
    topic_name: pulumi.Input[str]
    table_name: pulumi.Input[str]


def _widget(title: str, metrics: list[list[Any]], region: str, stat: str) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": WIDTH,
        "height": HEIGHT,
        "properties": {
            "title": title,
            "region": region,
            "stat": stat,
            "period": PERIOD,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def dashboard_body(
    region: str,
    workflows: Sequence[tuple[str, str, str]],
    topic: str,
    table: str,
) -> str:
    """The dashboard JSON (CloudWatch "Dashboard Body Structure and Syntax"), resolved names."""
    widgets = []
    for workflow, queue, dlq in workflows:

        def sqs(metric: str, name: str) -> list[Any]:
            return ["AWS/SQS", metric, "QueueName", name]

        widgets += [
            _widget(
                f"{workflow}: depth, in flight, dead letters",
                [
                    sqs("ApproximateNumberOfMessagesVisible", queue),
                    sqs("ApproximateNumberOfMessagesNotVisible", queue),
                    sqs("ApproximateNumberOfMessagesVisible", dlq),
                ],
                region,
                "Maximum",
            ),
            _widget(
                f"{workflow}: oldest message (s)",
                [sqs("ApproximateAgeOfOldestMessage", queue)],
                region,
                "Maximum",
            ),
            _widget(
                f"{workflow}: sent and deleted per minute",
                [sqs("NumberOfMessagesSent", queue), sqs("NumberOfMessagesDeleted", queue)],
                region,
                "Sum",
            ),
        ]
    widgets += [
        _widget(
            "router: published, delivered, failed",
            [
                ["AWS/SNS", metric, "TopicName", topic]
                for metric in (
                    "NumberOfMessagesPublished",
                    "NumberOfNotificationsDelivered",
                    "NumberOfNotificationsFailed",
                )
            ],
            region,
            "Sum",
        ),
        _widget(
            "results table: writes and throttles",
            [
                ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", table],
                ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", table],
            ],
            region,
            "Sum",
        ),
    ]
    return json.dumps({"widgets": widgets}, sort_keys=True)


class CloudWatchDashboard(pulumi.ComponentResource):
    """The stack's dashboard and its console URL."""

    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:CloudWatchDashboard", name, None, opts)
        names: Mapping[str, pulumi.Input[Any]] = {
            "workflows": [[w.workflow, w.queue_name, w.dlq_name] for w in args.workflows],
            "topic": args.topic_name,
            "table": args.table_name,
        }
        body = pulumi.Output.from_input(names).apply(
            lambda n: dashboard_body(args.region, n["workflows"], n["topic"], n["table"])
        )
        dashboard = cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = dashboard.dashboard_name.apply(
            lambda n: (
                f"https://console.aws.amazon.com/cloudwatch/home?region={args.region}"
                f"#dashboards/dashboard/{n}"
            )
        )
        self.register_outputs({"url": self.url})
