"""Stack `dev`: Storage Queue + poison queue, Cosmos DB for Table, AKS with NAP and the KEDA
add-on, workload identities, and the consumer on top."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi_azure_native import authorization, cosmosdb, resources
from pulumi_kubernetes import core

from components.app_image import handler_image
from components.azure.alerts import MonitorAlerts, MonitorAlertsArgs
from components.azure.cluster import AksCluster, AksClusterArgs
from components.azure.container_insights import ContainerInsights, ContainerInsightsArgs
from components.azure.heartbeats import (
    Heartbeat,
    HeartbeatAlerts,
    HeartbeatAlertsArgs,
    HeartbeatSink,
    HeartbeatSinkArgs,
)
from components.azure.identity import IdentityFactory
from components.azure.image import AcrConsumerImage, AcrConsumerImageArgs
from components.azure.keda_token import KedaOperatorToken
from components.azure.login import provider_login, token_principal_type
from components.azure.nap import NODE_CLASS as NAP_NODE_CLASS
from components.azure.nap import NapNodeAutoscaling, NapNodeAutoscalingArgs
from components.azure.prometheus import (
    AMA_SETTINGS,
    AzureManagedPrometheus,
    AzurePrometheusArgs,
    LogWorkspace,
)
from components.azure.readiness import ClusterAction
from components.azure.results_table import CosmosResultsTable, CosmosResultsTableArgs, TableRef
from components.azure.roles import MONITORING_METRICS_PUBLISHER, STORAGE_QUEUE_DATA_READER
from components.azure.router import (
    DeadLetterTarget,
    EventGridRouter,
    EventGridRouterArgs,
    EventGridWebhook,
)
from components.azure.router import WebhookArgs as EventGridWebhookArgs
from components.azure.work_queue import POISON_SUFFIX, QueueAccount, QueueAccountArgs
from components.azure.workbook import StackWorkbook, WorkbookArgs
from components.azure.workflow import (
    WORKLOAD_IDENTITY_USE,
    AzureWorkflow,
    AzureWorkflowArgs,
    KedaAccess,
)
from components.k8s.consumer import ConsumerNamespace
from components.k8s.preview import (
    CONSUMER_KINDS,
    Kind,
    PreviewAccess,
    PreviewAccessArgs,
    Subject,
    consumer_cluster_objects,
)
from components.k8s.schedule import PeriodicTask, PeriodicTaskArgs, SystemPlacement
from components.observability.rules import consumer_rules, no_progress_from_replicas
from components.settings import Principal
from components.ticks import missed_tick_window_seconds
from components.workflow import WorkflowCluster
from stacks.config import ConfigError, EdwConfig

TABLE = "results"
# The AKS KEDA add-on runs the operator as kube-system/keda-operator.
KEDA_NAMESPACE = "kube-system"
KEDA_SERVICE_ACCOUNT = "keda-operator"
KEDA_IDENTITY = "keda-identity"
SUFFIX_LENGTH = 8
QUEUE_METRICS = "edw-queue-metrics"  # the CronJob and its service account
QUEUE_METRICS_TASK = "queue-metrics"  # its heartbeats' name
QUEUE_METRICS_SCHEDULE = "* * * * *"
# Periodic tasks run on the system pool, where they start at once.
SYSTEM_NODES = SystemPlacement(
    node_selector={"kubernetes.azure.com/mode": "system"},
    toleration=core.v1.TolerationArgs(
        key="CriticalAddonsOnly", operator="Exists", effect="NoSchedule"
    ),
)
SERVERLESS = "EnableServerless"
# What only the Azure stack manages in the cluster, beyond the common kinds (previewPrincipals).
AKS_NODE_CLASS = Kind("karpenter.azure.com", "aksnodeclasses")
# Observability full: the metrics agent's settings, the one object the program keeps there.
SYSTEM_OBJECTS = {Kind("", "configmaps"): (AMA_SETTINGS,)}


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
            account_name=cosmos_account_name(cfg, subscription),
            table_name=TABLE,
            serverless=cfg.azure.cosmos_serverless,
            deletion_protection=cfg.deletion_protection,
            tags=tags,
            replica_locations=cfg.azure.replica_locations,
        ),
    )
    return TableRef(own.account_name, own.account_id, group, own.table_name, own.table_endpoint)


def cosmos_account_name(cfg: EdwConfig, subscription: str) -> str:
    return globally_unique(cfg, subscription, 44, "-")


def refuse_capacity_change(account_name: str, group: str) -> None:
    """A serverless account stays serverless: Cosmos DB changes an account's capacity mode only
    for the NoSQL, MongoDB, Cassandra and Gremlin APIs, not Table (Cosmos DB "Change capacity
    mode", applies to), so `cosmosServerless: false` on an existing serverless account would fail
    or replace the account and its data. Refused before anything is created."""
    try:
        account = cosmosdb.get_database_account(
            account_name=account_name, resource_group_name=group
        )
    except Exception as exc:
        text = str(exc)
        if "NotFound" in text or "404" in text:
            return  # a new account: provisioned from the start
        raise ConfigError(
            f"cannot tell whether the results table's account {account_name} is serverless "
            f"(reading it failed: {text}); the deployer needs read access to {group}"
        ) from exc
    if any(c.name == SERVERLESS for c in account.capabilities or []):
        raise ConfigError(
            f"edw:cosmosServerless false: the results table's account {account_name} is "
            "serverless, and Cosmos DB for Table cannot change an account's capacity mode; the "
            "program never replaces the table. Way forward: keep cosmosServerless true, or "
            'create a provisioned account and copy the table (docs/resilience.md, "Turning on '
            'replicas")'
        )


def deployer_principals(az_deployers: Sequence[Principal], object_id: str) -> tuple[Principal, ...]:
    """Who gets Kubernetes rights to deploy: the configured deployers, or else the identity
    running this `up` (a person's `az login`), typed from its own token, and said so."""
    if az_deployers:
        return tuple(az_deployers)
    kind = token_principal_type(authorization.get_client_token().token)
    pulumi.log.info(
        f"edw:deployerPrincipals is empty, so the identity running this update ({kind} "
        f"{object_id}) is granted Azure Kubernetes Service RBAC Cluster Admin on the cluster: "
        "the program deploys into the cluster as that identity. List your deploy identities in "
        "edw:deployerPrincipals to grant exactly those, whoever runs `up` (docs/azure.md)."
    )
    return (Principal(kind, object_id),)


def preview_subject(principal: Principal) -> Subject:
    """How the AKS API server names an Entra principal in Kubernetes RBAC: a service principal
    by its object id as a User (kubelogin docs, "Using Service Principal"), a group by its object
    id (AKS, "Use Kubernetes RBAC with Microsoft Entra ID")."""
    return Subject("Group" if principal.type == "Group" else "User", principal.object_id)


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
    if not az.cosmos_serverless and not cfg.existing_results_table:
        refuse_capacity_change(cosmos_account_name(cfg, subscription), f"{cfg.name}-rg")

    group = resources.ResourceGroup(
        "resource-group", resource_group_name=f"{cfg.name}-rg", location=az.location, tags=tags
    )
    account = QueueAccount(
        "queues",
        QueueAccountArgs(
            resource_group_name=group.name,
            location=az.location,
            account_name=globally_unique(cfg, subscription, 24),
            network_default_action=az.storage_network_default_action,
            tags=tags,
        ),
    )
    dead_letters = DeadLetterTarget(
        account.account_id, account.dead_letter_container, account.dead_letter_container_id
    )
    router = event_router(cfg, subscription, group=group.name, dead_letters=dead_letters, tags=tags)
    results = results_table(cfg, subscription, group.name, tags)
    alerts = MonitorAlerts(
        "alerts",
        MonitorAlertsArgs(
            resource_group_name=group.name,
            stack_name=cfg.name,
            emails=cfg.alert_emails,
            router_topic_id=router.topic_id,
            cosmos_account_id=results.account_id,
            queue_account_id=account.account_id,
            work_queues=[w.name for w in cfg.workflows],
            poison_queues=[f"{w.name}{POISON_SUFFIX}" for w in cfg.workflows],
            max_message_age_seconds=cfg.max_message_age_seconds,
            replicated=bool(az.replica_locations),
            tags=tags,
        ),
    )
    full = cfg.observability == "full"
    # The tasks' heartbeats always land here; Container Insights too with observability full.
    logs = LogWorkspace("logs", group.name, az.location, tags)
    heartbeats = HeartbeatSink(
        "heartbeats",
        HeartbeatSinkArgs(
            resource_group_name=group.name,
            location=az.location,
            workspace_name=logs.workspace_name,
            workspace_id=logs.id,
            tags=tags,
        ),
    )
    namespace_name = cfg.consumer.namespace
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
            deployers=deployer_principals(az.deployers, client.object_id),
            runner_object_id=client.object_id,
            previewers=az.previewers,
            tags=tags,
            kubelogin_args=provider_login(os.environ).kubelogin_args(),
            deployer_actions=deployer_actions(namespace_name),
            log_analytics_workspace_id=logs.id if full else None,
        ),
    )
    if full:
        ContainerInsights(
            "container-insights",
            ContainerInsightsArgs(
                resource_group_name=group.name,
                location=az.location,
                cluster_name=cfg.name,
                cluster_id=cluster.cluster.id,
                workspace_id=logs.id,
                tags=tags,
            ),
        )
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
    prometheus = (
        AzureManagedPrometheus(
            "prometheus",
            AzurePrometheusArgs(
                resource_group_name=group.name,
                location=az.location,
                stack_name=cfg.name,
                cluster_id=cluster.cluster.id,
                cluster_name=cluster.cluster_name,
                action_group_id=alerts.action_group_id,
                # The KEDA add-on serves no Prometheus metrics: no progress from replicas.
                rules=no_progress_from_replicas(
                    consumer_rules(cfg.latency_alert_seconds),
                    cfg.consumer.namespace,
                    cfg.workflows,
                ),
                consumer_namespace=cfg.consumer.namespace,
                tags=tags,
            ),
            cluster_opts=on_cluster,
        )
        if full
        else None
    )

    nap = NapNodeAutoscaling(
        "nap",
        NapNodeAutoscalingArgs(nodes=cfg.nodes, cluster=cluster.cluster, tags=tags),
        opts=on_cluster,
    )

    identity = IdentityFactory(
        location=az.location,
        subscription=subscription,
        resource_group_name=group.name,
        oidc_issuer=cluster.oidc_issuer,
        tags=tags,
        id_namespace=f"{subscription}/{cfg.name}",
    )
    # Reader on each work queue, nothing else: each workflow grants it on its own queue.
    keda_identity = identity(KEDA_IDENTITY, KEDA_NAMESPACE, KEDA_SERVICE_ACCOUNT, roles=[])

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
                tenant_id=client.tenant_id,
            ),
        ).image_ref
    )

    namespace = ConsumerNamespace("consumer", cfg.consumer.namespace, opts=on_cluster)
    if az.previewers:
        PreviewAccess(
            "preview-access",
            PreviewAccessArgs(
                name=f"{cfg.prefix}-preview",
                subjects=[preview_subject(p) for p in az.previewers],
                cluster_objects={
                    **consumer_cluster_objects(cfg.consumer.namespace),
                    AKS_NODE_CLASS: [NAP_NODE_CLASS],
                },
                namespaced_kinds={cfg.consumer.namespace: CONSUMER_KINDS},
                foreign_objects={KEDA_NAMESPACE: SYSTEM_OBJECTS} if full else {},
                ready=[namespace],
            ),
            opts=on_cluster,
        )
    kubernetes = WorkflowCluster("azure", cfg.prefix, namespace, image, SYSTEM_NODES)
    keda = KedaAccess(keda_identity, KEDA_IDENTITY, keda_token)
    workflows = {
        w.name: AzureWorkflow(
            w.name,
            AzureWorkflowArgs(
                workflow=w,
                resource_group_name=group.name,
                subscription_id=subscription,
                queue_account=account,
                router=router,
                dead_letters=dead_letters,
                table=results,
                identities=identity,
                keda=keda,
                heartbeats=heartbeats,
                cluster=kubernetes,
                node_pools=nap.node_pools,
                image_pull=cluster.acr_pull,
                handler_image=handler_image(
                    w,
                    lambda name, context: (
                        AcrConsumerImage(
                            name,
                            AcrConsumerImageArgs(
                                registry_id=cluster.registry_id,
                                login_server=cluster.registry_login_server,
                                tenant_id=client.tenant_id,
                                repository=f"edw-{name}",  # edw-<workflow>-handler-image
                                context=context,
                            ),
                        ).image_ref
                    ),
                ),
            ),
            opts=on_cluster,
        )
        for w in cfg.workflows
    }
    beats = [wf.heartbeat for wf in workflows.values() if wf.heartbeat]

    workbook = StackWorkbook(
        "workbook",
        WorkbookArgs(
            resource_group_name=group.name,
            location=az.location,
            stack_name=cfg.name,
            id_namespace=f"{subscription}/{cfg.name}",
            tenant_id=client.tenant_id,
            queue_account_id=account.account_id,
            router_topic_id=router.topic_id,
            cosmos_account_id=results.account_id,
        ),
    )
    metrics_task = queue_metrics(
        cfg,
        identity=identity,
        account=account,
        workflows=workflows,
        heartbeats=heartbeats,
        namespace=namespace.namespace,
        image=image,
        platform=[cluster.acr_pull],
        opts=on_cluster,
    )
    window = missed_tick_window_seconds(QUEUE_METRICS_SCHEDULE)
    beats.append(Heartbeat(QUEUE_METRICS_TASK, window, metrics_task.first_beat))
    HeartbeatAlerts(
        "heartbeat-alerts",
        HeartbeatAlertsArgs(
            resource_group_name=group.name,
            location=az.location,
            stack_name=cfg.name,
            workspace_id=logs.id,
            action_group_id=alerts.action_group_id,
            heartbeats=beats,
            tags=tags,
        ),
    )

    first = cfg.workflows[0].name
    return {
        "location": az.location,
        "subscriptionId": subscription,
        "resourceGroup": group.name,
        "storageAccount": account.account_name,
        # The first workflow's queue: what single-queue tools and earlier releases read.
        "queueName": workflows[first].queue_name,
        "poisonQueueName": workflows[first].poison_queue_name,
        "routerEndpoint": router.endpoint,
        # Where the router dead-letters (tools.redrive and tools.replay read it).
        "routerDeadLetterContainer": account.dead_letter_container,
        # Attach your own receivers (chat, pager) to it; e-mails come from edw:alertEmails.
        "actionGroupId": alerts.action_group_id,
        "workbookUrl": workbook.url,
        # What each partner checks in the Authorization header (docs/routing.md).
        **(
            {"webhookSecrets": pulumi.Output.secret(dict(router.webhook_secrets))}
            if cfg.webhooks
            else {}
        ),
        **({"prometheusWorkspaceId": prometheus.workspace_id} if prometheus else {}),
        "routerTopicId": router.topic_id,
        "workflows": {
            name: {
                "queueName": wf.queue_name,
                "poisonQueueName": wf.poison_queue_name,
                "consumer": wf.consumer_name,
                "consumerClientId": wf.consumer_client_id,
            }
            for name, wf in workflows.items()
        },
        "tableEndpoint": results.table_endpoint,
        "tableName": results.table_name,
        # What a recovery stack's edw:existingResultsTable takes (docs/resilience.md).
        "tableId": pulumi.Output.concat(results.account_id, "/tables/", results.table_name),
        "clusterName": cluster.cluster_name,
        # NAP's VMs live here; AKS deletes this group with the cluster.
        "nodeResourceGroup": cluster.node_resource_group,
        "kubeconfig": cluster.kubeconfig,
        "registry": cluster.registry_login_server,
        "consumerNamespace": namespace.namespace,
        "consumerClientId": workflows[first].consumer_client_id,
        "kedaClientId": keda_identity.client_id,
        "image": image,
    }


def deployer_actions(namespace: str) -> list[ClusterAction]:
    """What the program does on the cluster as the deployer (probed before the first object)."""
    return [
        ClusterAction("create", "namespaces"),
        ClusterAction("create", "nodepools", "karpenter.sh"),
        ClusterAction("create", "aksnodeclasses", "karpenter.azure.com"),
        ClusterAction("create", "deployments", "apps", namespace),
        ClusterAction("create", "scaledobjects", "keda.sh", namespace),
        ClusterAction("create", "roles", "rbac.authorization.k8s.io", namespace),
        # The KEDA token check restarts the add-on's operator pods.
        ClusterAction("delete", "pods", "", KEDA_NAMESPACE),
        ClusterAction("create", "configmaps", "", KEDA_NAMESPACE),
    ]


def event_router(
    cfg: EdwConfig,
    subscription: str,
    *,
    group: pulumi.Input[str],
    dead_letters: DeadLetterTarget,
    tags: Mapping[str, str],
) -> EventGridRouter:
    """The Event Grid topic and the webhooks (each workflow subscribes its own queue)."""
    assert cfg.azure is not None
    router = EventGridRouter(
        "router",
        EventGridRouterArgs(
            resource_group_name=group,
            location=cfg.azure.location,
            topic_name=globally_unique(cfg, subscription, 50, "-"),
            subscription_id=subscription,
            publishers=cfg.azure.router_publishers,
            dead_letters=dead_letters,
            # Follows the storage account's network default (Deny is refused until private
            # endpoints exist, see stacks/config.py).
            public_network="Enabled"
            if cfg.azure.storage_network_default_action == "Allow"
            else "Disabled",
            tags=tags,
        ),
    )
    for hook in cfg.webhooks:
        router.webhook_secrets[hook.name] = EventGridWebhook(
            f"webhook-{hook.name}",
            EventGridWebhookArgs(
                topic_id=router.topic_id,
                subscription_name=f"webhook-{hook.name}",
                url=hook.url,
                dead_letters=dead_letters,
                filter=hook.filter,
                ready=[router.dead_letter_grant],
            ),
        ).secret
    return router


def queue_metrics(
    cfg: EdwConfig,
    *,
    identity: IdentityFactory,
    account: QueueAccount,
    workflows: Mapping[str, AzureWorkflow],
    heartbeats: HeartbeatSink,
    namespace: pulumi.Input[str],
    image: pulumi.Input[str],
    platform: Sequence[pulumi.Resource],
    opts: pulumi.ResourceOptions,
) -> PeriodicTask:
    """Every minute, each queue's depth and oldest age to Azure Monitor (what the poison-queue
    and backlog alerts watch), and a heartbeat (what the alert on the job itself watches):
    read-only on the queues, publish metrics on the account and heartbeats on their rule."""
    assert cfg.azure is not None
    names = [n for w in cfg.workflows for n in (w.name, f"{w.name}{POISON_SUFFIX}")]
    publisher = identity(
        "queue-metrics-identity",
        cfg.consumer.namespace,
        QUEUE_METRICS,
        roles=[
            *(
                identity.role(f"{w.resource_name(kind)}-reader", STORAGE_QUEUE_DATA_READER, q)
                for w in cfg.workflows
                for kind, q in (
                    ("queue", workflows[w.name].queue_id),
                    ("poison", workflows[w.name].poison_queue_id),
                )
            ),
            identity.role("metrics-publisher", MONITORING_METRICS_PUBLISHER, account.account_id),
            heartbeats.sender(identity),
        ],
    )
    return PeriodicTask(
        "queue-metrics",
        PeriodicTaskArgs(
            k8s_name=QUEUE_METRICS,
            schedule=QUEUE_METRICS_SCHEDULE,
            module="app.queue_metrics",
            namespace=namespace,
            image=image,
            env={
                "EDW_CLOUD": "azure",
                "EDW_STORAGE_ACCOUNT": account.account_name,
                "EDW_QUEUES": ",".join(names),
                "EDW_METRICS_RESOURCE_ID": account.account_id,
                "EDW_METRICS_REGION": cfg.azure.location,
                **heartbeats.env,
            },
            service_account_annotations={"azure.workload.identity/client-id": publisher.client_id},
            service_account_labels=WORKLOAD_IDENTITY_USE,
            pod_labels=WORKLOAD_IDENTITY_USE,
            system_nodes=SYSTEM_NODES,
            heartbeat_task=QUEUE_METRICS_TASK,
            platform=[publisher, *platform],
        ),
        opts=opts,
    )
