"""CloudWatch alarms that reach a person: an encrypted alert topic with e-mail subscribers, the
alarms of a workflow's queues and those of the results table. Every alarm notifies on the way in
(ALARM) and on the way out (OK)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import cloudwatch, sns

from components.aws.iam import allow
from components.aws.topic import encrypted_topic
from components.ticks import alarm_periods

CLOUDWATCH = {"Service": "cloudwatch.amazonaws.com"}
PROMETHEUS = {"Service": "aps.amazonaws.com"}


@dataclass
class AlertTopicArgs:
    emails: Sequence[str]
    account_id: str
    region: str
    tags: Mapping[str, str]
    # With observability full: the AMP workspace whose alert manager publishes here too.
    prometheus_workspace_arn: pulumi.Input[str] | None = None


class AlertTopic(pulumi.ComponentResource):
    """SNS topic under a customer managed key CloudWatch may use (alarms cannot publish to a topic
    under the AWS managed key: its policy cannot be changed), TLS-only, published to only by this
    account's alarms; one e-mail subscription per address (each must be confirmed)."""

    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlertTopicArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:AlertTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        from_this_account = {"StringEquals": {"aws:SourceAccount": args.account_id}}
        alarms = f"arn:aws:cloudwatch:{args.region}:{args.account_id}:alarm:*"
        prometheus = args.prometheus_workspace_arn
        aps_source = {
            "ArnEquals": {"aws:SourceArn": prometheus},
            "StringEquals": {"aws:SourceAccount": args.account_id},
        }
        topic = encrypted_topic(
            name,
            self,
            description="Alert topic encryption (CloudWatch alarms publish through it)",
            account_id=args.account_id,
            # SNS developer guide, "Enable compatibility between event sources from AWS
            # services and encrypted topics": a publishing service needs these two on the key.
            key_users=[
                allow(
                    ["kms:Decrypt", "kms:GenerateDataKey*"],
                    ["*"],
                    "CloudWatchAlarmsPublish",
                    Principal=CLOUDWATCH,
                    Condition=from_this_account,
                ),
                *(
                    [
                        allow(
                            ["kms:Decrypt", "kms:GenerateDataKey*"],
                            ["*"],
                            "PrometheusAlertManagerPublishes",
                            Principal=PROMETHEUS,
                            Condition=from_this_account,
                        )
                    ]
                    if prometheus
                    else []
                ),
            ],
            publishers=lambda arn: [
                allow(
                    ["sns:Publish"],
                    [arn],
                    "ThisAccountsAlarmsPublish",
                    Principal=CLOUDWATCH,
                    Condition={"ArnLike": {"aws:SourceArn": alarms}, **from_this_account},
                ),
                # AMP user guide, "Set up Amazon SNS for alert manager": this workspace only.
                *(
                    [
                        allow(
                            ["sns:GetTopicAttributes", "sns:Publish"],
                            [arn],
                            "ThisWorkspacesAlertManagerPublishes",
                            Principal=PROMETHEUS,
                            Condition=aps_source,
                        )
                    ]
                    if prometheus
                    else []
                ),
            ],
            tags=args.tags,
        ).topic
        for email in args.emails:
            # Named by the address, not its position: reordering the list changes nothing.
            digest = hashlib.sha256(email.lower().encode()).hexdigest()[:8]
            sns.TopicSubscription(
                f"{name}-email-{digest}",
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=child,
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})


@dataclass(frozen=True)
class Alarm:
    """One CloudWatch alarm on one metric: above ``threshold`` for ``periods`` periods."""

    suffix: str
    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str
    threshold: float
    period_seconds: int = 60
    periods: int = 1
    comparison: str = "GreaterThanThreshold"
    # No data is no trouble for most: an idle queue or table publishes nothing. A heartbeat's
    # missing data is the trouble itself.
    missing: str = "notBreaching"


def create_alarms(
    name: str,
    alarms: Sequence[Alarm],
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> None:
    for a in alarms:
        cloudwatch.MetricAlarm(
            f"{name}-{a.suffix}",
            alarm_description=a.description,
            namespace=a.namespace,
            metric_name=a.metric,
            dimensions=dict(a.dimensions),
            statistic=a.statistic,
            period=a.period_seconds,
            evaluation_periods=a.periods,
            threshold=a.threshold,
            comparison_operator=a.comparison,
            treat_missing_data=a.missing,
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
        )


@dataclass
class WorkflowAlarmsArgs:
    queue_name: pulumi.Input[str] | None  # None: a webhook's, which has only a dead-letter queue
    dlq_name: pulumi.Input[str]
    max_message_age_seconds: int
    topic_arn: pulumi.Input[str]


class SqsWorkflowAlarms(pulumi.ComponentResource):
    """A workflow's queues (or a webhook's DLQ): anything dead-lettered, and a backlog that
    stops draining."""

    def __init__(
        self, name: str, args: WorkflowAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:SqsWorkflowAlarms", name, None, opts)
        # Metric names and dimensions: SQS developer guide, "Available CloudWatch metrics for
        # Amazon SQS" (dimension QueueName; reported every minute).
        alarms = [
            Alarm(
                "dead-letters",
                "Messages were set aside on the dead-letter queue: read their reason, then redrive",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                {"QueueName": args.dlq_name},
                "Maximum",
                0,
            )
        ]
        if args.queue_name is not None:
            alarms.append(
                Alarm(
                    "backlog-age",
                    f"The oldest message waits over {args.max_message_age_seconds}s: the "
                    "workflow is not draining",
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    {"QueueName": args.queue_name},
                    "Maximum",
                    args.max_message_age_seconds,
                    periods=3,  # three minutes in a row: not a single slow batch
                )
            )
        create_alarms(name, alarms, args.topic_arn, self)
        self.register_outputs({})


@dataclass
class RouterAlarmsArgs:
    topic_name: pulumi.Input[str]
    topic_arn: pulumi.Input[str]  # where the alarms notify (the alert topic)


class SnsRouterAlarms(pulumi.ComponentResource):
    """The router: deliveries SNS gave up on (to a queue or a partner). What it could redrive
    lands in a DLQ, whose own alarm fires too; this one also catches a subscription whose
    redrive itself failed."""

    def __init__(
        self, name: str, args: RouterAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:SnsRouterAlarms", name, None, opts)
        # SNS developer guide, "Amazon SNS metrics": NumberOfNotificationsFailed by TopicName.
        failed = Alarm(
            "failed-deliveries",
            "The router failed to deliver events to a workflow queue or a partner endpoint",
            "AWS/SNS",
            "NumberOfNotificationsFailed",
            {"TopicName": args.topic_name},
            "Sum",
            0,
            period_seconds=300,
        )
        create_alarms(name, [failed], args.topic_arn, self)
        self.register_outputs({})


@dataclass
class TableAlarmsArgs:
    table_name: pulumi.Input[str]
    # The write operations the consumer calls (its IAM policy allows exactly these).
    operations: Sequence[str]
    topic_arn: pulumi.Input[str]
    # The global table's replica regions: replication to each is watched.
    replica_regions: Sequence[str] = ()


# Replication slower than this for five minutes in a row pages: the RPO of docs/resilience.md
# rests on it ("typically within a second" normally).
REPLICATION_LAG_ALARM_SECONDS = 60


class DynamoTableAlarms(pulumi.ComponentResource):
    """The results table: throttled writes, server errors on the consumer's writes, and (a global
    table) replication to each replica region falling behind."""

    def __init__(
        self, name: str, args: TableAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:DynamoTableAlarms", name, None, opts)
        # DynamoDB developer guide, "DynamoDB Metrics and dimensions": WriteThrottleEvents by
        # TableName; SystemErrors by TableName and Operation.
        alarms = [
            Alarm(
                "write-throttles",
                "Writes to the results table are throttled",
                "AWS/DynamoDB",
                "WriteThrottleEvents",
                {"TableName": args.table_name},
                "Sum",
                0,
                period_seconds=300,
            ),
            *(
                Alarm(
                    f"system-errors-{op.lower()}",
                    f"DynamoDB answers {op} on the results table with server errors",
                    "AWS/DynamoDB",
                    "SystemErrors",
                    {"TableName": args.table_name, "Operation": op},
                    "Sum",
                    0,
                    period_seconds=300,
                )
                for op in args.operations
            ),
            # DynamoDB developer guide, "Monitoring global tables" and "DynamoDB Metrics and
            # dimensions": ReplicationLatency (milliseconds) by TableName and ReceivingRegion,
            # for every source and destination region pair, in the source region.
            *(
                Alarm(
                    f"replication-lag-{region}",
                    f"Replication of the results table to {region} lags over "
                    f"{REPLICATION_LAG_ALARM_SECONDS}s: writes made here are not yet there",
                    "AWS/DynamoDB",
                    "ReplicationLatency",
                    {"TableName": args.table_name, "ReceivingRegion": region},
                    "Average",
                    REPLICATION_LAG_ALARM_SECONDS * 1000,
                    periods=5,
                )
                for region in args.replica_regions
            ),
        ]
        create_alarms(name, alarms, args.topic_arn, self)
        self.register_outputs({})


@dataclass
class HeartbeatAlarmArgs:
    task: str  # the Task dimension its heartbeats carry (app.heartbeat)
    window_seconds: int  # no heartbeat for this long: a tick failed or was missed
    topic_arn: pulumi.Input[str]
    # The deploy-time beat: the alarm is made after it, so it starts from a beat.
    first_beat: pulumi.Resource | None = None


# What app.heartbeat sends (its NAMESPACE, METRIC, DIMENSION).
HEARTBEAT_NAMESPACE, HEARTBEAT_METRIC, HEARTBEAT_DIMENSION = "EDW/Tasks", "Heartbeat", "Task"


class HeartbeatAlarm(pulumi.ComponentResource):
    """A periodic task that stopped: no heartbeat within its window, whether its pod failed,
    never started or the CronJob skipped the tick. Missing data is breaching: the task's beats
    are the only data there is."""

    def __init__(
        self, name: str, args: HeartbeatAlarmArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:HeartbeatAlarm", name, None, opts)
        period, periods = alarm_periods(args.window_seconds)
        missed = Alarm(
            "missed",
            f"No heartbeat from {args.task} for {args.window_seconds}s: a tick failed or was "
            "missed (docs/operations.md)",
            HEARTBEAT_NAMESPACE,
            HEARTBEAT_METRIC,
            {HEARTBEAT_DIMENSION: args.task},
            "Sum",
            1,
            period_seconds=period,
            periods=periods,
            comparison="LessThanThreshold",
            missing="breaching",
        )
        after = [args.first_beat] if args.first_beat else []
        create_alarms(name, [missed], args.topic_arn, self, after)
        self.register_outputs({})
