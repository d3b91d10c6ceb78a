"""`edw:observability: full` on AWS: the AMP workspace, its rules (with the stack's latency bound,
checked by promtool) and alert manager to the alert topic, the managed scraper and what it needs
in the cluster, and the Container Insights add-on with its own least-privilege role."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.azure.prometheus import iso_duration
from components.observability.rules import consumer_rules, no_progress_from_replicas
from components.versions import CLOUDWATCH_OBSERVABILITY_ADDON
from policy.offline import STACK_CONFIG_DIR, PackConfig, evaluate
from stacks.config import ConfigError, EdwConfig
from stacks.offline import StackRun, run_stack
from tests.observability.test_alerts import promtool


@pytest.fixture(scope="module")
def full() -> StackRun:
    return run_stack("aws", {"observability": "full", "latencyAlertSeconds": "120"})


def statements(document: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in json.loads(document)["Statement"] if "Sid" in s}


def test_basic_creates_no_prometheus(aws_run: StackRun) -> None:
    assert not [r for r in aws_run.resources if r.type.startswith("aws:amp/")]
    assert "prometheusWorkspaceArn" not in aws_run.outputs


def test_the_rules_carry_the_latency_bound_and_pass_promtool(
    full: StackRun, tmp_path: Path
) -> None:
    rules = full.one("aws:amp/ruleGroupNamespace:RuleGroupNamespace").inputs
    assert rules["workspaceId"] == full.one("aws:amp/workspace:Workspace").id
    assert rules["data"] == consumer_rules(120)
    latency = next(
        r for g in yaml.safe_load(rules["data"])["groups"] for r in g["rules"]
        if r["alert"] == "EdwEndToEndLatencyHigh"
    )  # fmt: skip
    assert latency["expr"].rstrip().endswith("> 120")
    path = tmp_path / "rules.yaml"
    path.write_text(rules["data"])
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alerts_reach_the_alert_topic_which_lets_exactly_this_workspace_publish(
    full: StackRun,
) -> None:
    workspace = full.one("aws:amp/workspace:Workspace").outputs["arn"]
    topic = full.one("aws:sns/topic:Topic", "alerts-topic").outputs["arn"]
    definition = full.one("aws:amp/alertManagerDefinition:AlertManagerDefinition").inputs
    config = yaml.safe_load(yaml.safe_load(definition["definition"])["alertmanager_config"])
    (receiver,) = config["receivers"]
    (sns,) = receiver["sns_configs"]
    assert (sns["topic_arn"], sns["send_resolved"], sns["sigv4"]) == (
        topic, True, {"region": "us-east-1"}
    )  # fmt: skip
    assert config["route"]["receiver"] == receiver["name"]
    assert sns["subject"] == "EDW {{ .Status }}: {{ .GroupLabels.alertname }}"
    policy = statements(
        full.one("aws:sns/topicPolicy:TopicPolicy", "alerts-policy").inputs["policy"]
    )
    aps = policy["ThisWorkspacesAlertManagerPublishes"]
    assert aps["Principal"] == {"Service": "aps.amazonaws.com"}
    assert aps["Condition"]["ArnEquals"] == {"aws:SourceArn": workspace}
    key = statements(full.one("aws:kms/key:Key", "alerts-key").inputs["policy"])
    assert key["PrometheusAlertManagerPublishes"]["Principal"] == {"Service": "aps.amazonaws.com"}


def test_the_scraper_reads_the_consumers_and_keda_with_a_read_only_cluster_user(
    full: StackRun,
) -> None:
    scraper = full.one("aws:amp/scraper:Scraper")
    eks = scraper.inputs["source"]["eks"]
    assert eks["clusterArn"] == "arn:aws:eks:us-east-1:123456789012:cluster/edw-aws"
    assert sorted(eks["subnetIds"]) == sorted(
        s.id for s in full.of_type("aws:ec2/subnet:Subnet") if "private" in s.name
    )
    assert (
        scraper.inputs["destination"]["amp"]["workspaceArn"]
        == (full.one("aws:amp/workspace:Workspace").outputs["arn"])
    )
    jobs = {
        j["job_name"]: j
        for j in yaml.safe_load(scraper.inputs["scrapeConfiguration"])["scrape_configs"]
    }
    assert jobs["edw-consumers"]["kubernetes_sd_configs"][0]["namespaces"] == {"names": ["edw"]}
    assert jobs["keda-operator"]["honor_labels"] is True  # keeps the ScaledObject's namespace
    # In API authentication mode AMP creates the scraper role's access entry itself: a second
    # one from the program failed the first `up` with ResourceInUseException.
    assert [
        e
        for e in full.of_type("aws:eks/accessEntry:AccessEntry")
        if e.inputs["principalArn"] == scraper.outputs["roleArn"]
    ] == []
    # Pod discovery is all our scrape jobs (kubernetes_sd role: pod) need: read pods, no more.
    role = full.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole").inputs
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]
    assert {j["kubernetes_sd_configs"][0]["role"] for j in jobs.values()} == {"pod"}
    binding = full.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding").inputs
    assert binding["subjects"] == [
        {"kind": "User", "name": "aps-collector-user", "apiGroup": "rbac.authorization.k8s.io"}
    ]


def test_container_logs_write_only_this_clusters_log_groups_kept_for_a_while(
    full: StackRun,
) -> None:
    groups = {g.inputs["name"]: g.inputs for g in full.of_type("aws:cloudwatch/logGroup:LogGroup")}
    prefix = "/aws/containerinsights/edw-aws/"
    kinds = {n.removeprefix(prefix) for n in groups if n.startswith(prefix)}
    # Fluent Bit's; "performance" was Container Insights' metrics, now off.
    assert kinds == {"application", "dataplane", "host"}
    assert all(g["retentionInDays"] == 30 for n, g in groups.items() if n.startswith(prefix))
    addon = full.one("aws:eks/addon:Addon", "container-logs-addon").inputs
    assert addon["addonName"] == "amazon-cloudwatch-observability"
    assert addon["addonVersion"] == CLOUDWATCH_OBSERVABILITY_ADDON
    role = full.one("aws:iam/role:Role", "container-logs-agent-identity-role")
    assert addon["serviceAccountRoleArn"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent" in trust.values()
    policy = statements(
        full.one("aws:iam/rolePolicy:RolePolicy", "container-logs-agent-identity-policy").inputs[
            "policy"
        ]
    )
    logs = policy["WriteThisClustersContainerInsightsLogs"]["Resource"]
    assert all(
        r.startswith(
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/containerinsights/edw-aws/"
        )
        for r in logs
    )


def test_the_cloudwatch_add_on_runs_only_container_logs_with_its_operator_on_system_nodes(
    full: StackRun,
) -> None:
    """Its operator tolerates nothing by default: it landed on a consumer pool and kept a
    Karpenter node for itself. Application Signals (on by default, no IAM granted for it) and
    Container Insights metrics (per observation) fed nothing of ours."""
    addon = full.one("aws:eks/addon:Addon", "container-logs-addon").inputs
    values = json.loads(addon["configurationValues"])
    assert values["applicationSignals"] == {"enabled": False}
    assert values["containerInsights"] == {"enabled": False}
    assert values["containerLogs"] == {"enabled": True}
    system = full.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert values["manager"]["nodeSelector"] == {"kubernetes.io/os": "linux", **system["labels"]}
    (taint,) = system["taints"]
    assert values["manager"]["tolerations"] == [{"key": taint["key"], "operator": "Exists"}]


def test_the_workspace_carries_the_tag_its_scraper_adds(full: StackRun) -> None:
    """A managed scraper tags its destination AMPAgentlessScraper; declaring it keeps a refresh
    free of drift and an `up` from removing it."""
    tags = full.one("aws:amp/workspace:Workspace").inputs["tags"]
    assert tags["AMPAgentlessScraper"] == ""


def test_a_full_stack_breaks_no_mandatory_rule(full: StackRun) -> None:
    config = PackConfig.load(STACK_CONFIG_DIR / "aws.json")
    assert [v for v in evaluate(full.resources, config) if v.mandatory] == []


def test_bad_observability_is_refused() -> None:
    with pytest.raises(ConfigError, match="edw:observability must be one of basic, full"):
        EdwConfig.parse(
            {"cloud": "aws", "observability": "everything"}, "s", {"aws:region": "us-east-1"}
        )


@pytest.fixture(scope="module")
def azure_full() -> StackRun:
    return run_stack("dev", {"observability": "full", "latencyAlertSeconds": "120"})


def test_azure_the_cluster_sends_metrics_and_logs_to_the_stacks_workspaces(
    azure_full: StackRun, dev_run: StackRun
) -> None:
    cluster = azure_full.one("azure-native:containerservice:ManagedCluster")
    logs = azure_full.one("azure-native:operationalinsights:Workspace")
    assert cluster.inputs["azureMonitorProfile"] == {"metrics": {"enabled": True}}
    assert cluster.inputs["addonProfiles"]["omsagent"] == {
        "enabled": True,
        "config": {"logAnalyticsWorkspaceResourceID": logs.id, "useAADAuth": "true"},
    }
    assert logs.inputs["retentionInDays"] == 30
    basic = dev_run.one("azure-native:containerservice:ManagedCluster").inputs
    assert "azureMonitorProfile" not in basic
    assert "addonProfiles" not in basic


def test_azure_container_logs_have_the_rule_the_managed_identity_agent_needs(
    azure_full: StackRun, dev_run: StackRun
) -> None:
    """Container Insights with useAADAuth collects nothing without the MSCI data collection
    rule and its ContainerInsightsExtension association (Microsoft's MSI onboarding template)."""
    cluster = azure_full.one("azure-native:containerservice:ManagedCluster")
    logs = azure_full.one("azure-native:operationalinsights:Workspace")
    rule = azure_full.one("azure-native:monitor:DataCollectionRule", "container-insights-rule")
    assert rule.inputs["dataCollectionRuleName"] == "MSCI-westeurope-edw-dev"
    assert rule.inputs["kind"] == "Linux"
    (extension,) = rule.inputs["dataSources"]["extensions"]
    assert extension["extensionName"] == "ContainerInsights"
    assert extension["name"] == "ContainerInsightsExtension"
    assert extension["streams"] == ["Microsoft-ContainerInsights-Group-Default"]
    assert extension["extensionSettings"]["dataCollectionSettings"]["enableContainerLogV2"] is True
    (destination,) = rule.inputs["destinations"]["logAnalytics"]
    assert destination == {"workspaceResourceId": logs.id, "name": "ciworkspace"}
    assert rule.inputs["dataFlows"] == [
        {"streams": ["Microsoft-ContainerInsights-Group-Default"], "destinations": ["ciworkspace"]}
    ]
    (association,) = [
        a.inputs
        for a in azure_full.of_type("azure-native:monitor:DataCollectionRuleAssociation")
        if a.inputs["associationName"] == "ContainerInsightsExtension"
    ]
    assert association["resourceUri"] == cluster.id
    assert association["dataCollectionRuleId"] == rule.id
    # Without observability full, only the tasks' heartbeats have a rule: no Container Insights.
    assert [r.name for r in dev_run.of_type("azure-native:monitor:DataCollectionRule")] == [
        "heartbeats-rule"
    ]


def test_azure_prometheus_flows_from_the_cluster_to_the_workspace(azure_full: StackRun) -> None:
    cluster = azure_full.one("azure-native:containerservice:ManagedCluster")
    workspace = azure_full.one("azure-native:monitor:AzureMonitorWorkspace")
    endpoint = azure_full.one("azure-native:monitor:DataCollectionEndpoint", "prometheus-endpoint")
    collection = azure_full.one("azure-native:monitor:DataCollectionRule", "prometheus-collection")
    rule = collection.inputs
    assert rule["dataCollectionEndpointId"] == endpoint.id
    (source,) = rule["dataSources"]["prometheusForwarder"]
    assert source["streams"] == ["Microsoft-PrometheusMetrics"]
    (destination,) = rule["destinations"]["monitoringAccounts"]
    assert destination["accountResourceId"] == workspace.id
    assert rule["dataFlows"] == [
        {"streams": ["Microsoft-PrometheusMetrics"], "destinations": [destination["name"]]}
    ]
    associations = {
        a.inputs["associationName"]: a.inputs
        for a in azure_full.of_type("azure-native:monitor:DataCollectionRuleAssociation")
    }
    assert associations["configurationAccessEndpoint"]["dataCollectionEndpointId"] == endpoint.id
    assert associations["edw-dev-prometheus"]["dataCollectionRuleId"] == collection.id
    assert {a["resourceUri"] for a in associations.values()} == {cluster.id}
    settings = azure_full.one("kubernetes:core/v1:ConfigMap", "prometheus-scraping").inputs
    assert settings["metadata"] == {
        "name": "ama-metrics-settings-configmap",
        "namespace": "kube-system",
    }
    assert (
        settings["data"]["pod-annotation-based-scraping"] == 'podannotationnamespaceregex = "^edw$"'
    )
    assert azure_full.outputs["prometheusWorkspaceId"] == workspace.id


def test_azure_the_consumer_rules_notify_the_action_group(azure_full: StackRun) -> None:
    group = azure_full.one("azure-native:alertsmanagement:PrometheusRuleGroup").inputs
    workspace = azure_full.one("azure-native:monitor:AzureMonitorWorkspace")
    cluster = azure_full.one("azure-native:containerservice:ManagedCluster")
    assert group["scopes"] == [workspace.id, cluster.id]
    cfg = EdwConfig.parse(
        {"cloud": "azure", "disableLocalAccounts": "false", "apiAllowedCidrs": '["0.0.0.0/0"]'},
        "dev",
        {"azure-native:location": "westeurope"},
    )
    azure = no_progress_from_replicas(consumer_rules(120), "edw", cfg.workflows)
    expected = yaml.safe_load(azure)["groups"][0]["rules"]
    # In the file's order, the service workflows' EdwNoProgress only (no job workflow here).
    assert [r["alert"] for r in group["rules"]] == [r["alert"] for r in expected]
    action = azure_full.one("azure-native:monitor:ActionGroup").id
    for rule, source in zip(group["rules"], expected, strict=True):
        assert rule["expression"] == source["expr"]
        # A rule without "for" (EdwTableFull, EdwMessagesOverCopyLimit) fires at once.
        assert rule.get("for") == ("PT" + source["for"].upper() if "for" in source else None)
        assert rule["severity"] == {"page": 1, "ticket": 3}[source["labels"]["severity"]]
        assert rule["actions"] == [{"actionGroupId": action}]
        assert rule["resolveConfiguration"] == {"autoResolved": True, "timeToResolve": "PT10M"}
    (latency,) = [r for r in group["rules"] if r["alert"] == "EdwEndToEndLatencyHigh"]
    assert latency["expression"].rstrip().endswith("> 120")


def test_a_full_azure_stack_breaks_no_mandatory_rule(azure_full: StackRun) -> None:
    config = PackConfig.load(STACK_CONFIG_DIR / "dev.json")
    assert [v for v in evaluate(azure_full.resources, config) if v.mandatory] == []


@pytest.mark.parametrize(
    ("prometheus", "iso"), [("10m", "PT10M"), ("1h30m", "PT1H30M"), ("45s", "PT45S")]
)
def test_rule_durations_become_iso_8601(prometheus: str, iso: str) -> None:
    assert iso_duration(prometheus) == iso


@pytest.mark.parametrize("bad", ["", "10", "1d", "m10"])
def test_a_duration_azure_cannot_take_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        iso_duration(bad)


def test_azure_waits_for_no_keda_metrics(azure_full: StackRun) -> None:
    """The AKS KEDA add-on's operator serves no Prometheus metrics (its values cannot be set,
    Azure/AKS#4090, and the chart defaults them off): no scrape job for it; EdwNoProgress reads
    the workflow's replicas from kube-state-metrics instead (tests/observability)."""
    config_maps = azure_full.of_type("kubernetes:core/v1:ConfigMap")
    assert [c.inputs["metadata"]["name"] for c in config_maps] == ["ama-metrics-settings-configmap"]
    group = azure_full.one("azure-native:alertsmanagement:PrometheusRuleGroup").inputs
    (stuck,) = [r for r in group["rules"] if r["alert"] == "EdwNoProgress"]
    assert "keda_scaler_metrics_value" not in stuck["expression"]
    assert (
        'kube_deployment_spec_replicas{namespace="edw", deployment="edw-consumer"}'
        in (stuck["expression"])
    )
