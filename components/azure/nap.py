"""Node autoscaling on AKS: NAP's AKSNodeClass and the shared spot/on-demand NodePools.

Destroy order is encoded in dependencies: the consumer depends on the NodePools, the NodePools on
the AKSNodeClass, the AKSNodeClass on the cluster. `pulumi destroy` therefore deletes the
NodePools while NAP still runs; their finalizers make NAP drain and delete every VM it launched
before the node class and then the cluster (with its node resource group) go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes import apiextensions, meta

from components.k8s.nodepools import KarpenterNodePools, KarpenterNodePoolsArgs, NodeClassRef
from components.settings import NodePoolSettings
from components.versions import AKS_NODE_CLASS_API

# Not "default": AKS owns the AKSNodeClass of that name when NAP is on.
NODE_CLASS = "edw-consumer"
NODE_CLASS_GROUP = "karpenter.azure.com"
SKU_FAMILY_LABEL = "karpenter.azure.com/sku-family"
IMAGE_FAMILY = "AzureLinux"
OS_DISK_GB = 64


@dataclass(frozen=True)
class NapNodeAutoscalingArgs:
    nodes: NodePoolSettings
    cluster: pulumi.Resource  # the ManagedCluster: NAP runs as part of it
    tags: Mapping[str, str]


class NapNodeAutoscaling(pulumi.ComponentResource):
    """AKSNodeClass + the consumers' spot (preferred) and on-demand NodePools."""

    node_class_name: pulumi.Output[str]
    node_pools: KarpenterNodePools

    def __init__(
        self, name: str, args: NapNodeAutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:NapNodeAutoscaling", name, None, opts)
        node_class = apiextensions.CustomResource(
            f"{name}-node-class",
            api_version=AKS_NODE_CLASS_API,
            kind="AKSNodeClass",
            metadata=meta.v1.ObjectMetaArgs(name=NODE_CLASS),
            spec=aks_node_class_spec(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.cluster]),
        )
        self.node_pools = KarpenterNodePools(
            f"{name}-pools",
            KarpenterNodePoolsArgs(
                settings=args.nodes,
                node_class=NodeClassRef(
                    group=NODE_CLASS_GROUP, kind="AKSNodeClass", name=node_class.metadata["name"]
                ),
                family_label=SKU_FAMILY_LABEL,
                depends_on=[node_class, args.cluster],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_class_name = node_class.metadata["name"]
        self.register_outputs({"node_class_name": self.node_class_name})


def aks_node_class_spec(tags: Mapping[str, str]) -> dict[str, Any]:
    return {
        "imageFamily": IMAGE_FAMILY,
        "osDiskSizeGB": OS_DISK_GB,
        "tags": dict(tags),
    }
