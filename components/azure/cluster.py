"""AKS with node auto-provisioning, the KEDA add-on and workload identity, plus its registry.

The cluster runs only a small on-demand system pool (tainted for critical add-ons); consumer
nodes come from NAP (AKS-managed Karpenter), which needs Azure CNI overlay with Cilium. Access is
Entra ID with Azure RBAC: the program always talks to the cluster as the deployer through
kubelogin and never fetches the admin credential (local accounts are off unless config keeps them
for break-glass use outside the program).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_azure_native import authorization, containerregistry, containerservice

from components.azure.readiness import ClusterAction, cluster_access_effective
from components.azure.roles import (
    ACR_PULL,
    AKS_CLUSTER_USER,
    AKS_RBAC_CLUSTER_ADMIN,
    grant_name,
    role_definition_id,
)
from components.settings import AzureSettings, Principal

SYSTEM_POOL = "system"
SYSTEM_TAINT = "CriticalAddonsOnly=true:NoSchedule"
OPEN_TO_ALL = "0.0.0.0/0"
# Application id of the "Azure Kubernetes Service AAD Server" app: the audience of Entra tokens
# for every AKS API server (what `kubelogin convert-kubeconfig` puts in --server-id).
AKS_AAD_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


@dataclass(frozen=True)
class AksClusterArgs:
    resource_group_name: pulumi.Input[str]
    cluster_name: str
    registry_name: str  # globally unique, 5-50 chars of a-zA-Z0-9
    kubernetes_version: str
    system_node_count: int
    api_allowed_cidrs: Sequence[str]
    settings: AzureSettings
    subscription_id: str
    # Who deploys (AKS RBAC Cluster Admin on this cluster); each grant is named by the first 8
    # characters of its principal's object id.
    deployers: Sequence[Principal]
    tags: Mapping[str, str]
    # How kubelogin gets the deployer's token: the way the provider authenticates
    # (components/azure/login.py ProviderLogin.kubelogin_args()).
    kubelogin_args: Sequence[str]
    # What the program does on the cluster: checked, as the deployer, before the first object.
    deployer_actions: Sequence[ClusterAction] = ()
    # Who previews: may list the cluster's user credentials (their Kubernetes rights are
    # granted in the cluster: components/k8s/preview.py).
    previewers: Sequence[Principal] = ()
    # observability full: the Log Analytics workspace Container Insights writes to; set, the
    # cluster also turns on its managed Prometheus metrics (the AKS metrics profile).
    log_analytics_workspace_id: pulumi.Input[str] | None = None
    # The object id of the identity running this `up`: its deployer grant takes over the one
    # the stack named "deployer-admin" before grants were named by object id.
    runner_object_id: str = ""


class AksCluster(pulumi.ComponentResource):
    """ManagedCluster + container registry (AcrPull for the kubelet) + a Kubernetes provider."""

    cluster: containerservice.ManagedCluster
    cluster_name: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    node_resource_group: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    registry_login_server: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:AksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_name_=args.cluster_name,
            resource_group_name=args.resource_group_name,
            location=s.location,
            dns_prefix=args.cluster_name,
            node_resource_group=f"{args.cluster_name}-nodes",
            kubernetes_version=args.kubernetes_version,
            # Standard tier: an API server SLA, and room for the watch load of KEDA and NAP.
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier="Standard"),
            identity=containerservice.ManagedClusterIdentityArgs(type="SystemAssigned"),
            agent_pool_profiles=[system_pool(args)],
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_dataplane="cilium",
                network_policy="cilium",
                load_balancer_sku="standard",
            ),
            # NAP: AKS runs Karpenter; only our NodePools exist (no AKS default pools).
            node_provisioning_profile=containerservice.ManagedClusterNodeProvisioningProfileArgs(
                mode="Auto", default_node_pools="None"
            ),
            workload_auto_scaler_profile=containerservice.ManagedClusterWorkloadAutoScalerProfileArgs(
                keda=containerservice.ManagedClusterWorkloadAutoScalerProfileKedaArgs(enabled=True)
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            **monitoring(args.log_analytics_workspace_id),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                ),
                image_cleaner=containerservice.ManagedClusterSecurityProfileImageCleanerArgs(
                    enabled=True, interval_hours=168
                ),
            ),
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True,
                enable_azure_rbac=True,
                admin_group_object_ids=list(s.admin_group_object_ids),
            ),
            disable_local_accounts=s.disable_local_accounts,
            api_server_access_profile=api_server_access(args.api_allowed_cidrs),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel="patch", node_os_upgrade_channel="NodeImage"
            ),
            tags=dict(args.tags),
            opts=child,
        )
        registry = containerregistry.Registry(
            f"{name}-acr",
            registry_name=args.registry_name,
            resource_group_name=args.resource_group_name,
            location=s.location,
            sku=containerregistry.SkuArgs(name="Standard"),
            # Entra ID only: pushes use the deployer's token, pulls the kubelet identity.
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            tags=dict(args.tags),
            opts=child,
        )
        kubelet_object_id = cluster.identity_profile.apply(
            lambda p: p["kubeletidentity"].object_id if p else None
        )
        # Consumer pods pull from the registry as the kubelet identity.
        self.acr_pull = authorization.RoleAssignment(
            f"{name}-acr-pull",
            principal_id=kubelet_object_id,
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(args.subscription_id, ACR_PULL),
            scope=registry.id,
            opts=child,
        )

        def grant(
            kind: str,
            principal: Principal,
            among: Sequence[Principal],
            role: str,
            aliases: Sequence[pulumi.Alias] = (),
        ) -> pulumi.Resource:
            resource_name, former = grant_name(f"{name}-{kind}", principal, among)
            return authorization.RoleAssignment(
                resource_name,
                principal_id=principal.object_id,
                principal_type=principal.type,
                role_definition_id=role_definition_id(args.subscription_id, role),
                scope=cluster.id,
                opts=pulumi.ResourceOptions(parent=self, aliases=[*former, *aliases]),
            )

        # The deployer creates NodePools and the consumer: Kubernetes rights through Azure RBAC
        # on this cluster only. Cluster Admin, because RBAC Admin may not create namespaces
        # (its NotDataActions: namespaces/write; MicrosoftDocs/azure-docs
        # built-in-roles/containers.md).
        # Named by object id, so a principal keeps its grant whether it is configured or the
        # identity running `up`: a second assignment of the same principal, role and scope under
        # another name is refused (RoleAssignmentExists) while the old one still exists.
        grants = [
            grant(
                "deployer",
                principal,
                args.deployers,
                AKS_RBAC_CLUSTER_ADMIN,
                former_admin_name(name, principal, args.runner_object_id),
            )
            for principal in args.deployers
        ]
        # Previewers: listClusterUserCredential/action, and nothing else in Azure.
        for principal in args.previewers:
            grant("previewer", principal, args.previewers, AKS_CLUSTER_USER)
        self.kubeconfig = pulumi.Output.secret(
            cluster_kubeconfig(args.resource_group_name, cluster.name, args.kubelogin_args)
        )
        # The deployer's grant takes minutes to reach the API server: the first objects would
        # get 403. Ask the API server, for each thing the program does, until it agrees.
        access = cluster_access_effective(
            f"{name}-access-effective",
            self.kubeconfig,
            args.deployer_actions,
            pulumi.ResourceOptions(
                parent=self,
                depends_on=grants,
                aliases=[pulumi.Alias(name=f"{name}-admin-effective")],
            ),
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access]),
        )
        self.cluster = cluster
        self.cluster_name = cluster.name
        self.oidc_issuer = cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else None)
        self.node_resource_group = cluster.node_resource_group.apply(lambda g: g or "")
        self.registry_id = registry.id
        self.registry_login_server = registry.login_server
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "oidc_issuer": self.oidc_issuer,
                "registry_login_server": self.registry_login_server,
                "kubeconfig": self.kubeconfig,
            }
        )


def former_admin_name(name: str, principal: Principal, runner_object_id: str) -> list[pulumi.Alias]:
    """The grant's name before grants were named by object id: the identity running `up`
    without configured deployers had "deployer-admin", and most likely still runs it. If someone
    else held it, the changed principal replaces the assignment (pulumi-azure-native#1010), the
    new one created first, which ARM allows for a different principal; that holder's own new
    grant is the gap docs/azure.md describes ("Renaming the deployer grant")."""
    if principal.object_id != runner_object_id:
        return []
    return [pulumi.Alias(name=f"{name}-deployer-admin")]


def system_pool(args: AksClusterArgs) -> containerservice.ManagedClusterAgentPoolProfileArgs:
    """On-demand pool for AKS add-ons (KEDA, NAP's own pods, CoreDNS...), never for consumers."""
    return containerservice.ManagedClusterAgentPoolProfileArgs(
        name=SYSTEM_POOL,
        mode="System",
        type="VirtualMachineScaleSets",
        vm_size=args.settings.system_vm_size,
        count=args.system_node_count,
        os_type="Linux",
        os_sku="AzureLinux",
        scale_set_priority="Regular",
        node_taints=[SYSTEM_TAINT],
        upgrade_settings=containerservice.AgentPoolUpgradeSettingsArgs(max_surge="33%"),
    )


def api_server_access(
    cidrs: Sequence[str],
) -> containerservice.ManagedClusterAPIServerAccessProfileArgs | None:
    """Authorized IP ranges, unless the config leaves the API open to everyone."""
    if OPEN_TO_ALL in cidrs:
        return None
    return containerservice.ManagedClusterAPIServerAccessProfileArgs(
        authorized_ip_ranges=list(cidrs)
    )


def cluster_kubeconfig(
    resource_group_name: pulumi.Input[str],
    cluster_name: pulumi.Input[str],
    kubelogin_args: Sequence[str],
) -> pulumi.Output[str]:
    """The kubeconfig the Kubernetes provider uses and the stack exports: the user credentials
    (no secret in them: Entra authenticates), the user switched to a kubelogin exec plugin (what
    `kubelogin convert-kubeconfig -l <mode>` does). Never the admin credentials."""
    creds = containerservice.list_managed_cluster_user_credentials_output(
        resource_group_name=resource_group_name, resource_name=cluster_name
    )
    return creds.kubeconfigs.apply(
        lambda k: kubelogin_kubeconfig(_decode(k[0].value), kubelogin_args)
    )


def _decode(value: str) -> str:
    return base64.b64decode(value).decode()


def kubelogin_kubeconfig(kubeconfig_yaml: str, login: Sequence[str]) -> str:
    """Rewrite every user of an AKS user kubeconfig to a kubelogin exec plugin."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig_yaml)
    for user in config.get("users", []):
        user["user"] = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "kubelogin",
                "args": ["get-token", *login, "--server-id", AKS_AAD_SERVER_ID],
                "interactiveMode": "Never",
                "provideClusterInfo": False,
            }
        }
    return json.dumps(config)


def monitoring(log_analytics_workspace_id: pulumi.Input[str] | None) -> dict[str, object]:
    """Managed Prometheus metrics (collected into the Azure Monitor workspace its data collection
    rule names) and Container Insights logs (Entra auth to the workspace), or nothing."""
    if log_analytics_workspace_id is None:
        return {}
    return {
        "azure_monitor_profile": containerservice.ManagedClusterAzureMonitorProfileArgs(
            metrics=containerservice.ManagedClusterAzureMonitorProfileMetricsArgs(enabled=True)
        ),
        "addon_profiles": {
            "omsagent": containerservice.ManagedClusterAddonProfileArgs(
                enabled=True,
                config={
                    "logAnalyticsWorkspaceResourceID": log_analytics_workspace_id,
                    "useAADAuth": "true",
                },
            )
        },
    }
