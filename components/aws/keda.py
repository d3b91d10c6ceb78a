"""KEDA on EKS (Helm), on the system nodes, with an identity that can only read queue depth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes import helm

from components.aws.cluster import SYSTEM_POOL_LABEL, SYSTEM_TAINT_KEY
from components.aws.iam import allow
from components.aws.irsa import ClusterOidc, IrsaRole, IrsaRoleArgs
from components.versions import KEDA_CHART

NAMESPACE = "keda"
SERVICE_ACCOUNT = "keda-operator"
# The chart's three Deployments (kedacore/charts v2.20.2 keda/values.yaml: operator.name,
# metricsServer, webhooks.name) and the keys their PodDisruptionBudgets take there.
COMPONENTS = ("keda-operator", "keda-operator-metrics-apiserver", "keda-admission-webhooks")
PDB_KEYS = ("operator", "metricServer", "webhooks")


@dataclass(frozen=True)
class KedaOperatorArgs:
    oidc: ClusterOidc
    # Every workflow's work queue (an Output: the stack learns them after KEDA is declared).
    queue_arns: pulumi.Input[Sequence[str]]
    system_nodes: pulumi.Resource
    system_node_count: int
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
                statements=[allow(["sqs:GetQueueAttributes"], args.queue_arns, "ReadQueueDepth")],
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
                # The chart defaults prometheus.operator.enabled to false, which starts the
                # operator with --enable-prometheus-metrics=false (templates/manager/
                # deployment.yaml; keda cmd/operator/main.go then binds no metrics address):
                # no keda_scaler_metrics_value, and EdwNoProgress could never fire.
                "prometheus": {"operator": {"enabled": True}},
                # Scaling is cluster-critical: first to schedule, last to be preempted.
                "priorityClassName": "system-cluster-critical",
                **redundancy(min(2, args.system_node_count)),
            },
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.system_nodes, identity]),
        )
        self.role_arn = identity.role_arn
        self.release_name = release.name
        self.register_outputs({"role_arn": self.role_arn, "release_name": self.release_name})


def redundancy(replicas: int) -> dict[str, Any]:
    """Each component on `replicas` system nodes (only one leads), spread over nodes, with a
    budget that lets a drain take one at a time (with one replica, a drain is never blocked)."""
    spread = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {
                            "matchExpressions": [
                                {"key": "app", "operator": "In", "values": list(COMPONENTS)}
                            ]
                        },
                    },
                }
            ]
        }
    }
    return {
        "operator": {"replicaCount": replicas},
        "metricsServer": {"replicaCount": replicas},
        "webhooks": {"replicaCount": replicas},
        "affinity": spread,
        "podDisruptionBudget": {key: {"maxUnavailable": 1} for key in PDB_KEYS},
    }
