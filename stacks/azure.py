"""Stack `dev`: Storage Queue + poison queue, Cosmos DB for Table, AKS with NAP and the KEDA
add-on, workload identities, and the consumer on top."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import authorization, resources

from components.azure.cluster import AksCluster, AksClusterArgs, kubelogin_login
from components.azure.identity import (
    CosmosTableGrant,
    RoleGrant,
    WorkloadIdentity,
    WorkloadIdentityArgs,
)
from components.azure.image import AcrConsumerImage, AcrConsumerImageArgs
from components.azure.keda_token import KedaOperatorToken
from components.azure.nap import NapNodeAutoscaling, NapNodeAutoscalingArgs
from components.azure.results_table import CosmosResultsTable, CosmosResultsTableArgs
from components.azure.roles import (
    COSMOS_TABLE_DATA_CONTRIBUTOR,
    STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR,
    STORAGE_QUEUE_DATA_MESSAGE_SENDER,
    STORAGE_QUEUE_DATA_READER,
    cosmos_table_role_definition_id,
    cosmos_table_scope,
    role_definition_id,
)
from components.azure.work_queue import StorageWorkQueue, StorageWorkQueueArgs
from components.k8s.consumer import (
    SERVICE_ACCOUNT,
    ConsumerDeployment,
    ConsumerDeploymentArgs,
    QueueTrigger,
)
from stacks.config import EdwConfig

QUEUE = "work"
TABLE = "results"
# The AKS KEDA add-on runs the operator as kube-system/keda-operator.
KEDA_NAMESPACE = "kube-system"
KEDA_SERVICE_ACCOUNT = "keda-operator"
WORKLOAD_IDENTITY_USE = {"azure.workload.identity/use": "true"}
SUFFIX_LENGTH = 8


@dataclass(frozen=True)
class TableRef:
    """The Cosmos DB table the consumer writes to: this stack's, or a replicated one."""

    account_name: pulumi.Input[str]
    account_id: pulumi.Input[str]
    resource_group_name: pulumi.Input[str]
    table_name: pulumi.Input[str]
    table_endpoint: pulumi.Input[str]


def existing_table(table_id: str) -> TableRef:
    """A recovery stack's table: the replicated account's table id, left alone by `destroy`."""
    account_id, _, table = table_id.partition("/tables/")
    account = account_id.rsplit("/", 1)[-1]
    group = account_id.split("/resourceGroups/", 1)[1].split("/", 1)[0]
    return TableRef(
        account, account_id, group, table, f"https://{account}.table.cosmos.azure.com:443/"
    )


def results_table(
    cfg: EdwConfig, subscription: str, group: pulumi.Input[str], tags: Mapping[str, str]
) -> TableRef:
    assert cfg.azure is not None
    if cfg.existing_results_table:
        return existing_table(cfg.existing_results_table)
    own = CosmosResultsTable(
        "results",
        CosmosResultsTableArgs(
            resource_group_name=group,
            location=cfg.azure.location,
            account_name=globally_unique(cfg, subscription, 44, "-"),
            table_name=TABLE,
            serverless=cfg.azure.cosmos_serverless,
            deletion_protection=cfg.deletion_protection,
            tags=tags,
            replica_locations=cfg.azure.replica_locations,
        ),
    )
    return TableRef(own.account_name, own.account_id, group, own.table_name, own.table_endpoint)


def globally_unique(cfg: EdwConfig, subscription_id: str, max_length: int, sep: str = "") -> str:
    """A name unique across Azure (storage, Cosmos DB, ACR): <prefix><stack><hash>, a-z0-9.

    The hash of subscription and stack keeps it stable across runs and distinct per subscription.
    """
    suffix = hashlib.sha256(f"{subscription_id}/{cfg.name}".encode()).hexdigest()[:SUFFIX_LENGTH]
    base = re.sub(r"[^a-z0-9]", "", f"{cfg.prefix}{cfg.stack}".lower())
    return f"{base[: max_length - SUFFIX_LENGTH - len(sep)]}{sep}{suffix}"


def build(cfg: EdwConfig) -> dict[str, Any]:
    assert cfg.azure is not None  # guaranteed by config validation for cloud=azure
    az = cfg.azure
    client = authorization.get_client_config()
    subscription = client.subscription_id
    tags = {"project": "edw", "stack": cfg.stack, **cfg.tags}

    group = resources.ResourceGroup(
        "resource-group", resource_group_name=f"{cfg.name}-rg", location=az.location, tags=tags
    )
    work = StorageWorkQueue(
        "work",
        StorageWorkQueueArgs(
            resource_group_name=group.name,
            resource_group_id=group.id,
            subscription_id=subscription,
            stack_name=cfg.name,
            location=az.location,
            account_name=globally_unique(cfg, subscription, 24),
            queue_name=QUEUE,
            network_default_action=az.storage_network_default_action,
            tags=tags,
        ),
    )
    results = results_table(cfg, subscription, group.name, tags)
    cluster = AksCluster(
        "cluster",
        AksClusterArgs(
            resource_group_name=group.name,
            cluster_name=cfg.name,
            registry_name=globally_unique(cfg, subscription, 50),
            kubernetes_version=cfg.kubernetes_version,
            system_node_count=cfg.system_node_count,
            api_allowed_cidrs=cfg.api_allowed_cidrs,
            settings=az,
            subscription_id=subscription,
            deployer_object_id=client.object_id,
            tags=tags,
            kubelogin_args=kubelogin_login(os.environ),
        ),
    )
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})

    nap = NapNodeAutoscaling(
        "nap",
        NapNodeAutoscalingArgs(nodes=cfg.nodes, cluster=cluster.cluster, tags=tags),
        opts=on_cluster,
    )

    consumer_identity, keda_identity = workload_identities(
        location=az.location,
        consumer_namespace=cfg.consumer.namespace,
        subscription=subscription,
        message_updater=work.message_updater_role_id,
        resource_group_name=group.name,
        oidc_issuer=cluster.oidc_issuer,
        work=work,
        results=results,
        tags=tags,
        id_namespace=f"{subscription}/{cfg.name}",
    )

    # The add-on's operator must run with the KEDA identity's token before it can scale.
    keda_token = KedaOperatorToken(
        "keda-operator-token",
        kubeconfig=cluster.kubeconfig,
        identity=keda_identity.client_id,
        opts=pulumi.ResourceOptions(parent=keda_identity, depends_on=[cluster.provider]),
    )

    image: pulumi.Input[str] = cfg.consumer.image or (
        AcrConsumerImage(
            "consumer-image",
            AcrConsumerImageArgs(
                registry_id=cluster.registry_id,
                login_server=cluster.registry_login_server,
                subscription_id=subscription,
                tenant_id=client.tenant_id,
                deployer_object_id=client.object_id,
            ),
        ).image_ref
    )

    consumer = ConsumerDeployment(
        "consumer",
        ConsumerDeploymentArgs(
            cloud="azure",
            consumer=cfg.consumer,
            queue=cfg.queue,
            image=image,
            backend_env={
                "EDW_QUEUE": work.queue_name,
                "EDW_DEAD_LETTER_QUEUE": work.poison_queue_name,
                "EDW_TABLE": results.table_name,
                "EDW_STORAGE_ACCOUNT": work.account_name,
                "EDW_TABLE_ENDPOINT": results.table_endpoint,
            },
            trigger=QueueTrigger(
                type="azure-queue",
                metadata={
                    "accountName": work.account_name,
                    "queueName": work.queue_name,
                    # ApproximateMessagesCount: includes in-flight (invisible) messages.
                    "queueLengthStrategy": "all",
                    "cloud": "AzurePublicCloud",
                },
                # The add-on's operator exchanges its own token for the KEDA identity.
                pod_identity={"provider": "azure-workload", "identityId": keda_identity.client_id},
            ),
            service_account_annotations={
                "azure.workload.identity/client-id": consumer_identity.client_id
            },
            service_account_labels=WORKLOAD_IDENTITY_USE,
            pod_labels=WORKLOAD_IDENTITY_USE,
            platform=[
                nap.node_pools,
                consumer_identity,
                keda_identity,
                keda_token,
                cluster.acr_pull,
            ],
        ),
        opts=on_cluster,
    )

    return {
        "location": az.location,
        "subscriptionId": subscription,
        "resourceGroup": group.name,
        "storageAccount": work.account_name,
        "queueName": work.queue_name,
        "poisonQueueName": work.poison_queue_name,
        "tableEndpoint": results.table_endpoint,
        "tableName": results.table_name,
        # What a recovery stack's edw:existingResultsTable takes (docs/resilience.md).
        "tableId": pulumi.Output.concat(results.account_id, "/tables/", results.table_name),
        "clusterName": cluster.cluster_name,
        # NAP's VMs live here; AKS deletes this group with the cluster.
        "nodeResourceGroup": cluster.node_resource_group,
        "kubeconfig": cluster.kubeconfig,
        "registry": cluster.registry_login_server,
        "consumerNamespace": consumer.namespace,
        "consumerClientId": consumer_identity.client_id,
        "kedaClientId": keda_identity.client_id,
        "image": image,
    }


def workload_identities(
    *,
    location: str,
    consumer_namespace: str,
    subscription: str,
    message_updater: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    work: StorageWorkQueue,
    results: TableRef,
    tags: Mapping[str, str],
    id_namespace: str,
) -> tuple[WorkloadIdentity, WorkloadIdentity]:
    """The consumer's identity (drain the queue, set aside to poison, write results) and KEDA's
    (read the queue length: Reader on the work queue, nothing else)."""

    def role(name: str, guid: str, scope: pulumi.Input[str]) -> RoleGrant:
        return RoleGrant(name, role_definition_id(subscription, guid), scope)

    def identity(
        name: str,
        namespace: str,
        service_account: str,
        roles: Sequence[RoleGrant],
        table_roles: Sequence[CosmosTableGrant] = (),
    ) -> WorkloadIdentity:
        return WorkloadIdentity(
            name,
            WorkloadIdentityArgs(
                resource_group_name=resource_group_name,
                location=location,
                oidc_issuer=oidc_issuer,
                namespace=namespace,
                service_account=service_account,
                roles=roles,
                table_roles=table_roles,
                tags=tags,
                id_namespace=id_namespace,
            ),
        )

    consumer = identity(
        "consumer-identity",
        consumer_namespace,
        SERVICE_ACCOUNT,
        roles=[
            role("queue-processor", STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR, work.queue_id),
            RoleGrant("queue-updater", message_updater, work.queue_id),
            role("poison-sender", STORAGE_QUEUE_DATA_MESSAGE_SENDER, work.poison_queue_id),
        ],
        table_roles=[
            CosmosTableGrant(
                "table-writer",
                results.account_name,
                cosmos_table_role_definition_id(results.account_id, COSMOS_TABLE_DATA_CONTRIBUTOR),
                cosmos_table_scope(results.account_id, results.table_name),
                results.resource_group_name,
            )
        ],
    )
    keda = identity(
        "keda-identity",
        KEDA_NAMESPACE,
        KEDA_SERVICE_ACCOUNT,
        roles=[role("queue-reader", STORAGE_QUEUE_DATA_READER, work.queue_id)],
    )
    return consumer, keda
