"""Stack `aws`: SQS + DLQ, DynamoDB, EKS, Karpenter and KEDA, and the consumer on top."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_aws import get_availability_zones, get_caller_identity

from components.aws.cluster import EksCluster, EksClusterArgs
from components.aws.iam import Statement, allow
from components.aws.image import EcrConsumerImage, EcrConsumerImageArgs
from components.aws.irsa import IrsaRole, IrsaRoleArgs
from components.aws.karpenter import KarpenterNodeAutoscaling, KarpenterNodeAutoscalingArgs
from components.aws.keda import KedaOperator, KedaOperatorArgs
from components.aws.network import EksNetwork, EksNetworkArgs
from components.aws.results_table import DynamoResultsTable, DynamoResultsTableArgs
from components.aws.work_queue import SqsWorkQueue, SqsWorkQueueArgs
from components.k8s.consumer import (
    SERVICE_ACCOUNT,
    ConsumerDeployment,
    ConsumerDeploymentArgs,
    QueueTrigger,
)
from stacks.config import EdwConfig


def consumer_statements(
    queue_arn: pulumi.Input[str], dlq_arn: pulumi.Input[str], table_arn: pulumi.Input[str]
) -> list[Statement]:
    """Exactly what the consumer does: drain the queue, set bad input aside, write rows."""
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
        allow(["sqs:SendMessage", "sqs:GetQueueAttributes"], [dlq_arn], "SetAsideToDeadLetter"),
        allow(["dynamodb:PutItem", "dynamodb:BatchWriteItem"], [table_arn], "WriteResults"),
    ]


def build(cfg: EdwConfig) -> dict[str, Any]:
    assert cfg.aws is not None  # guaranteed by config validation for cloud=aws
    region = cfg.aws.region
    account = get_caller_identity().account_id
    tags = {"project": "edw", "stack": cfg.stack, **cfg.tags}

    work = SqsWorkQueue("work", SqsWorkQueueArgs(settings=cfg.queue, tags=tags))
    results = DynamoResultsTable(
        "results",
        DynamoResultsTableArgs(
            deletion_protection=cfg.deletion_protection,
            ttl_enabled=cfg.result_ttl_days > 0,
            tags=tags,
        ),
    )

    zones = get_availability_zones(state="available").names
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
            admin_arns=cfg.aws.cluster_admin_arns,
            tags=tags,
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
            nodes=cfg.nodes,
            ami_alias=cfg.aws.ami_alias,
            system_node_count=cfg.system_node_count,
            tags=tags,
        ),
        opts=on_cluster,
    )
    keda = KedaOperator(
        "keda",
        KedaOperatorArgs(
            oidc=cluster.oidc,
            queue_arn=work.queue_arn,
            system_nodes=cluster.system_nodes,
            tags=tags,
        ),
        opts=on_cluster,
    )
    identity = IrsaRole(
        "consumer-identity",
        IrsaRoleArgs(
            oidc=cluster.oidc,
            namespace=cfg.consumer.namespace,
            service_account=SERVICE_ACCOUNT,
            statements=consumer_statements(work.queue_arn, work.dlq_arn, results.table_arn),
            tags=tags,
        ),
    )
    image: pulumi.Input[str] = cfg.consumer.image or (
        EcrConsumerImage("consumer-image", EcrConsumerImageArgs(tags=tags)).image_ref
    )

    consumer = ConsumerDeployment(
        "consumer",
        ConsumerDeploymentArgs(
            cloud="aws",
            consumer=cfg.consumer,
            queue=cfg.queue,
            image=image,
            backend_env={
                "EDW_QUEUE": work.queue_url,
                "EDW_DEAD_LETTER_QUEUE": work.dlq_url,
                "EDW_TABLE": results.table_name,
                "AWS_REGION": region,
                "EDW_RESULT_TTL_DAYS": str(cfg.result_ttl_days),
            },
            trigger=QueueTrigger(
                type="aws-sqs-queue",
                metadata={
                    "queueURL": work.queue_url,
                    "awsRegion": region,
                    "scaleOnInFlight": "true",
                },
                # KEDA reads the queue with its own IRSA role (only sqs:GetQueueAttributes).
                pod_identity={"provider": "aws", "identityOwner": "keda"},
            ),
            service_account_annotations={"eks.amazonaws.com/role-arn": identity.role_arn},
            platform=[keda, karpenter.node_pools, identity],
        ),
        opts=on_cluster,
    )

    return {
        "region": region,
        "queueUrl": work.queue_url,
        "deadLetterQueueUrl": work.dlq_url,
        "tableName": results.table_name,
        "clusterName": cluster.cluster_name,
        "kubeconfig": cluster.kubeconfig,
        "consumerNamespace": consumer.namespace,
        "image": image,
    }
