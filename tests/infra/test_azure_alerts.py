"""Azure Monitor alerts (basic): the action group with its receivers, and each metric alert's
resource, metric, dimensions, threshold and action, as the dev stack renders them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

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
    "alerts-router-dead-lettered": ("topic", GRID, "DeadLetteredCount", []),
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
    }[target]
    alert = alerts(run)[name]
    assert alert["scopes"] == [resource]
    (criterion,) = alert["criteria"]["allOf"]
    assert (criterion["metricNamespace"], criterion["metricName"]) == (namespace, metric)
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 0)
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
