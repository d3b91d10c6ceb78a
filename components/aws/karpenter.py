"""Karpenter on EKS: node role, controller identity, interruption handling, the EC2NodeClass and
the consumer NodePools.

Destroy order is encoded in dependencies: the NodePools and the EC2NodeClass depend on the
controller's Helm release (and on the node role's access entry), so `pulumi destroy` deletes them
first, while the controller still runs; their finalizers make Karpenter drain and terminate every
node it launched (and delete the instance profiles it made) before the release, the IAM roles,
the interruption queue and the VPC go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_aws import cloudwatch, ec2, iam, sqs
from pulumi_aws import eks as aws_eks
from pulumi_kubernetes import apiextensions, helm, meta

from components.aws.cluster import SYSTEM_POOL_LABEL, SYSTEM_TAINT_KEY, node_role
from components.aws.iam import allow, deny_insecure_transport, document
from components.aws.irsa import ClusterOidc, IrsaRole, IrsaRoleArgs
from components.aws.karpenter_policy import ControllerScope, controller_statements
from components.aws.network import DISCOVERY_TAG
from components.k8s.nodepools import KarpenterNodePools, KarpenterNodePoolsArgs, NodeClassRef
from components.settings import NodePoolSettings
from components.versions import (
    EC2_NODE_CLASS_API,
    KARPENTER_CHART,
    KARPENTER_CRD_CHART,
    HelmChart,
)

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
NODE_CLASS = "default"
# The EventBridge rules of Karpenter v1.14.1's CloudFormation template (tests/reference/
# karpenter-aws/cloudformation.yaml: ScheduledChangeRule ... CapacityReservationInterruptionRule).
INTERRUPTION_EVENTS = {
    "scheduled-change": ("aws.health", "AWS Health Event"),
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "capacity-reservation-interruption": (
        "aws.ec2",
        "EC2 Capacity Reservation Instance Interruption Warning",
    ),
}


@dataclass(frozen=True)
class KarpenterNodeAutoscalingArgs:
    cluster_name: str
    region: str
    account_id: str
    oidc: ClusterOidc
    cluster_security_group_id: pulumi.Input[str]
    system_nodes: pulumi.Resource
    dns: pulumi.Resource  # CoreDNS: removed only after the controller, which drains nodes with it
    nodes: NodePoolSettings
    ami_alias: str
    system_node_count: int
    tags: Mapping[str, str]
    create_spot_service_linked_role: bool = False  # the account lacks it (checked by the stack)


class KarpenterNodeAutoscaling(pulumi.ComponentResource):
    """Karpenter controller + EC2NodeClass + spot/on-demand NodePools for the consumers."""

    interruption_queue_name: pulumi.Output[str]
    node_role_name: pulumi.Output[str]
    controller_role_arn: pulumi.Output[str]
    node_pools: KarpenterNodePools

    def __init__(
        self,
        name: str,
        args: KarpenterNodeAutoscalingArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("edw:aws:KarpenterNodeAutoscaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        queue = sqs.Queue(
            f"{name}-interruption",
            message_retention_seconds=300,  # interruption notices are stale after minutes
            sqs_managed_sse_enabled=True,
            tags={**tags, "edw/role": "karpenter-interruption"},
            opts=child,
        )
        rules = [
            cloudwatch.EventRule(
                f"{name}-{event}",
                event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
                tags=tags,
                opts=child,
            )
            for event, (source, detail_type) in INTERRUPTION_EVENTS.items()
        ]
        # Upstream lets events.amazonaws.com (and sqs.amazonaws.com) send from anywhere; only our
        # rules may (EventBridge user guide, "Amazon SQS permissions": aws:SourceArn).
        queue_policy = sqs.QueuePolicy(
            f"{name}-interruption-policy",
            queue_url=queue.url,
            policy=document(
                [
                    allow(
                        ["sqs:SendMessage"],
                        [queue.arn],
                        "AllowOurInterruptionRules",
                        Principal={"Service": "events.amazonaws.com"},
                        Condition={"ArnEquals": {"aws:SourceArn": [r.arn for r in rules]}},
                    ),
                    deny_insecure_transport(queue.arn),
                ]
            ),
            opts=child,
        )
        targets = [
            cloudwatch.EventTarget(
                f"{name}-{event}",
                rule=rule.name,
                arn=queue.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]),
            )
            for event, rule in zip(INTERRUPTION_EVENTS, rules, strict=True)
        ]

        spot_role = []
        if args.create_spot_service_linked_role:
            # EC2 uses this account-wide role for every spot request; without it CreateFleet
            # cannot launch spot and Karpenter falls back to on-demand for good. Declared only
            # while the account lacks it and kept on destroy: once it exists the program stops
            # declaring it, and forgetting it must never delete what other workloads rely on.
            spot_role.append(
                iam.ServiceLinkedRole(
                    f"{name}-spot-service-linked-role",
                    aws_service_name="spot.amazonaws.com",
                    description="EC2 Spot, for Karpenter's spot NodePool (created by edw)",
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )
        role, attachments = node_role(f"{name}-node", tags, self, "Karpenter-launched nodes")
        access_entry = aws_eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=args.cluster_name,
            principal_arn=role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.system_nodes, *attachments]),
        )
        # Karpenter picks security groups by tag; the EKS-created cluster SG is the one that
        # lets nodes reach the control plane and each other.
        sg_tag = ec2.Tag(
            f"{name}-sg-discovery",
            resource_id=args.cluster_security_group_id,
            key=DISCOVERY_TAG,
            value=args.cluster_name,
            opts=child,
        )

        controller = IrsaRole(
            f"{name}-controller",
            IrsaRoleArgs(
                oidc=args.oidc,
                namespace=NAMESPACE,
                service_account=SERVICE_ACCOUNT,
                statements=controller_statements(
                    ControllerScope(args.cluster_name, args.region, args.account_id),
                    queue.arn,
                    role.arn,
                ),
                tags=tags,
            ),
            opts=child,
        )

        # The CRDs from their own chart, upgraded with the controller (the controller chart's
        # crds/ folder is installed once and never upgraded). take_ownership adopts the CRDs an
        # earlier release installed through that folder (Karpenter's troubleshooting guide,
        # "Helm error when installing the karpenter-crd chart", fixes the same by hand).
        crds = release(
            f"{name}-crds",
            "karpenter-crd",
            KARPENTER_CRD_CHART,
            take_ownership=True,
            timeout=300,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.system_nodes]),
        )
        controller_release = release(
            f"{name}-controller",
            "karpenter",
            KARPENTER_CHART,
            values={
                "settings": {
                    "clusterName": args.cluster_name,
                    "interruptionQueue": queue.name,
                    # Lets consolidation replace a spot node by a cheaper spot node (chart
                    # values.yaml at v1.14.1: ALPHA, off by default).
                    "featureGates": {"spotToSpotConsolidation": True},
                },
                "serviceAccount": {
                    "name": SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": controller.role_arn},
                },
                "replicas": min(2, args.system_node_count),
                "nodeSelector": SYSTEM_POOL_LABEL,
                "tolerations": [{"key": SYSTEM_TAINT_KEY, "operator": "Exists"}],
                "controller": {
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "512Mi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    }
                },
            },
            skip_crds=True,  # the karpenter-crd release above owns them
            # Wait for the pods, so NodePools are only created once something serves them.
            wait_for_jobs=True,
            timeout=600,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    args.system_nodes,
                    args.dns,
                    crds,
                    controller,
                    access_entry,
                    sg_tag,
                    *targets,
                ],
            ),
        )

        node_class = apiextensions.CustomResource(
            f"{name}-node-class",
            api_version=EC2_NODE_CLASS_API,
            kind="EC2NodeClass",
            metadata=meta.v1.ObjectMetaArgs(name=NODE_CLASS),
            spec=ec2_node_class_spec(args, role.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[controller_release]),
        )
        self.node_pools = KarpenterNodePools(
            f"{name}-pools",
            KarpenterNodePoolsArgs(
                settings=args.nodes,
                node_class=NodeClassRef(
                    group="karpenter.k8s.aws", kind="EC2NodeClass", name=node_class.metadata["name"]
                ),
                family_label="karpenter.k8s.aws/instance-family",
                depends_on=[controller_release, node_class, access_entry, *spot_role],
            ),
            opts=child,
        )

        self.interruption_queue_name = queue.name
        self.node_role_name = role.name
        self.controller_role_arn = controller.role_arn
        self.register_outputs(
            {
                "interruption_queue_name": self.interruption_queue_name,
                "node_role_name": self.node_role_name,
                "controller_role_arn": self.controller_role_arn,
            }
        )


def release(
    resource_name: str, release_name: str, chart: HelmChart, **settings: Any
) -> helm.v3.Release:
    """A Helm release of one of Karpenter's charts (OCI, no repository), at its pinned version,
    in Karpenter's namespace."""
    return helm.v3.Release(
        resource_name,
        name=release_name,
        chart=chart.chart,
        version=chart.version,
        namespace=NAMESPACE,
        **settings,
    )


def ec2_node_class_spec(
    args: KarpenterNodeAutoscalingArgs, role_name: pulumi.Input[str]
) -> dict[str, Any]:
    discovery = [{"tags": {DISCOVERY_TAG: args.cluster_name}}]
    return {
        "role": role_name,
        "amiSelectorTerms": [{"alias": args.ami_alias}],
        "subnetSelectorTerms": discovery,
        "securityGroupSelectorTerms": discovery,
        # Pods authenticate with IRSA; a hop limit of 1 keeps them away from the node's IMDS role.
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "ebs": {
                    "volumeSize": "50Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "tags": dict(args.tags),
    }
