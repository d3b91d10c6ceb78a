"""Pack-wide contracts: every rule is documented, configurable sanely, and its docs row true."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from pulumi_policy import ResourceValidationPolicy

from policy.offline import PackConfig
from policy.rules import POLICIES
from policy.rules.common import with_defaults

REPO = Path(__file__).resolve().parents[2]
SITE = Path(jsonschema.__file__).resolve().parents[1]  # the venv's site-packages


def test_rule_names_are_unique_and_every_rule_says_why_and_how_hard() -> None:
    assert len({p.name for p in POLICIES}) == len(POLICIES)
    for policy in POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", policy.name), policy.name
        assert policy.enforcement_level is not None, policy.name
        assert len(policy.description) > 40, policy.name


@pytest.mark.parametrize("policy", [p for p in POLICIES if p.config_schema], ids=lambda p: p.name)
def test_config_schemas_are_valid_with_documented_defaults(policy) -> None:
    properties = policy.config_schema.properties
    schema = {"type": "object", "properties": properties}
    jsonschema.Draft7Validator.check_schema(schema)
    for key, spec in properties.items():
        assert spec.get("description"), key
        assert "default" in spec, key
    jsonschema.validate(with_defaults(properties, None), schema)


def test_docs_rule_table_matches_the_pack() -> None:
    page = (REPO / "docs" / "policy.md").read_text()
    row = r"^\| `([a-z0-9-]+)` \| (\w+) \| (\w+) \| (.+?) \| (.+?) \|$"
    documented = {name: rest for name, *rest in re.findall(row, page, re.MULTILINE)}
    expected = {
        p.name: [
            p.enforcement_level.value,
            "resource" if isinstance(p, ResourceValidationPolicy) else "stack",
            p.description,
            ", ".join(f"`{k}`" for k in p.config_schema.properties) if p.config_schema else "-",
        ]
        for p in POLICIES
    }
    assert documented == expected


# Unversioned azure-native tokens use the SDK's default API version; azure-no-preview-api can
# only see explicit versions, so pin that the defaults of the types we use are stable.
AZURE_TYPES = [
    "storage/storage_account.py",
    "storage/queue.py",
    "cosmosdb/database_account.py",
    "cosmosdb/table_resource_table.py",
    "containerservice/managed_cluster.py",
    "authorization/role_assignment.py",
    "managedidentity/user_assigned_identity.py",
    "managedidentity/federated_identity_credential.py",
    "storage/blob_container.py",
    "eventgrid/topic.py",
    "eventgrid/event_subscription.py",
    "monitor/metric_alert.py",
    "applicationinsights/workbook.py",
    "monitor/azure_monitor_workspace.py",
    "monitor/data_collection_endpoint.py",
    "monitor/data_collection_rule.py",
    "monitor/data_collection_rule_association.py",
    "alertsmanagement/prometheus_rule_group.py",
    "operationalinsights/workspace.py",
    "operationalinsights/table.py",
]
# Types whose SDK default is a preview API, accepted on purpose, each with the reason.
PREVIEW_ACCEPTED = {
    # azure-native 3.29.0 generates ActionGroup only from 2024-10-01-preview; an action group is
    # the only way Azure Monitor alerts reach a person.
    "monitor/action_group.py": "2024-10-01-preview",
    # azure-native 3.29.0's default for ScheduledQueryRule is 2025-01-01-preview; a log search
    # alert is the only Azure alert that fires on data that stopped coming (the heartbeats).
    "monitor/scheduled_query_rule.py": "2025-01-01-preview",
}


@pytest.mark.parametrize("module", AZURE_TYPES)
def test_default_azure_api_versions_are_stable(module: str) -> None:
    source = (SITE / "pulumi_azure_native" / module).read_text()  # text only: importing is slow
    versions = set(re.findall(r"Azure REST API version (\S+?)\.", source))
    assert versions, module
    assert not [v for v in versions if "preview" in v], versions


def test_docs_tuning_example_is_a_valid_pack_config() -> None:
    page = (REPO / "docs" / "policy.md").read_text()
    [example] = re.findall(r"```json\n(.*?)```", page, re.DOTALL)
    config = PackConfig.parse(json.loads(example))
    assert config.properties["karpenter-nodepool-limits"] == {"maxCpu": 128, "maxMemoryGi": 512}


@pytest.mark.parametrize(("module", "version"), sorted(PREVIEW_ACCEPTED.items()))
def test_accepted_preview_defaults_are_still_the_only_choice(module: str, version: str) -> None:
    """When the SDK moves the default to a GA version, this fails: drop the exception."""
    source = (SITE / "pulumi_azure_native" / module).read_text()
    assert set(re.findall(r"Azure REST API version (\S+?)\.", source)) == {version}
