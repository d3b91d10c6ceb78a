"""Karpenter NodePools for the consumers, shared by Karpenter on EKS and AKS NAP.

Two pools: `spot` (higher weight, tried first) and `on-demand` (fallback when spot capacity is
short). Both are limited in CPU and memory, restricted to configured families, labelled for the
consumer pods and consolidated when idle or underused. Only the node class differs per cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes import apiextensions, meta

from components.settings import NodePoolSettings
from components.versions import KARPENTER_API

# Consumer pods require this label (so they never land on system nodes) ...
CONSUMER_NODE_LABEL = {"edw/workload": "consumer"}
# ... and tolerate this taint on both pools, which keeps every other pod off them: a stray pod
# (an add-on without a node selector) can neither land there nor make Karpenter launch a node
# for itself and keep it forever.
CONSUMER_TAINT = {"key": "edw/workload", "value": "consumer", "effect": "NoSchedule"}
# The pools, named after their capacity type (Karpenter's karpenter.sh/capacity-type values).
NODE_POOL_NAMES = ("spot", "on-demand")
SPOT_WEIGHT = 100
ON_DEMAND_WEIGHT = 10


@dataclass(frozen=True)
class NodeClassRef:
    group: str  # karpenter.k8s.aws | karpenter.azure.com
    kind: str  # EC2NodeClass | AKSNodeClass
    name: pulumi.Input[str]


@dataclass(frozen=True)
class KarpenterNodePoolsArgs:
    settings: NodePoolSettings
    node_class: NodeClassRef
    family_label: str  # karpenter.k8s.aws/instance-family | karpenter.azure.com/sku-family
    # The node class, and (on EKS) the Karpenter controller: created before, deleted after.
    depends_on: Sequence[pulumi.Resource] = ()


class KarpenterNodePools(pulumi.ComponentResource):
    """The spot and on-demand NodePools the consumer pods run on."""

    spot_name: pulumi.Output[str]
    on_demand_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: KarpenterNodePoolsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:KarpenterNodePools", name, None, opts)
        pools = {}
        for pool in NODE_POOL_NAMES:
            pools[pool] = apiextensions.CustomResource(
                f"{name}-{pool}",
                api_version=KARPENTER_API,
                kind="NodePool",
                metadata=meta.v1.ObjectMetaArgs(name=pool),
                spec=node_pool_spec(args, pool),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
        self.spot_name = pools["spot"].metadata["name"]
        self.on_demand_name = pools["on-demand"].metadata["name"]
        self.register_outputs({"spot_name": self.spot_name, "on_demand_name": self.on_demand_name})


def node_pool_spec(args: KarpenterNodePoolsArgs, capacity_type: str) -> dict[str, Any]:
    s = args.settings
    spot = capacity_type == "spot"
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity_type]},
        {"key": args.family_label, "operator": "In", "values": list(s.families)},
        # The consumer image is built for amd64.
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    template_spec: dict[str, Any] = {
        "nodeClassRef": {
            "group": args.node_class.group,
            "kind": args.node_class.kind,
            "name": args.node_class.name,
        },
        "requirements": requirements,
        "expireAfter": s.expire_after,
        "taints": [dict(CONSUMER_TAINT)],
    }
    if s.termination_grace_period:
        # A drain never hangs on a stuck pod or a blocking budget past this (karpenter.sh/v1
        # NodePool CRD, spec.template.spec.terminationGracePeriod).
        template_spec["terminationGracePeriod"] = s.termination_grace_period
    return {
        "weight": SPOT_WEIGHT if spot else ON_DEMAND_WEIGHT,
        "template": {
            "metadata": {"labels": {**CONSUMER_NODE_LABEL, "edw/capacity": capacity_type}},
            "spec": template_spec,
        },
        "limits": {
            "cpu": str(s.spot_cpu_limit if spot else s.on_demand_cpu_limit),
            "memory": s.spot_memory_limit if spot else s.on_demand_memory_limit,
        },
        "disruption": {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": s.consolidate_after,
            # Replace at most 10% of nodes at a time, so a consolidation wave never drains
            # the whole consumer fleet at once.
            "budgets": [{"nodes": "10%"}],
        },
    }
