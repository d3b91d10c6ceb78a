"""The EKS cluster (pulumi-eks) and its small on-demand system node group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_eks as eks
import pulumi_kubernetes as k8s
from pulumi_aws import cloudwatch, iam, kms
from pulumi_aws import eks as aws_eks

from components.aws.iam import EC2_TRUST, assume_role_trust
from components.aws.irsa import ClusterOidc

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
SYSTEM_POOL_LABEL = {"edw/pool": "system"}
# KEDA, Karpenter and CoreDNS tolerate this; consumer pods do not, so they never land here.
SYSTEM_TAINT_KEY = "CriticalAddonsOnly"
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
    "AmazonSSMManagedInstanceCore",
)


@dataclass(frozen=True)
class EksClusterArgs:
    cluster_name: str
    kubernetes_version: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    api_allowed_cidrs: Sequence[str]
    system_instance_type: str
    system_node_count: int
    admin_arns: Sequence[str]
    tags: Mapping[str, str]
    log_retention_days: int
    aws_profile: str = ""  # the stack's aws:profile, so `aws eks get-token` runs as it too


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
        # EKS writes control-plane logs to this group and would create it itself, without
        # retention and outside the stack (it would outlive `destroy`): create it first.
        log_group = cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )
        cluster = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                f"admin-{i}": eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={
                        "cluster-admin": eks.AccessPolicyAssociationArgs(
                            policy_arn=CLUSTER_ADMIN_POLICY,
                            access_scope=aws_eks.AccessPolicyAssociationAccessScopeArgs(
                                type="cluster"
                            ),
                        )
                    },
                )
                for i, arn in enumerate(args.admin_arns)
            },
            # The kubeconfig's `aws eks get-token` must run as the identity Pulumi uses, or the
            # Kubernetes provider calls the cluster as whoever the default chain finds.
            provider_credential_opts=(
                eks.KubeconfigOptionsArgs(profile_name=args.aws_profile)
                if args.aws_profile
                else None
            ),
            # The network policy agent enforces the consumer namespace's NetworkPolicies.
            vpc_cni_options=eks.VpcCniOptionsArgs(enable_network_policy=True),
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
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        # The cluster name is fixed up front (subnets and policies need it before the cluster
        # exists); resolving it through the cluster makes everything that uses it wait for it.
        self.cluster_name = cluster.kubeconfig_json.apply(lambda _: args.cluster_name)
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
        aws_eks.Addon(
            f"{name}-coredns",
            cluster_name=self.cluster_name,
            addon_name="coredns",
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
