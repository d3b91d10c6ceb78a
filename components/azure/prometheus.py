"""`edw:observability: full` on Azure: Azure Monitor managed Prometheus for the cluster (workspace,
data collection endpoint and rule, their association with the cluster), pod-annotation scraping
of the consumer namespace, and the consumer alert rules as Prometheus rule groups notifying the
stack's action group. Container Insights logs go to the Log Analytics workspace made here and
named by the cluster (components/azure/cluster.py, monitoring())."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml
from pulumi_azure_native import alertsmanagement, monitor, operationalinsights
from pulumi_kubernetes import core, meta

PROMETHEUS_STREAM = "Microsoft-PrometheusMetrics"
DESTINATION = "MonitoringAccount1"
LOG_RETENTION_DAYS = 30
# Our severity label -> Azure alert severity (0 critical .. 4 verbose).
SEVERITY = {"page": 1, "ticket": 3}
# Azure Monitor managed Prometheus: the add-on's settings ConfigMap turns on scraping of pods
# annotated prometheus.io/scrape in the namespaces matching the regex; its custom scrape jobs go
# in the other. Names and keys: Azure Monitor docs "Customize scraping of Prometheus metrics"
# and Azure/prometheus-collector otelcollector/configmaps/ama-metrics-settings-configmap.yaml.
AMA_SETTINGS = "ama-metrics-settings-configmap"


def iso_duration(prometheus: str) -> str:
    """A Prometheus duration (10m, 1h30m, 45s) as ISO 8601 (PT10M, PT1H30M, PT45S)."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", prometheus)
    if not parts or not prometheus:
        raise ValueError(f"not a Prometheus duration: {prometheus!r}")
    hours, minutes, seconds = parts.groups()
    return "PT" + "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if v)


def azure_rules(rules_yaml: str, action_group_id: pulumi.Input[str]) -> list[dict[str, Any]]:
    """Rule groups from the Prometheus rule file: name -> rules in the Azure shape."""
    groups = []
    for group in yaml.safe_load(rules_yaml)["groups"]:
        rules = [
            alertsmanagement.PrometheusRuleArgs(
                alert=rule["alert"],
                expression=rule["expr"],
                for_=iso_duration(rule["for"]) if "for" in rule else None,
                labels=rule.get("labels"),
                annotations=rule.get("annotations"),
                severity=SEVERITY[rule.get("labels", {}).get("severity", "ticket")],
                enabled=True,
                actions=[
                    alertsmanagement.PrometheusRuleGroupActionArgs(action_group_id=action_group_id)
                ],
                # Resolved alerts notify too, once the condition has been false for 10 minutes.
                resolve_configuration=alertsmanagement.PrometheusRuleResolveConfigurationArgs(
                    auto_resolved=True, time_to_resolve="PT10M"
                ),
            )
            for rule in group["rules"]
        ]
        groups.append({"name": group["name"], "rules": rules})
    return groups


def ama_settings(consumer_namespace: str) -> dict[str, str]:
    """The settings ConfigMap's data: annotation-based scraping of the consumer namespace only."""
    return {
        "schema-version": "v1",
        "config-version": "ver1",
        "pod-annotation-based-scraping": f'podannotationnamespaceregex = "^{consumer_namespace}$"',
    }


class LogWorkspace(pulumi.ComponentResource):
    """The Log Analytics workspace the tasks' heartbeats and (observability full) Container
    Insights write to: made before the cluster."""

    id: pulumi.Output[str]
    workspace_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        resource_group_name: pulumi.Input[str],
        location: str,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("edw:azure:LogWorkspace", name, None, opts)
        workspace = operationalinsights.Workspace(
            f"{name}-workspace",
            resource_group_name=resource_group_name,
            location=location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=LOG_RETENTION_DAYS,
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.id = workspace.id
        self.workspace_name = workspace.name
        self.register_outputs({"id": self.id})


@dataclass(frozen=True)
class AzurePrometheusArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    stack_name: str
    cluster_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    action_group_id: pulumi.Input[str]
    rules: str  # the consumer rule groups, bound set (components/observability/rules.py)
    consumer_namespace: str
    tags: Mapping[str, str]


class AzureManagedPrometheus(pulumi.ComponentResource):
    """Azure Monitor workspace, DCE + DCR (Prometheus stream to the workspace) + their
    associations with the cluster, the scraping settings and the rule groups."""

    workspace_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: AzurePrometheusArgs,
        cluster_opts: pulumi.ResourceOptions,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("edw:azure:AzureManagedPrometheus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = args.resource_group_name
        workspace = monitor.AzureMonitorWorkspace(
            f"{name}-workspace",
            resource_group_name=group,
            location=args.location,
            tags=dict(args.tags),
            opts=child,
        )
        endpoint = monitor.DataCollectionEndpoint(
            f"{name}-endpoint",
            resource_group_name=group,
            location=args.location,
            kind="Linux",
            tags=dict(args.tags),
            opts=child,
        )
        rule = monitor.DataCollectionRule(
            f"{name}-collection",
            resource_group_name=group,
            location=args.location,
            kind="Linux",
            data_collection_endpoint_id=endpoint.id,
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                prometheus_forwarder=[
                    monitor.PrometheusForwarderDataSourceArgs(
                        name="PrometheusDataSource", streams=[PROMETHEUS_STREAM]
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                monitoring_accounts=[
                    monitor.MonitoringAccountDestinationArgs(
                        account_resource_id=workspace.id, name=DESTINATION
                    )
                ]
            ),
            data_flows=[
                monitor.DataFlowArgs(streams=[PROMETHEUS_STREAM], destinations=[DESTINATION])
            ],
            tags=dict(args.tags),
            opts=child,
        )
        monitor.DataCollectionRuleAssociation(
            f"{name}-rule-association",
            resource_uri=args.cluster_id,
            association_name=f"{args.stack_name}-prometheus",
            data_collection_rule_id=rule.id,
            opts=child,
        )
        # The cluster's metrics agent finds its endpoint through this fixed association name.
        monitor.DataCollectionRuleAssociation(
            f"{name}-endpoint-association",
            resource_uri=args.cluster_id,
            association_name="configurationAccessEndpoint",
            data_collection_endpoint_id=endpoint.id,
            opts=child,
        )
        # No job for KEDA: the AKS add-on's operator serves no Prometheus metrics (EdwNoProgress
        # reads replicas from kube-state-metrics instead: components/observability/rules.py).
        # The metrics agent reads its settings from kube-system, by this name.
        core.v1.ConfigMap(
            f"{name}-scraping",
            metadata=meta.v1.ObjectMetaArgs(name=AMA_SETTINGS, namespace="kube-system"),
            data=ama_settings(args.consumer_namespace),
            opts=pulumi.ResourceOptions.merge(cluster_opts, child),
        )
        for rule_group in azure_rules(args.rules, args.action_group_id):
            alertsmanagement.PrometheusRuleGroup(
                f"{name}-{rule_group['name']}",
                rule_group_name=f"{args.stack_name}-{rule_group['name']}",
                resource_group_name=group,
                location=args.location,
                scopes=[workspace.id, args.cluster_id],
                cluster_name=args.cluster_name,
                interval="PT1M",
                enabled=True,
                rules=rule_group["rules"],
                tags=dict(args.tags),
                opts=child,
            )
        self.workspace_id = workspace.id
        self.register_outputs({"workspace_id": self.workspace_id})
