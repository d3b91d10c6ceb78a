"""KEDA on EKS (Helm), on the system nodes, with an identity that can only read queue depth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import helm

from components.aws.cluster import SYSTEM_POOL_LABEL, SYSTEM_TAINT_KEY
from components.aws.iam import allow
from components.aws.irsa import ClusterOidc, IrsaRole, IrsaRoleArgs
from components.versions import KEDA_CHART

NAMESPACE = "keda"
SERVICE_ACCOUNT = "keda-operator"


@dataclass(frozen=True)
class KedaOperatorArgs:
    oidc: ClusterOidc
    queue_arns: Sequence[pulumi.Input[str]]  # every workflow's work queue
    system_nodes: pulumi.Resource
    tags: Mapping[str, str]


class KedaOperator(pulumi.ComponentResource):
    """The KEDA operator; TriggerAuthentications with podIdentity `aws` use its IRSA role."""

    role_arn: pulumi.Output[str]
    release_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: KedaOperatorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:KedaOperator", name, None, opts)
        identity = IrsaRole(
            f"{name}-operator",
            IrsaRoleArgs(
                oidc=args.oidc,
                namespace=NAMESPACE,
                service_account=SERVICE_ACCOUNT,
                statements=[
                    allow(["sqs:GetQueueAttributes"], list(args.queue_arns), "ReadQueueDepth")
                ],
                tags=args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        release = helm.v3.Release(
            f"{name}-release",
            name="keda",
            chart=KEDA_CHART.chart,
            version=KEDA_CHART.version,
            repository_opts=helm.v3.RepositoryOptsArgs(repo=KEDA_CHART.repo),
            namespace=NAMESPACE,
            create_namespace=True,
            values={
                "serviceAccount": {"operator": {"name": SERVICE_ACCOUNT}},
                "podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": identity.role_arn}}},
                "nodeSelector": SYSTEM_POOL_LABEL,
                "tolerations": [{"key": SYSTEM_TAINT_KEY, "operator": "Exists"}],
            },
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.system_nodes, identity]),
        )
        self.role_arn = identity.role_arn
        self.release_name = release.name
        self.register_outputs({"role_arn": self.role_arn, "release_name": self.release_name})
