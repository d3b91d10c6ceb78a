"""One workflow on AWS: its SQS queue and DLQ, its SNS subscription, its IRSA identities, its
consumer, its schedule and its alarms, as one component (`AwsWorkflow`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from components import workflow as neutral
from components.aws.alarms import (
    HEARTBEAT_NAMESPACE,
    HeartbeatAlarm,
    HeartbeatAlarmArgs,
    SqsWorkflowAlarms,
    WorkflowAlarmsArgs,
)
from components.aws.iam import Statement, allow
from components.aws.irsa import ClusterOidc, IrsaRole, IrsaRoleArgs
from components.aws.router import QueueSubscriptionArgs, SnsEventRouter, SnsQueueSubscription
from components.aws.work_queue import SqsWorkQueue, SqsWorkQueueArgs
from components.k8s.consumer import QueueTrigger
from components.settings import Workflow

# The consumer's writes: granted on the table, and watched for server errors.
TABLE_WRITES = ("PutItem", "BatchWriteItem")


def consumer_statements(
    queue_arn: pulumi.Input[str],
    dlq_arn: pulumi.Input[str],
    table_arn: pulumi.Input[str],
    table_keys: Sequence[pulumi.Input[str]] = (),
    region: str = "",
) -> list[Statement]:
    """Exactly what the consumer does: drain the queue, set bad input aside, write rows (and,
    for a table under a customer managed key, use that key through DynamoDB only)."""
    key_use = [
        allow(
            ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
            list(table_keys),
            "UseTableKeyThroughDynamoDB",
            # DynamoDB developer guide, "Key policy for a customer managed key": callers of an
            # encrypted table need these, on the key, via the DynamoDB service of the region.
            Condition={"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com"}},
        )
    ]
    return [
        allow(
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            [queue_arn],
            "ConsumeWorkQueue",
        ),
        # While the table fails, what was received goes back as a fresh copy (app/breaker.py),
        # so no redrive count can move a valid event to the DLQ.
        allow(["sqs:SendMessage"], [queue_arn], "RequeueFreshCopies"),
        allow(["sqs:SendMessage", "sqs:GetQueueAttributes"], [dlq_arn], "SetAsideToDeadLetter"),
        allow([f"dynamodb:{op}" for op in TABLE_WRITES], [table_arn], "WriteResults"),
        *(key_use if table_keys else []),
    ]


def publisher_statements(
    topic_arn: pulumi.Input[str], key_arn: pulumi.Input[str], region: str
) -> list[Statement]:
    """Publish to the router and nothing else (a schedule's CronJob): the topic, and its key
    through SNS only."""
    return [
        allow(["sns:Publish"], [topic_arn], "PublishToTheRouter"),
        allow(
            ["kms:Decrypt", "kms:GenerateDataKey*"],
            [key_arn],
            "UseTheRouterKeyThroughSns",
            Condition={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
        ),
    ]


def heartbeat_statements() -> list[Statement]:
    """A task's heartbeats: PutMetricData has no resource-level permissions, so the namespace
    condition keeps it to the heartbeat namespace (CloudWatch user guide, "Using condition keys
    to limit access to CloudWatch namespaces")."""
    return [
        allow(
            ["cloudwatch:PutMetricData"],
            ["*"],
            "SendHeartbeats",
            Condition={"StringEquals": {"cloudwatch:namespace": HEARTBEAT_NAMESPACE}},
        )
    ]


def irsa(role_arn: pulumi.Input[str]) -> neutral.PodIdentity:
    return neutral.PodIdentity({"eks.amazonaws.com/role-arn": role_arn})


@dataclass(frozen=True)
class ResultsTable:
    """The DynamoDB table the consumers write to: its name, ARN and the keys it is used with."""

    name: pulumi.Input[str]
    arn: pulumi.Input[str]
    keys: Sequence[pulumi.Input[str]] = ()


@dataclass(frozen=True)
class AwsWorkflowArgs:
    workflow: Workflow
    region: str
    tags: Mapping[str, str]
    router: SnsEventRouter
    table: ResultsTable
    alert_topic_arn: pulumi.Input[str]
    max_message_age_seconds: int
    result_ttl_days: int
    oidc: ClusterOidc
    cluster: neutral.WorkflowCluster
    # What the consumer waits for: KEDA and the Karpenter node pools.
    scaling: Sequence[pulumi.Resource]
    # What the schedule's pods wait for: the system node group.
    system_nodes: pulumi.Resource
    # The handler's image (given, or built by the stack); None without a handler.
    handler_image: pulumi.Input[str] | None = None


class AwsWorkflow(pulumi.ComponentResource):
    """A workflow on AWS. Its parts keep the names they had when the stack made them at its top
    level, with aliases to those URNs: an existing stack updates in place."""

    queue_url: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]
    dlq_name: pulumi.Output[str]
    consumer_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: AwsWorkflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:AwsWorkflow", name, None, opts)
        w, router = args.workflow, args.router
        moved = neutral.moved_under(self)
        queue = SqsWorkQueue(
            w.name,
            SqsWorkQueueArgs(
                settings=w.queue,
                tags={**args.tags, "edw/workflow": w.name},
                router_topic_arn=router.topic_arn,
            ),
            opts=moved,
        )
        SnsQueueSubscription(
            w.resource_name("route"),
            QueueSubscriptionArgs(
                topic_arn=router.topic_arn,
                queue_arn=queue.queue_arn,
                dlq_arn=queue.dlq_arn,
                filter=w.filter,
            ),
            opts=moved,
        )
        SqsWorkflowAlarms(
            f"{w.name}-alarms",
            WorkflowAlarmsArgs(
                queue_name=queue.queue_name,
                dlq_name=queue.dlq_name,
                max_message_age_seconds=args.max_message_age_seconds,
                topic_arn=args.alert_topic_arn,
            ),
            opts=moved,
        )
        identity = self._identity(
            "consumer-identity",
            w.k8s_name,
            [
                *consumer_statements(
                    queue.queue_arn, queue.dlq_arn, args.table.arn, args.table.keys, args.region
                ),
                # Handler: what it emits is published to the router (docs/handlers.md).
                *(
                    publisher_statements(router.topic_arn, router.key_arn, args.region)
                    if w.handler
                    else []
                ),
            ],
            args,
        )
        workload = neutral.consumer(
            self,
            w,
            args.cluster,
            backend_env={
                "EDW_QUEUE": queue.queue_url,
                "EDW_DEAD_LETTER_QUEUE": queue.dlq_url,
                "EDW_TABLE": args.table.name,
                "AWS_REGION": args.region,
                "EDW_RESULT_TTL_DAYS": str(args.result_ttl_days),
            },
            trigger=QueueTrigger(
                type="aws-sqs-queue",
                metadata={
                    "queueURL": queue.queue_url,
                    "awsRegion": args.region,
                    "scaleOnInFlight": "true",
                },
                # KEDA reads the queue with its own IRSA role (only sqs:GetQueueAttributes).
                pod_identity={"provider": "aws", "identityOwner": "keda"},
            ),
            identity=irsa(identity.role_arn),
            ready=[*args.scaling, identity],
            handler_image=args.handler_image,
            router_env={"EDW_ROUTER": router.topic_arn} if w.handler else None,
        )
        if w.schedule:
            publisher = self._identity(
                "schedule-identity",
                f"{w.k8s_name}-schedule",
                [
                    *publisher_statements(router.topic_arn, router.key_arn, args.region),
                    *heartbeat_statements(),
                ],
                args,
            )
            task = neutral.schedule(
                self,
                w,
                args.cluster,
                env={"EDW_ROUTER": router.topic_arn, "AWS_REGION": args.region},
                identity=irsa(publisher.role_arn),
                ready=[args.system_nodes, publisher],
            )
            HeartbeatAlarm(
                w.resource_name("schedule-alarms"),
                HeartbeatAlarmArgs(
                    task=neutral.task_name(w),
                    window_seconds=neutral.schedule_window(w),
                    topic_arn=args.alert_topic_arn,
                    first_beat=task.first_beat,
                ),
                opts=moved,
            )
        self.queue_url, self.queue_arn = queue.queue_url, queue.queue_arn
        self.queue_name = queue.queue_name
        self.dlq_url, self.dlq_arn, self.dlq_name = queue.dlq_url, queue.dlq_arn, queue.dlq_name
        self.consumer_name = workload.deployment_name
        self.register_outputs(
            {
                "queue_url": self.queue_url,
                "queue_arn": self.queue_arn,
                "dlq_url": self.dlq_url,
                "consumer_name": self.consumer_name,
            }
        )

    def _identity(
        self, base: str, service_account: str, statements: list[Statement], args: AwsWorkflowArgs
    ) -> IrsaRole:
        """An IRSA role for one of the workflow's service accounts in the consumer namespace."""
        return IrsaRole(
            args.workflow.resource_name(base),
            IrsaRoleArgs(
                oidc=args.oidc,
                namespace=args.cluster.namespace.namespace_name,
                service_account=service_account,
                statements=statements,
                tags=args.tags,
            ),
            opts=neutral.moved_under(self),
        )
