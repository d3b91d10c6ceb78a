"""The EKS cluster (pulumi-eks), who may reach it (access entries), and its small on-demand
system node group."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_eks as eks
import pulumi_kubernetes as k8s
from pulumi_aws import cloudwatch, iam, kms
from pulumi_aws import eks as aws_eks

from components.aws.iam import EC2_TRUST, assume_role_trust
from components.aws.irsa import ClusterOidc
from components.aws.principals import principal_key, same_principal
from components.versions import COREDNS_ADDON, KUBE_PROXY_ADDON

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
SYSTEM_POOL_LABEL = {"edw/pool": "system"}
# KEDA, Karpenter and CoreDNS tolerate this; consumer pods do not, so they never land here.
SYSTEM_TAINT_KEY = "CriticalAddonsOnly"
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# The node role's managed policies, as Karpenter v1.14.1's CloudFormation template gives its node
# role (tests/reference/karpenter-aws/cloudformation.yaml, KarpenterNodeRole): image pulls only.
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
# The identity that created the cluster, as a tag on it: EKS gave it an admin access entry of its
# own (pulumi-eks sets bootstrapClusterCreatorAdminPermissions), so the program never declares
# another one for it (a second entry for a principal fails with 409 ResourceInUseException).
CREATOR_TAG = "edw/creator"
# The Kubernetes group previewers' access entries map to (components/k8s/preview.py binds it).
PREVIEW_GROUP = "edw-previewers"


def digest(value: str) -> str:
    """A stable short key for a resource named after ``value`` rather than a list position:
    reordering or removing list entries leaves every other resource's URN alone."""
    return hashlib.sha256(value.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class ClusterAccess:
    """Who may reach the Kubernetes API besides the cluster's creator."""

    admin_arns: Sequence[str]  # cluster-admin: whoever runs `up` or `destroy`
    preview_arns: Sequence[str] = ()  # the PREVIEW_GROUP's rights only
    creator: str = ""  # the principal EKS made admin at creation ("" for older clusters: unknown)


@dataclass(frozen=True)
class EksClusterArgs:
    cluster_name: str
    kubernetes_version: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    api_allowed_cidrs: Sequence[str]
    system_instance_type: str
    system_node_count: int
    access: ClusterAccess
    tags: Mapping[str, str]
    log_retention_days: int
    aws_profile: str = ""  # the stack's aws:profile, so `aws eks get-token` runs as it too
    # The control-plane log group exists while the cluster does not (a previous incarnation's,
    # kept by `destroy` or recreated by EKS from late logs): adopt it instead of creating it.
    adopt_log_group: bool = False


def node_role(
    name: str, tags: Mapping[str, str], parent: pulumi.Resource, description: str
) -> tuple[iam.Role, list[iam.RolePolicyAttachment]]:
    """An EC2 node role with the managed policies every EKS node needs."""
    role = iam.Role(
        name,
        assume_role_policy=assume_role_trust(EC2_TRUST),
        description=description,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    attachments = [
        iam.RolePolicyAttachment(
            f"{name}-{policy}",
            role=role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}",
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for policy in NODE_POLICIES
    ]
    return role, attachments


class EksCluster(pulumi.ComponentResource):
    """EKS with API auth mode, IRSA, logging, KMS secrets encryption and system nodes."""

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc: ClusterOidc
    cluster_security_group_id: pulumi.Output[str]
    provider: k8s.Provider
    system_nodes: aws_eks.NodeGroup
    coredns: aws_eks.Addon

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        secrets_key = kms.Key(
            f"{name}-secrets-key",
            description=f"EKS secrets encryption for {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            tags=tags,
            opts=child,
        )
        log_group = control_plane_log_group(name, args, self)
        creator = {CREATOR_TAG: args.access.creator} if args.access.creator else {}
        cluster = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            authentication_mode=eks.AuthenticationMode.API,
            # The kubeconfig's `aws eks get-token` must run as the identity Pulumi uses, or the
            # Kubernetes provider calls the cluster as whoever the default chain finds.
            provider_credential_opts=(
                eks.KubeconfigOptionsArgs(profile_name=args.aws_profile)
                if args.aws_profile
                else None
            ),
            # The network policy agent enforces the consumer namespace's NetworkPolicies.
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(
                version=KUBE_PROXY_ADDON[args.kubernetes_version]
            ),
            create_oidc_provider=True,
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            encryption_config_key_arn=secrets_key.arn,
            endpoint_private_access=True,
            endpoint_public_access=True,
            public_access_cidrs=list(args.api_allowed_cidrs),
            # Nodes come from the managed group below and from Karpenter, which both use the
            # EKS-created cluster security group.
            skip_default_node_group=True,
            skip_default_security_groups=True,
            # CoreDNS needs nodes to become healthy; it is installed after the system nodes below.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            cluster_tags=creator or None,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        # The cluster name is fixed up front (subnets and policies need it before the cluster
        # exists); resolving it through the cluster makes everything that uses it wait for it.
        self.cluster_name = cluster.kubeconfig_json.apply(lambda _: args.cluster_name)
        access_entries(name, cluster, self.cluster_name, args, self)
        role, attachments = node_role(f"{name}-system-node", tags, self, "EKS system nodes")
        # EKS creates the access entry for a managed node group's role by itself.
        self.system_nodes = aws_eks.NodeGroup(
            f"{name}-system",
            cluster_name=self.cluster_name,
            node_role_arn=role.arn,
            subnet_ids=args.private_subnet_ids,
            instance_types=[args.system_instance_type],
            capacity_type="ON_DEMAND",
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config=aws_eks.NodeGroupScalingConfigArgs(
                desired_size=args.system_node_count,
                min_size=args.system_node_count,
                max_size=args.system_node_count + 1,
            ),
            update_config=aws_eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=SYSTEM_POOL_LABEL,
            taints=[
                aws_eks.NodeGroupTaintArgs(key=SYSTEM_TAINT_KEY, value="true", effect="NO_SCHEDULE")
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
        # Kept on destroy (preserve), as pulumi-eks keeps its own CoreDNS: Karpenter, which
        # depends on this add-on, still drains nodes while the stack goes, and needs DNS for it.
        self.coredns = aws_eks.Addon(
            f"{name}-coredns",
            cluster_name=self.cluster_name,
            addon_name="coredns",
            addon_version=COREDNS_ADDON[args.kubernetes_version],
            preserve=True,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.system_nodes]),
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=cluster.kubeconfig_json,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.oidc = ClusterOidc(provider_arn=cluster.oidc_provider_arn, issuer=cluster.oidc_issuer)
        self.cluster_security_group_id = cluster.cluster_security_group_id
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": cluster.oidc_provider_arn,
                "oidc_issuer": cluster.oidc_issuer,
                "cluster_security_group_id": self.cluster_security_group_id,
            }
        )


def control_plane_log_group(
    name: str, args: EksClusterArgs, parent: pulumi.Resource
) -> cloudwatch.LogGroup:
    """`/aws/eks/<cluster>/cluster`, made before the cluster with a retention (left to EKS it has
    none). EKS writes the last control-plane logs after the cluster is gone and would recreate the
    group (terraform-aws-eks#2763), so `destroy` keeps it (its retention expires the logs) and the
    next `up` of the same stack adopts it: Pulumi imports it by name, ignoring for that one run
    the retention and tags EKS would have left off (the `up` after applies ours)."""
    group_name = f"/aws/eks/{args.cluster_name}/cluster"
    adopt = args.adopt_log_group
    return cloudwatch.LogGroup(
        f"{name}-control-plane-logs",
        name=group_name,
        retention_in_days=args.log_retention_days,
        tags=dict(args.tags),
        opts=pulumi.ResourceOptions(
            parent=parent,
            retain_on_delete=True,
            import_=group_name if adopt else None,
            ignore_changes=["retentionInDays", "tags"] if adopt else None,
        ),
    )


def access_entries(
    name: str,
    cluster: eks.Cluster,
    cluster_name: pulumi.Input[str],
    args: EksClusterArgs,
    parent: pulumi.Resource,
) -> list[aws_eks.AccessEntry]:
    """An access entry per principal, named by a digest of the principal (`principal_key`: so
    reordering or removing others never touches it, nor does respelling its ARN), admins with the
    cluster-admin policy, previewers with the PREVIEW_GROUP. None for the cluster's creator,
    whose entry EKS made. The entry names the ARN as the config spells it: EKS takes it as given.

    Each admin entry once was pulumi-eks's child `<cluster>-admin-<i>` (i its list position), and
    each entry then was named by a digest of its ARN as spelled: the aliases make either move a
    rename, never a second entry for the same principal (409)."""
    access, tags = args.access, args.tags
    entries = []
    admins = {arn: i for i, arn in enumerate(access.admin_arns)}
    for arn in (*access.admin_arns, *access.preview_arns):
        if access.creator and same_principal(arn, access.creator):
            continue
        entry_name = f"{name}-access-{digest(principal_key(arn))}"
        spelled = f"{name}-access-{digest(arn)}"  # its name until the key ignored path and case
        respelled = [spelled] if spelled != entry_name else []
        admin = arn in admins
        old_entry = f"{name}-eks-admin-{admins.get(arn)}"  # pulumi-eks: <its name>-<key>
        entry_type = "aws:eks/accessEntry:AccessEntry"
        entry = aws_eks.AccessEntry(
            entry_name,
            cluster_name=cluster_name,
            principal_arn=arn,
            type="STANDARD",
            kubernetes_groups=None if admin else [PREVIEW_GROUP],
            tags=dict(tags),
            opts=pulumi.ResourceOptions(
                parent=parent,
                # Whatever forces a new entry must delete the old one first: EKS allows one
                # entry per principal.
                delete_before_replace=True,
                aliases=[
                    *([pulumi.Alias(name=old_entry, parent=cluster)] if admin else []),
                    *(pulumi.Alias(name=n) for n in respelled),
                ],
                # Another spelling of the same principal is the same entry to EKS (its id):
                # replacing it would cut that identity off mid-`up`, perhaps the one running.
                ignore_changes=["principalArn"],
            ),
        )
        entries.append(entry)
        if admin:
            aws_eks.AccessPolicyAssociation(
                f"{entry_name}-cluster-admin",
                cluster_name=cluster_name,
                principal_arn=arn,
                policy_arn=CLUSTER_ADMIN_POLICY,
                access_scope=aws_eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(
                    parent=parent,
                    depends_on=[entry],
                    aliases=[
                        pulumi.Alias(
                            name=f"{old_entry}-cluster-admin",
                            parent=pulumi.create_urn(old_entry, entry_type, parent=cluster),
                        ),
                        *(pulumi.Alias(name=f"{n}-cluster-admin") for n in respelled),
                    ],
                    ignore_changes=["principalArn"],
                ),
            )
    return entries
