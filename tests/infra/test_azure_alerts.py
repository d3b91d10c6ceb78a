"""Azure Monitor alerts (basic): the action group with its receivers, and each metric alert's
resource, metric, dimensions, threshold and action, as the dev stack renders them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from components.azure.roles import MONITORING_METRICS_PUBLISHER, STORAGE_QUEUE_DATA_READER
from stacks.offline import StackRun, run_stack

EMAILS = ["oncall@example.com", "platform@example.org"]


@pytest.fixture(scope="module")
def run() -> StackRun:
    return run_stack("dev", {"alertEmails": json.dumps(EMAILS)})


def alerts(run: StackRun) -> dict[str, dict[str, Any]]:
    return {a.name: a.inputs for a in run.of_type("azure-native:monitor:MetricAlert")}


def test_the_action_group_mails_each_address_and_is_an_output(run: StackRun) -> None:
    group = run.one("azure-native:monitor:ActionGroup")
    receivers = {r["name"]: r for r in group.inputs["emailReceivers"]}
    assert receivers == {
        f"email-{hashlib.sha256(e.encode()).hexdigest()[:8]}": {
            "name": f"email-{hashlib.sha256(e.encode()).hexdigest()[:8]}",
            "emailAddress": e,
            "useCommonAlertSchema": True,
        }
        for e in EMAILS
    }
    assert group.inputs["enabled"] is True
    assert run.outputs["actionGroupId"] == group.id


GRID, COSMOS = "Microsoft.EventGrid/topics", "Microsoft.DocumentDB/databaseAccounts"
STATUS = "StatusCode"
EXPECTED = {
    "alerts-backlog-age": (
        "queues",
        "edw",
        "OldestMessageAgeSeconds",
        [{"name": "Queue", "operator": "Include", "values": ["work"]}],
    ),
    "alerts-poison-messages": (
        "queues",
        "edw",
        "QueueDepth",
        [{"name": "Queue", "operator": "Include", "values": ["work-poison"]}],
    ),
    "alerts-router-dead-lettered": ("topic", GRID, "DeadLetteredCount", []),
    "alerts-router-delivery-failed": ("topic", GRID, "DeliveryAttemptFailCount", []),
    "alerts-router-unmatched": ("topic", GRID, "UnmatchedEventCount", []),
    "alerts-router-dropped": ("topic", GRID, "DroppedEventCount", []),
    "alerts-router-publish-failed": ("topic", GRID, "PublishFailCount", []),
    "alerts-table-throttled": (
        "account",
        COSMOS,
        "TotalRequests",
        [{"name": STATUS, "operator": "Include", "values": ["429"]}],
    ),
    "alerts-table-server-errors": (
        "account",
        COSMOS,
        "TotalRequests",
        [{"name": STATUS, "operator": "Include", "values": ["500", "503"]}],
    ),
}


def test_the_stack_has_exactly_these_alerts(run: StackRun) -> None:
    assert set(alerts(run)) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_alert_watches_this_stacks_resource_and_notifies_the_group(
    run: StackRun, name: str
) -> None:
    target, namespace, metric, dimensions = EXPECTED[name]
    resource = {
        "topic": run.one("azure-native:eventgrid:Topic").id,
        "account": run.one("azure-native:cosmosdb:DatabaseAccount").id,
        "queues": run.one("azure-native:storage:StorageAccount").id,
    }[target]
    alert = alerts(run)[name]
    assert alert["scopes"] == [resource]
    (criterion,) = alert["criteria"]["allOf"]
    assert (criterion["metricNamespace"], criterion["metricName"]) == (namespace, metric)
    threshold = 900 if name == "alerts-backlog-age" else 0  # edw:maxMessageAgeSeconds
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", threshold)
    assert criterion.get("dimensions", []) == dimensions
    assert alert["actions"] == [{"actionGroupId": run.one("azure-native:monitor:ActionGroup").id}]
    assert alert["autoMitigate"] is True  # resolves, and says so, by itself
    assert (alert["evaluationFrequency"], alert["windowSize"]) == ("PT1M", "PT5M")


def test_a_recovery_stack_alerts_on_the_replicated_table_it_uses() -> None:
    table = (
        "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/lost-rg/providers/"
        "Microsoft.DocumentDB/databaseAccounts/lostacct/tables/results"
    )
    run = run_stack("dev", {"existingResultsTable": table})
    account = table.split("/tables/", maxsplit=1)[0]
    assert alerts(run)["alerts-table-throttled"]["scopes"] == [account]


def test_the_backlog_alert_watches_each_work_queue_at_the_configured_age() -> None:
    run = run_stack(
        "dev",
        {
            "workflows": json.dumps([{"name": "work"}, {"name": "orders"}]),
            "maxMessageAgeSeconds": "600",
        },
    )
    age = alerts(run)["alerts-backlog-age"]
    (criterion,) = age["criteria"]["allOf"]
    assert (criterion["metricNamespace"], criterion["metricName"]) == (
        "edw",
        "OldestMessageAgeSeconds",
    )
    assert criterion["threshold"] == 600
    assert criterion["dimensions"] == [
        {"name": "Queue", "operator": "Include", "values": ["work", "orders"]}
    ]
    assert criterion["skipMetricValidation"] is True  # sent by the CronJob, not Azure
    assert age["scopes"] == [run.one("azure-native:storage:StorageAccount").id]
    poison = alerts(run)["alerts-poison-messages"]["criteria"]["allOf"][0]
    assert poison["dimensions"][0]["values"] == ["work-poison", "orders-poison"]


def test_the_queue_metrics_task_runs_minutely_on_system_nodes_reading_only(run: StackRun) -> None:
    cron = run.one("kubernetes:batch/v1:CronJob", "queue-metrics-cronjob").inputs
    assert cron["spec"]["schedule"] == "* * * * *"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.azure.com/mode": "system"}
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "app.queue_metrics"]
    env = {e["name"]: e["value"] for e in container["env"]}
    account = run.one("azure-native:storage:StorageAccount")
    assert env["EDW_QUEUES"] == "work,work-poison"
    assert env["EDW_METRICS_RESOURCE_ID"] == account.id
    assert env["EDW_HEARTBEAT_TASK"] == "queue-metrics"
    rule = run.one("azure-native:monitor:DataCollectionRule", "heartbeats-rule")
    grants = sorted(
        (g.inputs["roleDefinitionId"].rsplit("/", 1)[1], g.inputs["scope"])
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.name.startswith("queue-metrics-identity-")
    )
    queues = {q.name: q.id for q in run.of_type("azure-native:storage:Queue")}
    assert grants == sorted(
        [
            (STORAGE_QUEUE_DATA_READER, queues["work-work"]),
            (STORAGE_QUEUE_DATA_READER, queues["work-poison"]),
            (MONITORING_METRICS_PUBLISHER, account.id),
            (MONITORING_METRICS_PUBLISHER, rule.id),  # its heartbeats, nothing else
        ]
    )


def test_the_queue_metrics_job_has_a_heartbeat_alert_metric_alerts_could_not_be(
    run: StackRun,
) -> None:
    """Its metrics feed the poison and backlog alerts, which never fire when no data comes: the
    job's own heartbeats go to a Log Analytics table, and a log search alert fires at none."""
    workspace = run.one("azure-native:operationalinsights:Workspace")
    table = run.one("azure-native:operationalinsights:Table").inputs
    assert table["tableName"] == "EdwHeartbeat_CL"
    assert table["workspaceName"] == workspace.outputs["name"]
    columns = [(c["name"], c["type"]) for c in table["schema"]["columns"]]
    assert columns == [("TimeGenerated", "dateTime"), ("Task", "string")]
    dcr = run.one("azure-native:monitor:DataCollectionRule", "heartbeats-rule").inputs
    (flow,) = dcr["dataFlows"]
    assert (flow["streams"], flow["outputStream"]) == (
        ["Custom-EdwHeartbeat"],
        "Custom-EdwHeartbeat_CL",
    )
    (destination,) = dcr["destinations"]["logAnalytics"]
    assert destination["workspaceResourceId"] == workspace.id
    assert (
        dcr["dataCollectionEndpointId"]
        == run.one("azure-native:monitor:DataCollectionEndpoint", "heartbeats-endpoint").id
    )
    rule = run.one("azure-native:monitor:ScheduledQueryRule", "heartbeat-alerts-queue-metrics")
    (condition,) = rule.inputs["criteria"]["allOf"]
    assert condition["query"] == 'EdwHeartbeat_CL | where Task == "queue-metrics"'
    assert (condition["operator"], condition["threshold"]) == ("LessThan", 1)
    # Every minute, plus the ten minutes a run may take, fits the smallest alert window.
    assert (rule.inputs["windowSize"], rule.inputs["evaluationFrequency"]) == ("PT15M", "PT5M")
    assert rule.inputs["autoMitigate"] is True
    first = run.one("kubernetes:batch/v1:Job", "queue-metrics-first-beat")
    assert first.urn in rule.dependencies


def test_a_replicated_account_alarms_on_replication_lag_and_a_single_region_one_does_not(
    run: StackRun,
) -> None:
    assert "alerts-table-replication-lag" not in alerts(run)
    replicated = run_stack(
        "dev", {"cosmosServerless": "false", "replicaLocations": json.dumps(["westus3"])}
    )
    lag = alerts(replicated)["alerts-table-replication-lag"]
    (criterion,) = lag["criteria"]["allOf"]
    assert (criterion["metricNamespace"], criterion["metricName"]) == (COSMOS, "ReplicationLatency")
    assert (criterion["timeAggregation"], criterion["threshold"]) == ("Maximum", 60_000)  # ms
    assert lag["scopes"] == [replicated.one("azure-native:cosmosdb:DatabaseAccount").id]


def test_the_workbook_charts_the_queues_router_and_table_and_is_an_output(run: StackRun) -> None:
    workbook = run.one("azure-native:applicationinsights:Workbook")
    assert workbook.inputs["category"] == "workbook"
    assert workbook.inputs["kind"] == "shared"
    body = json.loads(workbook.inputs["serializedData"])
    assert body["version"] == "Notebook/1.0"
    charts = {i["name"]: i["content"] for i in body["items"] if i["type"] == 10}
    account = run.one("azure-native:storage:StorageAccount").id
    depth = charts["queues: depth (work and poison)"]
    assert depth["resourceIds"] == [account]
    assert depth["metrics"] == [
        {"namespace": "edw", "metric": "edw--QueueDepth", "aggregation": 3, "splitBy": "Queue"}
    ]
    router = charts["router: published, delivered, dead-lettered, dropped"]
    assert router["resourceIds"] == [run.one("azure-native:eventgrid:Topic").id]
    table = charts["results table: requests by status"]
    assert table["resourceIds"] == [run.one("azure-native:cosmosdb:DatabaseAccount").id]
    assert run.outputs["workbookUrl"].startswith("https://portal.azure.com/#@")
    assert run.outputs["workbookUrl"].endswith(f"/resource{workbook.id}/workbook")
