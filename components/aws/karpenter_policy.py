"""Karpenter's controller IAM policy: upstream's, statement for statement, for one cluster.

Source: the getting-started CloudFormation template of Karpenter v1.14.1 (aws/karpenter-provider-aws
at tag v1.14.1, ``website/content/en/docs/getting-started/getting-started-with-karpenter/
cloudformation.yaml``, vendored in ``tests/reference/karpenter-aws/``): its six
``KarpenterController*Policy`` documents, merged into one role policy with the same Sids, actions,
conditions and resources (partition ``aws``). ``tests/infra/test_karpenter_policy.py`` reads that
file and fails on any action we miss or add, and on any condition or resource that differs.
Upgrade it together with ``KARPENTER_CHART``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.aws.iam import Statement, allow

# Upstream lists the China partition's principal too; harmless elsewhere, kept to stay identical.
EC2_SERVICE_PRINCIPALS = ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]
# Resources the controller creates, tags and deletes; each carries the cluster's ownership tag.
LAUNCHED_KINDS = (
    "fleet",
    "instance",
    "volume",
    "network-interface",
    "launch-template",
    "spot-instances-request",
)
# ec2:Describe* and pricing have no resource-level permissions: upstream grants them on "*".
REGIONAL_READ_ACTIONS = (
    "ec2:DescribeCapacityReservations",
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",  # instance health and scheduled-maintenance handling
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribePlacementGroups",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSpotPriceHistory",
    "ec2:DescribeSubnets",
)


@dataclass(frozen=True)
class ControllerScope:
    """Which cluster the controller manages: every statement is confined to it."""

    cluster_name: str
    region: str
    account_id: str

    @property
    def cluster_arn(self) -> str:
        return f"arn:aws:eks:{self.region}:{self.account_id}:cluster/{self.cluster_name}"


def controller_statements(
    scope: ControllerScope,
    interruption_queue_arn: pulumi.Input[str],
    node_role_arn: pulumi.Input[str],
) -> list[Statement]:
    """Upstream's controller policy statements (v1.14.1) for this cluster."""
    return [
        *_node_lifecycle(scope),
        *_iam_integration(scope, node_role_arn),
        allow(["eks:DescribeCluster"], [scope.cluster_arn], "AllowAPIServerEndpointDiscovery"),
        allow(
            ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            [interruption_queue_arn],
            "AllowInterruptionQueueActions",
        ),
        # Zonal shift: Karpenter stops launching into a zone ARC has shifted the cluster away
        # from. Upstream grants it on "*", scoped to this cluster by the condition key.
        allow(
            ["arc-zonal-shift:GetManagedResource"],
            ["*"],
            "AllowZonalShiftStatusReadOnly",
            Condition={"StringEquals": {"arc-zonal-shift:ResourceIdentifier": scope.cluster_arn}},
        ),
        *_resource_discovery(scope),
    ]


def _owned(scope: ControllerScope, tag: str = "ResourceTag") -> dict[str, str]:
    return {f"aws:{tag}/kubernetes.io/cluster/{scope.cluster_name}": "owned"}


def _request_owned(scope: ControllerScope) -> dict[str, str]:
    return {
        **_owned(scope, "RequestTag"),
        "aws:RequestTag/eks:eks-cluster-name": scope.cluster_name,
    }


def _node_lifecycle(scope: ControllerScope) -> list[Statement]:
    ec2 = f"arn:aws:ec2:{scope.region}"
    launched = [f"{ec2}:*:{kind}/*" for kind in LAUNCHED_KINDS]
    launch = ["ec2:RunInstances", "ec2:CreateFleet"]
    nodepool_tagged = {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    owned_by_nodepool = {"StringEquals": _owned(scope), "StringLike": nodepool_tagged}
    return [
        allow(
            launch,
            [
                f"{ec2}::image/*",
                f"{ec2}::snapshot/*",
                f"{ec2}:*:security-group/*",
                f"{ec2}:*:subnet/*",
                f"{ec2}:*:capacity-reservation/*",
                f"{ec2}:*:placement-group/*",
            ],
            "AllowScopedEC2InstanceAccessActions",
        ),
        allow(
            launch,
            [f"{ec2}:*:launch-template/*"],
            "AllowScopedEC2LaunchTemplateAccessActions",
            Condition=owned_by_nodepool,
        ),
        allow(
            [*launch, "ec2:CreateLaunchTemplate"],
            launched,
            "AllowScopedEC2InstanceActionsWithTags",
            Condition={
                "StringEquals": _request_owned(scope),
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        ),
        allow(
            ["ec2:CreateTags"],
            launched,
            "AllowScopedResourceCreationTagging",
            Condition={
                "StringEquals": {
                    **_request_owned(scope),
                    "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                },
                "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
            },
        ),
        allow(
            ["ec2:CreateTags"],
            [f"{ec2}:*:instance/*"],
            "AllowScopedResourceTagging",
            Condition={
                **owned_by_nodepool,
                "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": scope.cluster_name},
                "ForAllValues:StringEquals": {
                    "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                },
            },
        ),
        allow(
            ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
            [f"{ec2}:*:instance/*", f"{ec2}:*:launch-template/*"],
            "AllowScopedDeletion",
            Condition=owned_by_nodepool,
        ),
    ]


def _iam_integration(scope: ControllerScope, node_role_arn: pulumi.Input[str]) -> list[Statement]:
    profiles = f"arn:aws:iam::{scope.account_id}:instance-profile/*"
    region_tag = "topology.kubernetes.io/region"
    nodeclass_tag = "karpenter.k8s.aws/ec2nodeclass"
    resource_owned = {**_owned(scope), f"aws:ResourceTag/{region_tag}": scope.region}
    request_owned = {**_request_owned(scope), f"aws:RequestTag/{region_tag}": scope.region}
    return [
        allow(
            ["iam:PassRole"],
            [node_role_arn],
            "AllowPassingInstanceRole",
            Condition={
                "StringEquals": {
                    "iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]
                }
            },
        ),
        allow(
            ["iam:CreateInstanceProfile"],
            [profiles],
            "AllowScopedInstanceProfileCreationActions",
            Condition={
                "StringEquals": request_owned,
                "StringLike": {f"aws:RequestTag/{nodeclass_tag}": "*"},
            },
        ),
        allow(
            ["iam:TagInstanceProfile"],
            [profiles],
            "AllowScopedInstanceProfileTagActions",
            Condition={
                "StringEquals": {**resource_owned, **request_owned},
                "StringLike": {
                    f"aws:ResourceTag/{nodeclass_tag}": "*",
                    f"aws:RequestTag/{nodeclass_tag}": "*",
                },
            },
        ),
        allow(
            [
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile",
            ],
            [profiles],
            "AllowScopedInstanceProfileActions",
            Condition={
                "StringEquals": resource_owned,
                "StringLike": {f"aws:ResourceTag/{nodeclass_tag}": "*"},
            },
        ),
    ]


def _resource_discovery(scope: ControllerScope) -> list[Statement]:
    return [
        allow(
            REGIONAL_READ_ACTIONS,
            ["*"],
            "AllowRegionalReadActions",
            Condition={"StringEquals": {"aws:RequestedRegion": scope.region}},
        ),
        allow(
            ["ssm:GetParameter"],
            [f"arn:aws:ssm:{scope.region}::parameter/aws/service/*"],
            "AllowSSMReadActions",
        ),
        allow(["pricing:GetProducts"], ["*"], "AllowPricingReadActions"),
        allow(["iam:ListInstanceProfiles"], ["*"], "AllowUnscopedInstanceProfileListAction"),
        allow(
            ["iam:GetInstanceProfile"],
            [f"arn:aws:iam::{scope.account_id}:instance-profile/*"],
            "AllowInstanceProfileReadActions",
        ),
    ]
