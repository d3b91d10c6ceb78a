"""Stack `aws`: the SNS router, per workflow an SQS queue + DLQ and its consumer, DynamoDB, EKS,
Karpenter and KEDA."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import (
    GetAvailabilityZonesFilterArgs,
    cloudwatch,
    get_availability_zones,
    get_caller_identity,
    iam,
)
from pulumi_aws import eks as aws_eks
from pulumi_kubernetes import core as k8s_core

from components.app_image import handler_image
from components.aws.alarms import (
    HEARTBEAT_NAMESPACE,
    AlertTopic,
    AlertTopicArgs,
    DynamoTableAlarms,
    HeartbeatAlarm,
    HeartbeatAlarmArgs,
    RouterAlarmsArgs,
    SnsRouterAlarms,
    SqsWorkflowAlarms,
    TableAlarmsArgs,
    WorkflowAlarmsArgs,
)
from components.aws.cluster import (
    CREATOR_TAG,
    PREVIEW_GROUP,
    SYSTEM_POOL_LABEL,
    SYSTEM_TAINT_KEY,
    ClusterAccess,
    EksCluster,
    EksClusterArgs,
    principal_of,
)
from components.aws.dashboard import CloudWatchDashboard, DashboardArgs, WorkflowQueues
from components.aws.iam import Statement, allow
from components.aws.image import EcrConsumerImage, EcrConsumerImageArgs
from components.aws.irsa import IrsaRole, IrsaRoleArgs
from components.aws.karpenter import KarpenterNodeAutoscaling, KarpenterNodeAutoscalingArgs
from components.aws.keda import NAMESPACE as KEDA_NAMESPACE
from components.aws.keda import KedaOperator, KedaOperatorArgs
from components.aws.network import (
    EKS_UNSUPPORTED_ZONE_IDS,
    STANDARD_ZONE_FILTERS,
    EksNetwork,
    EksNetworkArgs,
)
from components.aws.prometheus import (
    COLLECTOR_RULES,
    ContainerLogs,
    ContainerLogsArgs,
    ManagedPrometheus,
    ManagedPrometheusArgs,
    PrometheusWorkspace,
)
from components.aws.results_table import DynamoResultsTable, DynamoResultsTableArgs
from components.aws.router import (
    QueueSubscriptionArgs,
    SnsEventRouter,
    SnsEventRouterArgs,
    SnsQueueSubscription,
    SnsWebhook,
    WebhookArgs,
)
from components.aws.work_queue import SqsWorkQueue, SqsWorkQueueArgs
from components.k8s.consumer import (
    ConsumerDeployment,
    ConsumerDeploymentArgs,
    ConsumerNamespace,
    QueueTrigger,
)
from components.k8s.preview import (
    CLUSTER_KINDS,
    CONSUMER_KINDS,
    Kind,
    PreviewAccess,
    PreviewAccessArgs,
    Subject,
)
from components.k8s.schedule import PeriodicTask, PeriodicTaskArgs, SystemPlacement
from components.observability.rules import consumer_rules
from stacks.config import ConfigError, EdwConfig
from stacks.shared import schedule_env, schedule_task, schedule_window, task_name

# EC2's service-linked role for spot requests (IAM: AWSServiceRoleForEC2Spot, service
# spot.amazonaws.com); without it CreateFleet cannot launch spot capacity.
SPOT_SERVICE_LINKED_ROLE = "AWSServiceRoleForEC2Spot"
# The consumer's writes: granted on the table, and watched for server errors.
TABLE_WRITES = ("PutItem", "BatchWriteItem")
# Periodic tasks run on the system node group, where they start at once.
SYSTEM_NODES = SystemPlacement(
    node_selector=SYSTEM_POOL_LABEL,
    toleration=k8s_core.v1.TolerationArgs(
        key=SYSTEM_TAINT_KEY, operator="Exists", effect="NoSchedule"
    ),
)
# The one cluster-scoped kind only the AWS stack manages (components/aws/karpenter.py).
EC2_NODE_CLASS = Kind("karpenter.k8s.aws", "ec2nodeclasses")
# How the provider reports a missing IAM role (NoSuchEntity), EKS cluster (retry.NotFoundError:
# "couldn't find resource") or log group (tfresource.EmptyResultError: "empty result"):
# terraform-provider-aws's iam, eks and logs data sources, which pulumi-aws wraps.
NOT_FOUND = ("NoSuchEntity", "couldn't find resource", "empty result")


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


def lookup(what: str, permission: str, call: Callable[[], Any]) -> Any | None:
    """An account lookup before any resource exists: the answer, or None when the thing is not
    there (how the provider words a missing role, cluster or log group)."""
    try:
        return call()
    except Exception as exc:
        text = str(exc)
        if any(marker in text for marker in NOT_FOUND):
            return None
        raise ConfigError(
            f"cannot tell whether {what} exists ({permission} failed: {text}); grant {permission}"
        ) from exc


@dataclass(frozen=True)
class AccountState:
    """What the account already has, read before any resource is registered."""

    create_spot_role: bool  # the Spot service-linked role is missing and may be created
    creator: str  # the principal EKS made the cluster's admin ("" when an old cluster lacks it)
    adopt_log_group: bool  # a control-plane log group outlived the previous cluster


def preflight(cfg: EdwConfig, caller_arn: str) -> AccountState:
    """Checks against the account, before any resource is registered."""
    assert cfg.aws is not None
    spot_role = lookup(
        f"the EC2 Spot service-linked role {SPOT_SERVICE_LINKED_ROLE}",
        f"iam:GetRole on {SPOT_SERVICE_LINKED_ROLE}",
        lambda: iam.get_role(name=SPOT_SERVICE_LINKED_ROLE),
    )
    if spot_role is None and not cfg.aws.create_spot_service_linked_role:
        raise ConfigError(
            "invalid stack configuration:\n  - the account has no EC2 Spot service-linked role "
            f"({SPOT_SERVICE_LINKED_ROLE}): every spot launch would fail and all consumers would "
            "run on-demand. Set edw:createSpotServiceLinkedRole true, or create it once with "
            "`aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`"
        )
    cluster = lookup(
        f"the EKS cluster {cfg.name}",
        "eks:DescribeCluster",
        lambda: aws_eks.get_cluster(name=cfg.name),
    )
    # This `up` creates the cluster: its caller becomes the creator EKS makes admin. Later runs,
    # by any identity, read the creator back from the cluster's tag.
    creator = (
        principal_of(caller_arn)
        if cluster is None
        else dict(cluster.tags or {}).get(CREATOR_TAG, "")
    )
    log_group = f"/aws/eks/{cfg.name}/cluster"
    orphan = cluster is None and (
        lookup(
            f"the log group {log_group}",
            "logs:DescribeLogGroups",
            lambda: cloudwatch.get_log_group(name=log_group),
        )
        is not None
    )
    return AccountState(spot_role is None, creator, orphan)


def results_table(
    cfg: EdwConfig, account: str, tags: Mapping[str, str]
) -> tuple[pulumi.Input[str], pulumi.Input[str], list[pulumi.Input[str]]]:
    """(name, ARN, keys the consumer uses it with) of the table this stack writes to: its own,
    or, for a recovery stack, the replicated table of the lost stack (left alone by `destroy`:
    this stack never manages it)."""
    assert cfg.aws is not None
    if cfg.existing_results_table:
        region, name = cfg.aws.region, cfg.existing_results_table
        # Its replica key in this region, whatever its id: usable only through DynamoDB here.
        return (
            name,
            f"arn:aws:dynamodb:{region}:{account}:table/{name}",
            [f"arn:aws:kms:{region}:{account}:key/*"],
        )
    results = DynamoResultsTable(
        "results",
        DynamoResultsTableArgs(
            deletion_protection=cfg.deletion_protection,
            ttl_enabled=cfg.result_ttl_days > 0,
            tags=tags,
            replica_regions=cfg.aws.replica_regions,
        ),
    )
    return results.table_name, results.table_arn, [results.key_arn] if results.key_arn else []


def build(cfg: EdwConfig) -> dict[str, Any]:
    assert cfg.aws is not None  # guaranteed by config validation for cloud=aws
    region = cfg.aws.region
    caller = get_caller_identity()
    account = caller.account_id
    account_state = preflight(cfg, caller.arn)
    tags = {"project": "edw", "stack": cfg.stack, **cfg.tags}

    router = SnsEventRouter(
        "router",
        SnsEventRouterArgs(
            publisher_arns=cfg.router_publishers, account_id=account, region=region, tags=tags
        ),
    )
    queues = {
        w.name: SqsWorkQueue(
            w.name,
            SqsWorkQueueArgs(
                settings=w.queue,
                tags={**tags, "edw/workflow": w.name},
                router_topic_arn=router.topic_arn,
            ),
        )
        for w in cfg.workflows
    }
    for w in cfg.workflows:
        SnsQueueSubscription(
            w.resource_name("route"),
            QueueSubscriptionArgs(
                topic_arn=router.topic_arn,
                queue_arn=queues[w.name].queue_arn,
                dlq_arn=queues[w.name].dlq_arn,
                filter=w.filter,
            ),
        )
    webhooks = {
        hook.name: SnsWebhook(
            f"webhook-{hook.name}",
            WebhookArgs(topic_arn=router.topic_arn, url=hook.url, filter=hook.filter, tags=tags),
        )
        for hook in cfg.webhooks
    }
    table_name, table_arn, table_keys = results_table(cfg, account, tags)
    full = cfg.observability == "full"
    prometheus = PrometheusWorkspace("prometheus", cfg.name, tags) if full else None
    alerts = AlertTopic(
        "alerts",
        AlertTopicArgs(
            emails=cfg.alert_emails,
            account_id=account,
            region=region,
            tags=tags,
            prometheus_workspace_arn=prometheus.arn if prometheus else None,
        ),
    )
    for w in cfg.workflows:
        SqsWorkflowAlarms(
            f"{w.name}-alarms",
            WorkflowAlarmsArgs(
                queue_name=queues[w.name].queue_name,
                dlq_name=queues[w.name].dlq_name,
                max_message_age_seconds=cfg.max_message_age_seconds,
                topic_arn=alerts.topic_arn,
            ),
        )
    for name, hook in webhooks.items():
        SqsWorkflowAlarms(
            f"webhook-{name}-alarms",
            WorkflowAlarmsArgs(
                queue_name=None,
                dlq_name=hook.dlq_name,
                max_message_age_seconds=cfg.max_message_age_seconds,
                topic_arn=alerts.topic_arn,
            ),
        )
    SnsRouterAlarms(
        "router-alarms",
        RouterAlarmsArgs(topic_name=router.topic_name, topic_arn=alerts.topic_arn),
    )
    DynamoTableAlarms(
        "results-alarms",
        TableAlarmsArgs(
            table_name=table_name,
            operations=TABLE_WRITES,
            topic_arn=alerts.topic_arn,
            replica_regions=cfg.aws.replica_regions,
        ),
    )
    dashboard = CloudWatchDashboard(
        "dashboard",
        DashboardArgs(
            dashboard_name=cfg.name,
            region=region,
            workflows=[
                WorkflowQueues(w.name, queues[w.name].queue_name, queues[w.name].dlq_name)
                for w in cfg.workflows
            ],
            topic_name=router.topic_name,
            table_name=table_name,
        ),
    )

    # Every standard zone, whatever its state today: an impaired zone dropped from the list would
    # shift the zones after it and plan subnet replacements. Sorted, so the first N never move.
    zones = sorted(
        get_availability_zones(
            exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS),
            filters=[GetAvailabilityZonesFilterArgs(**f) for f in STANDARD_ZONE_FILTERS],
        ).names
    )
    network = EksNetwork(
        "network",
        EksNetworkArgs(
            cluster_name=cfg.name, settings=cfg.aws, availability_zones=zones, tags=tags
        ),
    )
    cluster = EksCluster(
        "cluster",
        EksClusterArgs(
            cluster_name=cfg.name,
            kubernetes_version=cfg.kubernetes_version,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            api_allowed_cidrs=cfg.api_allowed_cidrs,
            system_instance_type=cfg.aws.system_instance_type,
            system_node_count=cfg.system_node_count,
            access=ClusterAccess(
                admin_arns=cfg.aws.cluster_admin_arns,
                preview_arns=cfg.aws.preview_arns,
                creator=account_state.creator,
            ),
            tags=tags,
            log_retention_days=cfg.aws.control_plane_log_retention_days,
            aws_profile=cfg.aws.profile,
            adopt_log_group=account_state.adopt_log_group,
        ),
    )
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})

    karpenter = KarpenterNodeAutoscaling(
        "karpenter",
        KarpenterNodeAutoscalingArgs(
            cluster_name=cfg.name,
            region=region,
            account_id=account,
            oidc=cluster.oidc,
            cluster_security_group_id=cluster.cluster_security_group_id,
            system_nodes=cluster.system_nodes,
            dns=cluster.coredns,
            nodes=cfg.nodes,
            ami_alias=cfg.aws.ami_alias,
            system_node_count=cfg.system_node_count,
            create_spot_service_linked_role=account_state.create_spot_role,
            tags=tags,
        ),
        opts=on_cluster,
    )
    keda = KedaOperator(
        "keda",
        KedaOperatorArgs(
            oidc=cluster.oidc,
            queue_arns=[q.queue_arn for q in queues.values()],
            system_nodes=cluster.system_nodes,
            system_node_count=cfg.system_node_count,
            tags=tags,
        ),
        opts=on_cluster,
    )
    if prometheus:
        ManagedPrometheus(
            "prometheus-collection",
            ManagedPrometheusArgs(
                cluster_arn=f"arn:aws:eks:{region}:{account}:cluster/{cfg.name}",
                subnet_ids=network.private_subnet_ids,
                security_group_ids=[cluster.cluster_security_group_id],
                workspace_arn=prometheus.arn,
                workspace_id=prometheus.id,
                rules=consumer_rules(cfg.latency_alert_seconds),
                alert_topic_arn=alerts.topic_arn,
                region=region,
                consumer_namespace=cfg.consumer.namespace,
                keda_namespace=KEDA_NAMESPACE,
                tags=tags,
            ),
            cluster_opts=on_cluster,
        )
        ContainerLogs(
            "container-logs",
            ContainerLogsArgs(
                cluster_name=cfg.name,
                oidc=cluster.oidc,
                region=region,
                account_id=account,
                retention_days=cfg.aws.control_plane_log_retention_days,
                tags=tags,
            ),
        )
    image: pulumi.Input[str] = cfg.consumer.image or (
        EcrConsumerImage("consumer-image", EcrConsumerImageArgs(tags=tags)).image_ref
    )
    namespace = ConsumerNamespace("consumer", cfg.consumer.namespace, opts=on_cluster)
    if cfg.aws.preview_arns:
        PreviewAccess(
            "preview-access",
            PreviewAccessArgs(
                name=f"{cfg.prefix}-preview",
                subjects=[Subject("Group", PREVIEW_GROUP)],  # the previewers' access entries'
                cluster_kinds=(*CLUSTER_KINDS, EC2_NODE_CLASS),
                namespaced_kinds={cfg.consumer.namespace: CONSUMER_KINDS},
                held_rules=COLLECTOR_RULES if prometheus else (),
                ready=[namespace],
            ),
            opts=on_cluster,
        )
    consumers = {}
    for w in cfg.workflows:
        queue = queues[w.name]
        identity = IrsaRole(
            w.resource_name("consumer-identity"),
            IrsaRoleArgs(
                oidc=cluster.oidc,
                namespace=cfg.consumer.namespace,
                service_account=w.k8s_name,
                statements=[
                    *consumer_statements(
                        queue.queue_arn, queue.dlq_arn, table_arn, table_keys, region
                    ),
                    # Handler: what it emits is published to the router (docs/handlers.md).
                    *(
                        publisher_statements(router.topic_arn, router.key_arn, region)
                        if w.handler
                        else []
                    ),
                ],
                tags=tags,
            ),
        )
        consumers[w.name] = ConsumerDeployment(
            w.resource_name("consumer"),
            ConsumerDeploymentArgs(
                cloud="aws",
                workflow=w,
                namespace=namespace.namespace,
                image=image,
                backend_env={
                    "EDW_QUEUE": queue.queue_url,
                    "EDW_DEAD_LETTER_QUEUE": queue.dlq_url,
                    "EDW_TABLE": table_name,
                    "AWS_REGION": region,
                    "EDW_RESULT_TTL_DAYS": str(cfg.result_ttl_days),
                },
                trigger=QueueTrigger(
                    type="aws-sqs-queue",
                    metadata={
                        "queueURL": queue.queue_url,
                        "awsRegion": region,
                        "scaleOnInFlight": "true",
                    },
                    # KEDA reads the queue with its own IRSA role (only sqs:GetQueueAttributes).
                    pod_identity={"provider": "aws", "identityOwner": "keda"},
                ),
                service_account_annotations={"eks.amazonaws.com/role-arn": identity.role_arn},
                platform=[keda, karpenter.node_pools, identity],
                # Handler: its image, and the router the consumer publishes emitted events to.
                handler_image=handler_image(
                    w,
                    lambda name, context: (
                        EcrConsumerImage(
                            name, EcrConsumerImageArgs(tags=tags, context=context)
                        ).image_ref
                    ),
                ),
                router_env={"EDW_ROUTER": router.topic_arn},
            ),
            opts=on_cluster,
        )
        if w.schedule:
            schedule_identity = IrsaRole(
                w.resource_name("schedule-identity"),
                IrsaRoleArgs(
                    oidc=cluster.oidc,
                    namespace=cfg.consumer.namespace,
                    service_account=f"{w.k8s_name}-schedule",
                    statements=[
                        *publisher_statements(router.topic_arn, router.key_arn, region),
                        *heartbeat_statements(),
                    ],
                    tags=tags,
                ),
            )
            task = PeriodicTask(
                w.resource_name("schedule"),
                PeriodicTaskArgs(
                    **schedule_task(cfg, w),
                    namespace=namespace.namespace,
                    image=image,
                    env={
                        **schedule_env("aws", cfg, w),
                        "EDW_ROUTER": router.topic_arn,
                        "AWS_REGION": region,
                    },
                    system_nodes=SYSTEM_NODES,
                    service_account_annotations={
                        "eks.amazonaws.com/role-arn": schedule_identity.role_arn
                    },
                    platform=[cluster.system_nodes, schedule_identity],
                ),
                opts=on_cluster,
            )
            HeartbeatAlarm(
                w.resource_name("schedule-alarms"),
                HeartbeatAlarmArgs(
                    task=task_name(w),
                    window_seconds=schedule_window(w),
                    topic_arn=alerts.topic_arn,
                    first_beat=task.first_beat,
                ),
            )

    first = queues[cfg.workflows[0].name]
    return {
        "region": region,
        # The first workflow's queue: what single-queue tools and earlier releases read.
        "queueUrl": first.queue_url,
        "deadLetterQueueUrl": first.dlq_url,
        "routerTopicArn": router.topic_arn,
        "workflows": {
            w.name: {
                "queueUrl": queues[w.name].queue_url,
                "queueArn": queues[w.name].queue_arn,
                "deadLetterQueueUrl": queues[w.name].dlq_url,
                "consumer": consumers[w.name].deployment_name,
            }
            for w in cfg.workflows
        },
        "webhookDeadLetterQueueUrls": {name: hook.dlq_url for name, hook in webhooks.items()},
        "tableName": table_name,
        # Attach your own receivers (chat, pager) to it; e-mails come from edw:alertEmails.
        "alertTopicArn": alerts.topic_arn,
        "dashboardUrl": dashboard.url,
        **({"prometheusWorkspaceArn": prometheus.arn} if prometheus else {}),
        "clusterName": cluster.cluster_name,
        "kubeconfig": cluster.kubeconfig,
        "consumerNamespace": namespace.namespace,
        "image": image,
    }
