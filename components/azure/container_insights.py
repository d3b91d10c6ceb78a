"""Container Insights with managed-identity authentication: the data collection rule and its
association with the cluster, without which the add-on's agent collects nothing.

The shape is Microsoft's own onboarding template for AKS with managed identity,
microsoft/Docker-Provider scripts/onboarding/aks/onboarding-using-msi-auth/
existingClusterOnboarding.json: a Linux DCR named MSCI-<workspace location>-<cluster> (at most 64
characters) whose ContainerInsightsExtension data source (extension ContainerInsights) sends its
streams to the workspace destination `ciworkspace`, and an association named
ContainerInsightsExtension on the cluster. We send the stream group
Microsoft-ContainerInsights-Group-Default with ContainerLogV2, every namespace, each minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

STREAM = "Microsoft-ContainerInsights-Group-Default"
DESTINATION = "ciworkspace"
ASSOCIATION = "ContainerInsightsExtension"
DCR_NAME_LIMIT = 64


@dataclass(frozen=True)
class ContainerInsightsArgs:
    resource_group_name: pulumi.Input[str]
    location: str  # the workspace's (and the rule's)
    cluster_name: str
    cluster_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    tags: Mapping[str, str]


class ContainerInsights(pulumi.ComponentResource):
    """The MSCI data collection rule and its association with the cluster."""

    rule_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: ContainerInsightsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:ContainerInsights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rule = monitor.DataCollectionRule(
            f"{name}-rule",
            data_collection_rule_name=f"MSCI-{args.location}-{args.cluster_name}"[:DCR_NAME_LIMIT],
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="Linux",
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                extensions=[
                    monitor.ExtensionDataSourceArgs(
                        name="ContainerInsightsExtension",
                        extension_name="ContainerInsights",
                        streams=[STREAM],
                        extension_settings={
                            "dataCollectionSettings": {
                                "interval": "1m",
                                "namespaceFilteringMode": "Off",
                                "enableContainerLogV2": True,
                            }
                        },
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        workspace_resource_id=args.workspace_id, name=DESTINATION
                    )
                ]
            ),
            data_flows=[monitor.DataFlowArgs(streams=[STREAM], destinations=[DESTINATION])],
            tags=dict(args.tags),
            opts=child,
        )
        monitor.DataCollectionRuleAssociation(
            f"{name}-association",
            resource_uri=args.cluster_id,
            association_name=ASSOCIATION,
            data_collection_rule_id=rule.id,
            opts=child,
        )
        self.rule_id = rule.id
        self.register_outputs({"rule_id": self.rule_id})
