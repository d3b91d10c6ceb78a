"""Stack `aws`: the SNS router, per workflow an SQS queue + DLQ and its consumer, DynamoDB, EKS,
Karpenter and KEDA."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    AlertTopic,
    AlertTopicArgs,
    DynamoTableAlarms,
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
)
from components.aws.dashboard import CloudWatchDashboard, DashboardArgs, WorkflowQueues
from components.aws.image import EcrConsumerImage, EcrConsumerImageArgs
from components.aws.karpenter import (
    NODE_CLASS,
    KarpenterNodeAutoscaling,
    KarpenterNodeAutoscalingArgs,
)
from components.aws.keda import NAMESPACE as KEDA_NAMESPACE
from components.aws.keda import KedaOperator, KedaOperatorArgs
from components.aws.network import (
    EKS_UNSUPPORTED_ZONE_IDS,
    STANDARD_ZONE_FILTERS,
    EksNetwork,
    EksNetworkArgs,
)
from components.aws.principals import parse, principal_of, unlistable
from components.aws.prometheus import (
    COLLECTOR_ROLE,
    COLLECTOR_RULES,
    ContainerLogs,
    ContainerLogsArgs,
    ManagedPrometheus,
    ManagedPrometheusArgs,
    PrometheusWorkspace,
)
from components.aws.results_table import DynamoResultsTable, DynamoResultsTableArgs
from components.aws.router import SnsEventRouter, SnsEventRouterArgs, SnsWebhook, WebhookArgs
from components.aws.workflow import TABLE_WRITES, AwsWorkflow, AwsWorkflowArgs, ResultsTable
from components.k8s.consumer import ConsumerNamespace
from components.k8s.preview import (
    CONSUMER_KINDS,
    Kind,
    OtherClusterRole,
    PreviewAccess,
    PreviewAccessArgs,
    Subject,
    consumer_cluster_objects,
)
from components.k8s.schedule import SystemPlacement
from components.observability.rules import consumer_rules
from components.workflow import WorkflowCluster
from stacks.config import ConfigError, EdwConfig

# EC2's service-linked role for spot requests (IAM: AWSServiceRoleForEC2Spot, service
# spot.amazonaws.com); without it CreateFleet cannot launch spot capacity.
SPOT_SERVICE_LINKED_ROLE = "AWSServiceRoleForEC2Spot"
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
# The log group data source describes the group and then lists its tags by ARN
# (terraform-provider-aws internal/service/logs: group_data_source.go is
# @Tags(identifierAttribute="arn"), tags_gen.go listTags calls ListTagsForResource).
LOG_GROUP_READ = "logs:DescribeLogGroups and logs:ListTagsForResource"


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
    if creator and parse(creator) is None and not unlistable(creator):
        # A tag set by hand that names no role or user would match no listed ARN: every listed
        # principal would keep its entry, the creator's too (409).
        raise ConfigError(
            f"invalid stack configuration:\n  - the EKS cluster {cfg.name} has the tag "
            f"{CREATOR_TAG}={creator!r}, which names no IAM role or user; set it to the ARN of "
            "the identity that created the cluster (arn:aws:iam::<account>:role/<name> or "
            ":user/<name>) with `aws eks tag-resource`"
        )
    log_group = f"/aws/eks/{cfg.name}/cluster"
    orphan = cluster is None and (
        lookup(
            f"the log group {log_group}",
            LOG_GROUP_READ,
            lambda: cloudwatch.get_log_group(name=log_group),
        )
        is not None
    )
    return AccountState(spot_role is None, creator, orphan)


def results_table(cfg: EdwConfig, account: str, tags: Mapping[str, str]) -> ResultsTable:
    """The table this stack writes to (with the keys the consumer uses it with): its own,
    or, for a recovery stack, the replicated table of the lost stack (left alone by `destroy`:
    this stack never manages it)."""
    assert cfg.aws is not None
    if cfg.existing_results_table:
        region, name = cfg.aws.region, cfg.existing_results_table
        # Its replica key in this region, whatever its id: usable only through DynamoDB here.
        return ResultsTable(
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
    return ResultsTable(
        results.table_name, results.table_arn, [results.key_arn] if results.key_arn else []
    )


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
    webhooks = {
        hook.name: SnsWebhook(
            f"webhook-{hook.name}",
            WebhookArgs(topic_arn=router.topic_arn, url=hook.url, filter=hook.filter, tags=tags),
        )
        for hook in cfg.webhooks
    }
    table = results_table(cfg, account, tags)
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
            table_name=table.name,
            operations=TABLE_WRITES,
            topic_arn=alerts.topic_arn,
            replica_regions=cfg.aws.replica_regions,
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
    # KEDA reads every workflow's queue, and each consumer waits for KEDA: its queue ARNs are
    # given once the workflows exist.
    queue_arns, resolve_queue_arns = pulumi.deferred_output()
    keda = KedaOperator(
        "keda",
        KedaOperatorArgs(
            oidc=cluster.oidc,
            queue_arns=queue_arns,
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
                cluster_objects={
                    **consumer_cluster_objects(cfg.consumer.namespace),
                    EC2_NODE_CLASS: [NODE_CLASS],
                },
                namespaced_kinds={cfg.consumer.namespace: CONSUMER_KINDS},
                other_cluster_roles=(
                    [OtherClusterRole(COLLECTOR_ROLE, COLLECTOR_RULES)] if prometheus else []
                ),
                ready=[namespace],
            ),
            opts=on_cluster,
        )
    kubernetes = WorkflowCluster("aws", cfg.prefix, namespace, image, SYSTEM_NODES)
    workflows = {
        w.name: AwsWorkflow(
            w.name,
            AwsWorkflowArgs(
                workflow=w,
                region=region,
                tags=tags,
                router=router,
                table=table,
                alert_topic_arn=alerts.topic_arn,
                max_message_age_seconds=cfg.max_message_age_seconds,
                result_ttl_days=cfg.result_ttl_days,
                oidc=cluster.oidc,
                cluster=kubernetes,
                scaling=[keda, karpenter.node_pools],
                system_nodes=cluster.system_nodes,
                handler_image=handler_image(
                    w,
                    lambda name, context: (
                        EcrConsumerImage(
                            name, EcrConsumerImageArgs(tags=tags, context=context)
                        ).image_ref
                    ),
                ),
            ),
            opts=on_cluster,
        )
        for w in cfg.workflows
    }
    resolve_queue_arns(pulumi.Output.all(*[wf.queue_arn for wf in workflows.values()]))
    dashboard = CloudWatchDashboard(
        "dashboard",
        DashboardArgs(
            dashboard_name=cfg.name,
            region=region,
            workflows=[
                WorkflowQueues(name, wf.queue_name, wf.dlq_name) for name, wf in workflows.items()
            ],
            topic_name=router.topic_name,
            table_name=table.name,
        ),
    )

    first = workflows[cfg.workflows[0].name]
    return {
        "region": region,
        # The first workflow's queue: what single-queue tools and earlier releases read.
        "queueUrl": first.queue_url,
        "deadLetterQueueUrl": first.dlq_url,
        "routerTopicArn": router.topic_arn,
        "workflows": {
            name: {
                "queueUrl": wf.queue_url,
                "queueArn": wf.queue_arn,
                "deadLetterQueueUrl": wf.dlq_url,
                "consumer": wf.consumer_name,
            }
            for name, wf in workflows.items()
        },
        "webhookDeadLetterQueueUrls": {name: hook.dlq_url for name, hook in webhooks.items()},
        "tableName": table.name,
        # Attach your own receivers (chat, pager) to it; e-mails come from edw:alertEmails.
        "alertTopicArn": alerts.topic_arn,
        "dashboardUrl": dashboard.url,
        **({"prometheusWorkspaceArn": prometheus.arn} if prometheus else {}),
        "clusterName": cluster.cluster_name,
        "kubeconfig": cluster.kubeconfig,
        "consumerNamespace": namespace.namespace,
        "image": image,
    }
