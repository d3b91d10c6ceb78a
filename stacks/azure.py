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
from components.azure.identity import (
    CosmosTableGrant,
    RoleGrant,
    WorkloadIdentity,
    WorkloadIdentityArgs,
)
from components.azure.image import AcrConsumerImage, AcrConsumerImageArgs
from components.azure.keda_token import KedaOperatorToken
from components.azure.login import provider_login, token_principal_type
from components.azure.nap import NapNodeAutoscaling, NapNodeAutoscalingArgs
from components.azure.prometheus import AzureManagedPrometheus, AzurePrometheusArgs, LogWorkspace
from components.azure.readiness import ClusterAction
from components.azure.results_table import CosmosResultsTable, CosmosResultsTableArgs
from components.azure.roles import (
    COSMOS_TABLE_DATA_CONTRIBUTOR,
    EVENTGRID_DATA_SENDER,
    MONITORING_METRICS_PUBLISHER,
    STORAGE_QUEUE_DATA_CONTRIBUTOR,
    STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR,
    STORAGE_QUEUE_DATA_MESSAGE_SENDER,
    STORAGE_QUEUE_DATA_READER,
    cosmos_table_role_definition_id,
    cosmos_table_scope,
    role_definition_id,
)
from components.azure.router import (
    DeadLetterTarget,
    EventGridQueueSubscription,
    EventGridRouter,
    EventGridRouterArgs,
    EventGridWebhook,
    QueueSubscriptionArgs,
)
from components.azure.router import WebhookArgs as EventGridWebhookArgs
from components.azure.work_queue import (
    POISON_SUFFIX,
    QueueAccount,
    QueueAccountArgs,
    StorageWorkQueue,
    StorageWorkQueueArgs,
)
from components.azure.workbook import StackWorkbook, WorkbookArgs
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
from components.observability.rules import consumer_rules, no_progress_from_replicas
from components.settings import Principal
from components.ticks import missed_tick_window_seconds
from stacks.config import ConfigError, EdwConfig
from stacks.shared import schedule_env, schedule_task, schedule_window, task_name

TABLE = "results"
# The AKS KEDA add-on runs the operator as kube-system/keda-operator.
KEDA_NAMESPACE = "kube-system"
KEDA_SERVICE_ACCOUNT = "keda-operator"
WORKLOAD_IDENTITY_USE = {"azure.workload.identity/use": "true"}
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
SYSTEM_KINDS = (Kind("", "configmaps"),)  # observability full: the metrics agent's settings


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


def deployer_principals(az_deployers: Sequence[Principal], object_id: str) -> dict[str, Principal]:
    """Who gets Kubernetes rights to deploy, by child-name suffix: the configured deployers, or
    else the identity running this `up` (a person's `az login`), typed from its own token."""
    if az_deployers:
        return {p.object_id[:8]: p for p in az_deployers}
    token = authorization.get_client_token().token
    # "admin": the name this grant always had, so a lab stack's grant is never replaced.
    return {"admin": Principal(token_principal_type(token), object_id)}


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
    queues = {
        w.name: StorageWorkQueue(
            w.name,
            StorageWorkQueueArgs(
                resource_group_name=group.name,
                account_name=account.account_name,
                queue_name=w.name,
            ),
        )
        for w in cfg.workflows
    }
    router = event_router(
        cfg, subscription, group=group.name, account=account, queues=queues, tags=tags
    )
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
    beats: list[Heartbeat] = []
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
    keda_identity = identity(
        "keda-identity",
        KEDA_NAMESPACE,
        KEDA_SERVICE_ACCOUNT,
        # Reader on each work queue, nothing else.
        roles=[
            identity.role(w.resource_name("queue-reader"), STORAGE_QUEUE_DATA_READER, q.queue_id)
            for w, q in ((w, queues[w.name]) for w in cfg.workflows)
        ],
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
                cluster_kinds=(*CLUSTER_KINDS, AKS_NODE_CLASS),
                namespaced_kinds={
                    cfg.consumer.namespace: CONSUMER_KINDS,
                    **({KEDA_NAMESPACE: SYSTEM_KINDS} if full else {}),
                },
                ready=[namespace],
            ),
            opts=on_cluster,
        )
    consumer_identities = {}
    for w in cfg.workflows:
        queue = queues[w.name]
        consumer_identity = identity(
            w.resource_name("consumer-identity"),
            cfg.consumer.namespace,
            w.k8s_name,
            # Drain its own queue (Get, Update and Delete Message: Queue Data Contributor is the
            # one built-in role with messages/write, which Update Message needs), set aside to
            # its own poison queue and remove what it put there when the envelope fails
            # (Message Sender + Processor). Actions per operation: Azure Storage REST,
            # "Authorize with Microsoft Entra ID", permissions for queue data operations.
            roles=[
                identity.role("queue-contributor", STORAGE_QUEUE_DATA_CONTRIBUTOR, queue.queue_id),
                identity.role(
                    "poison-sender", STORAGE_QUEUE_DATA_MESSAGE_SENDER, queue.poison_queue_id
                ),
                identity.role(
                    "poison-processor",
                    STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR,
                    queue.poison_queue_id,
                ),
                # Handler: what it emits is published to the router (docs/handlers.md).
                *(
                    [identity.role("router-sender", EVENTGRID_DATA_SENDER, router.topic_id)]
                    if w.handler
                    else []
                ),
            ],
            table_roles=[table_writer(results)],
        )
        consumer_identities[w.name] = consumer_identity
        ConsumerDeployment(
            w.resource_name("consumer"),
            ConsumerDeploymentArgs(
                cloud="azure",
                workflow=w,
                namespace=namespace.namespace,
                image=image,
                backend_env={
                    "EDW_QUEUE": queue.queue_name,
                    "EDW_DEAD_LETTER_QUEUE": queue.poison_queue_name,
                    "EDW_TABLE": results.table_name,
                    "EDW_STORAGE_ACCOUNT": account.account_name,
                    "EDW_TABLE_ENDPOINT": results.table_endpoint,
                },
                trigger=QueueTrigger(
                    type="azure-queue",
                    metadata={
                        "accountName": account.account_name,
                        "queueName": queue.queue_name,
                        # ApproximateMessagesCount: includes in-flight (invisible) messages.
                        "queueLengthStrategy": "all",
                        "cloud": "AzurePublicCloud",
                    },
                    # The add-on's operator exchanges its own token for the KEDA identity.
                    pod_identity={
                        "provider": "azure-workload",
                        "identityId": keda_identity.client_id,
                    },
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
                # Handler: its image, and the router the consumer publishes emitted events to.
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
                router_env={"EDW_ROUTER": router.endpoint},
            ),
            opts=on_cluster,
        )
        if w.schedule:
            schedule_identity = identity(
                w.resource_name("schedule-identity"),
                cfg.consumer.namespace,
                f"{w.k8s_name}-schedule",
                # Publish to the router and its heartbeats, nothing else.
                roles=[
                    identity.role("router-sender", EVENTGRID_DATA_SENDER, router.topic_id),
                    identity.role(
                        "heartbeat-sender", MONITORING_METRICS_PUBLISHER, heartbeats.rule_id
                    ),
                ],
            )
            task = PeriodicTask(
                w.resource_name("schedule"),
                PeriodicTaskArgs(
                    **schedule_task(cfg, w),
                    namespace=namespace.namespace,
                    image=image,
                    env={
                        **schedule_env("azure", cfg, w),
                        **heartbeats.env,
                        "EDW_ROUTER": router.endpoint,
                    },
                    system_nodes=SYSTEM_NODES,
                    service_account_annotations={
                        "azure.workload.identity/client-id": schedule_identity.client_id
                    },
                    service_account_labels=WORKLOAD_IDENTITY_USE,
                    pod_labels=WORKLOAD_IDENTITY_USE,
                    platform=[schedule_identity, cluster.acr_pull],
                ),
                opts=on_cluster,
            )
            beats.append(Heartbeat(task_name(w), schedule_window(w), task.first_beat))

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
        queues=queues,
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
        "queueName": queues[first].queue_name,
        "poisonQueueName": queues[first].poison_queue_name,
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
            w.name: {
                "queueName": queues[w.name].queue_name,
                "poisonQueueName": queues[w.name].poison_queue_name,
                "consumerClientId": consumer_identities[w.name].client_id,
            }
            for w in cfg.workflows
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
        "consumerClientId": consumer_identities[first].client_id,
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


def table_writer(results: TableRef) -> CosmosTableGrant:
    return CosmosTableGrant(
        "table-writer",
        results.account_name,
        cosmos_table_role_definition_id(results.account_id, COSMOS_TABLE_DATA_CONTRIBUTOR),
        cosmos_table_scope(results.account_id, results.table_name),
        results.resource_group_name,
    )


@dataclass(frozen=True)
class IdentityFactory:
    """Workload identities of this stack: the consumers' (each drains its own queue, sets aside
    to its own poison queue, writes results) and KEDA's (reads the queue lengths)."""

    location: str
    subscription: str
    resource_group_name: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    tags: Mapping[str, str]
    id_namespace: str

    def role(self, name: str, guid: str, scope: pulumi.Input[str]) -> RoleGrant:
        return RoleGrant(name, role_definition_id(self.subscription, guid), scope)

    def __call__(
        self,
        name: str,
        namespace: str,
        service_account: str,
        roles: Sequence[RoleGrant],
        table_roles: Sequence[CosmosTableGrant] = (),
    ) -> WorkloadIdentity:
        return WorkloadIdentity(
            name,
            WorkloadIdentityArgs(
                resource_group_name=self.resource_group_name,
                location=self.location,
                oidc_issuer=self.oidc_issuer,
                namespace=namespace,
                service_account=service_account,
                roles=roles,
                table_roles=table_roles,
                tags=self.tags,
                id_namespace=self.id_namespace,
            ),
        )


def event_router(
    cfg: EdwConfig,
    subscription: str,
    *,
    group: pulumi.Input[str],
    account: QueueAccount,
    queues: Mapping[str, StorageWorkQueue],
    tags: Mapping[str, str],
) -> EventGridRouter:
    """The Event Grid topic, each workflow's subscription to its queue and the webhooks."""
    assert cfg.azure is not None
    dead_letters = DeadLetterTarget(
        account.account_id, account.dead_letter_container, account.dead_letter_container_id
    )
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
    for w in cfg.workflows:
        EventGridQueueSubscription(
            w.resource_name("route"),
            QueueSubscriptionArgs(
                topic_id=router.topic_id,
                topic_principal_id=router.principal_id,
                subscription_id=subscription,
                subscription_name=w.name,
                account_id=account.account_id,
                queue_name=queues[w.name].queue_name,
                queue_id=queues[w.name].queue_id,
                dead_letters=dead_letters,
                filter=w.filter,
                ready=[router.dead_letter_grant],
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
    queues: Mapping[str, StorageWorkQueue],
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
                    ("queue", queues[w.name].queue_id),
                    ("poison", queues[w.name].poison_queue_id),
                )
            ),
            identity.role("metrics-publisher", MONITORING_METRICS_PUBLISHER, account.account_id),
            identity.role("heartbeat-sender", MONITORING_METRICS_PUBLISHER, heartbeats.rule_id),
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
