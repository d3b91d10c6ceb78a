"""Results kept in more than one region: DynamoDB global table replicas (each with PITR and a
key of its region), Cosmos DB failover locations, and recovery stacks on an existing table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, EdwConfig
from stacks.offline import ACCOUNT, SUBSCRIPTION, StackRun, run_stack

TABLE = "aws:dynamodb/table:Table"
AWS = {"aws:region": "us-east-1"}
UNKNOWN = "edw:replicaRegions has unknown names ['us-east-9']"
OWN = "must not list the stack's own region/location 'us-east-1'"
AZURE_PROVIDER = {"azure-native:location": "westeurope"}
EXISTING_COSMOS = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/edw-dev-rg/providers/Microsoft.DocumentDB/"
    "databaseAccounts/edw-dev-1a2b3c4d/tables/results"
)


def consumer_policy(run: StackRun) -> dict[str, Any]:
    role = run.one("aws:iam/role:Role", "consumer-identity-role")
    [policy] = [
        p
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == role.outputs["name"]
    ]
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


@pytest.mark.parametrize("regions", [["us-west-2"], ["us-west-2", "eu-west-1"]])
def test_a_global_table_replicates_with_pitr_and_a_key_in_each_region(regions: list[str]) -> None:
    run = run_stack("aws", {"replicaRegions": json.dumps(regions)})
    table = run.one(TABLE).inputs
    key = run.one("aws:kms/key:Key", "results-key")
    assert key.inputs["multiRegion"] is True
    assert key.inputs["enableKeyRotation"] is True
    replica_keys = {r.inputs["region"]: r for r in run.of_type("aws:kms/replicaKey:ReplicaKey")}
    assert sorted(replica_keys) == sorted(regions)  # registered concurrently: in any order
    assert all(r.inputs["primaryKeyArn"] == key.outputs["arn"] for r in replica_keys.values())
    assert table["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key.outputs["arn"]}
    assert (table["streamEnabled"], table["streamViewType"]) == (True, "NEW_AND_OLD_IMAGES")
    assert table["replicas"] == [
        {
            "regionName": region,
            "kmsKeyArn": replica_keys[region].outputs["arn"],
            "pointInTimeRecovery": True,
            "propagateTags": True,
            "deletionProtectionEnabled": True,  # a global table is protected by default
        }
        for region in regions
    ]
    assert all(f":{region}:" in replica_keys[region].outputs["arn"] for region in regions)
    assert table["pointInTimeRecovery"] == {"enabled": True}
    use = consumer_policy(run)["UseTableKeyThroughDynamoDB"]
    assert use["Resource"] == [key.outputs["arn"]]
    assert use["Condition"] == {
        "StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}
    }


def test_a_global_table_is_protected_unless_told_otherwise() -> None:
    """Destroying the stack that owns a global table deletes every replica at once."""
    protected = run_stack("aws", {"replicaRegions": '["us-west-2"]'}).one(TABLE).inputs
    assert protected["deletionProtectionEnabled"] is True
    assert protected["replicas"][0]["deletionProtectionEnabled"] is True
    single = run_stack("aws").one(TABLE).inputs
    assert single["deletionProtectionEnabled"] is False
    opted_out = run_stack(
        "aws", {"replicaRegions": '["us-west-2"]', "deletionProtection": "false"}
    ).one(TABLE)
    assert opted_out.inputs["deletionProtectionEnabled"] is False


def test_deletion_protection_and_ttl_reach_every_replica() -> None:
    run = run_stack(
        "aws",
        {"replicaRegions": '["us-west-2"]', "deletionProtection": "true", "resultTtlDays": "7"},
    )
    table = run.one(TABLE).inputs
    assert table["deletionProtectionEnabled"] is True
    assert table["replicas"][0]["deletionProtectionEnabled"] is True
    assert table["ttl"] == {"attributeName": "expiresAt", "enabled": True}  # a table setting


def test_a_single_region_table_keeps_the_aws_managed_key(aws_run: StackRun) -> None:
    table = aws_run.one(TABLE).inputs
    assert table["serverSideEncryption"] == {"enabled": True}
    assert "replicas" not in table
    assert "UseTableKeyThroughDynamoDB" not in consumer_policy(aws_run)
    assert [k for k in aws_run.of_type("aws:kms/key:Key") if k.name == "results-key"] == []


def test_a_recovery_stack_writes_to_the_replicated_table_and_never_owns_it() -> None:
    run = run_stack("aws", {"existingResultsTable": "results-table-0a1b2c3"})
    assert run.of_type(TABLE) == []
    statements = consumer_policy(run)
    assert statements["WriteResults"]["Resource"] == [
        f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/results-table-0a1b2c3"
    ]
    assert statements["UseTableKeyThroughDynamoDB"]["Resource"] == [
        f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"
    ]
    assert run.outputs["tableName"] == "results-table-0a1b2c3"
    env = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]
    assert {"name": "EDW_TABLE", "value": "results-table-0a1b2c3"} in env


@pytest.mark.parametrize("locations", [["northeurope"], ["northeurope", "swedencentral"]])
def test_cosmos_fails_over_through_the_listed_locations_in_order(locations: list[str]) -> None:
    run = run_stack("dev", {"replicaLocations": json.dumps(locations), "cosmosServerless": "false"})
    account = run.one("azure-native:cosmosdb:DatabaseAccount").inputs
    assert account["locations"] == [
        {"locationName": name, "failoverPriority": float(i), "isZoneRedundant": False}
        for i, name in enumerate(["westeurope", *locations])
    ]
    assert account["enableAutomaticFailover"] is True
    assert account["backupPolicy"]["type"] == "Continuous"
    assert {c["name"] for c in account["capabilities"]} == {"EnableTable"}


def test_a_single_location_account_has_no_failover(dev_run: StackRun) -> None:
    account = dev_run.one("azure-native:cosmosdb:DatabaseAccount").inputs
    assert len(account["locations"]) == 1
    assert account["enableAutomaticFailover"] is False


def test_an_azure_recovery_stack_grants_on_the_replicated_table_only() -> None:
    run = run_stack("dev", {"existingResultsTable": EXISTING_COSMOS})
    assert run.of_type("azure-native:cosmosdb:DatabaseAccount") == []
    assert run.of_type("azure-native:cosmosdb:TableResourceTableRoleAssignment")
    (grant,) = run.of_type("azure-native:cosmosdb:TableResourceTableRoleAssignment")
    account_id = EXISTING_COSMOS.split("/tables/", maxsplit=1)[0]
    assert grant.inputs["accountName"] == "edw-dev-1a2b3c4d"
    assert grant.inputs["resourceGroupName"] == "edw-dev-rg"
    assert grant.inputs["scope"] == f"{account_id}/dbs/TablesDB/colls/results"
    assert run.outputs["tableEndpoint"] == "https://edw-dev-1a2b3c4d.table.cosmos.azure.com:443/"
    assert run.outputs["tableId"] == EXISTING_COSMOS


def test_an_azure_stack_outputs_the_table_id_a_recovery_stack_takes(dev_run: StackRun) -> None:
    account = dev_run.one("azure-native:cosmosdb:DatabaseAccount")
    table = dev_run.one("azure-native:cosmosdb:TableResourceTable")
    assert dev_run.outputs["tableId"] == f"{account.id}/tables/{table.inputs['tableName']}"
    assert dev_run.outputs["tableId"].startswith("/subscriptions/")
    recovery = EdwConfig.parse(  # and a recovery stack's config takes it as is
        {
            "cloud": "azure",
            "disableLocalAccounts": "false",
            "apiAllowedCidrs": '["198.51.100.0/24"]',
            "existingResultsTable": dev_run.outputs["tableId"],
        },
        stack="dev-recovery",
        provider_values={"azure-native:location": "northeurope"},
    )
    assert recovery.existing_results_table == dev_run.outputs["tableId"]


def parse_error(values: dict[str, str], provider: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        EdwConfig.parse(values, stack="t", provider_values=provider)
    return str(info.value)


@pytest.mark.parametrize(
    ("values", "provider", "expected"),
    [
        (
            {"replicaRegions": '["us-east-9"]'},
            AWS,
            "edw:replicaRegions has unknown names ['us-east-9']",
        ),
        (
            {"replicaRegions": '["us-east-1"]'},
            AWS,
            "must not list the stack's own region/location 'us-east-1'",
        ),
        (
            {"replicaRegions": '["us-west-2", "us-west-2"]'},
            AWS,
            "lists ['us-west-2'] more than once",
        ),
        (
            {"replicaRegions": '["us-west-2"]', "existingResultsTable": "t-1"},
            AWS,
            "edw:replicaRegions must be empty with edw:existingResultsTable",
        ),
        (
            {"existingResultsTable": "a/b"},
            AWS,
            "edw:existingResultsTable must be a DynamoDB table name",
        ),
        (
            {"cloud": "azure", "replicaLocations": '["northeurope"]'},
            AZURE_PROVIDER,
            "edw:replicaLocations needs edw:cosmosServerless false",
        ),
        (
            {"cloud": "azure", "cosmosServerless": "false", "replicaLocations": '["mars"]'},
            AZURE_PROVIDER,
            "edw:replicaLocations has unknown names ['mars']",
        ),
        (
            {"cloud": "azure", "existingResultsTable": "results"},
            AZURE_PROVIDER,
            "edw:existingResultsTable must be a Cosmos DB table id",
        ),
    ],
)
def test_replication_settings_are_checked(
    values: dict[str, str], provider: dict[str, str], expected: str
) -> None:
    cloud = {"cloud": "aws"} if "aws:region" in provider else {"disableLocalAccounts": "false"}
    assert expected in parse_error({**cloud, **values}, provider)


def test_a_point_in_time_restore_gets_its_table_grant_back_from_the_runbook() -> None:
    """A Cosmos DB restore is a new account without the data-plane role assignments; the
    runbook points the stack at it and `up` grants the consumer there again."""
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "resilience.md").read_text()
    section = runbook.split("## Restoring the Azure table to a point in time", 1)[1]
    assert "does not restore" in section.split("\n\n", 2)[1]
    assert "edw:existingResultsTable" in section
    restored = EXISTING_COSMOS.replace("edw-dev-1a2b3c4d", "edw-dev-restored")
    run = run_stack("dev", {"existingResultsTable": restored})
    (grant,) = run.of_type("azure-native:cosmosdb:TableResourceTableRoleAssignment")
    assert grant.inputs["accountName"] == "edw-dev-restored"
    consumer = run.one(
        "azure-native:managedidentity:UserAssignedIdentity", "consumer-identity-identity"
    )
    assert grant.inputs["principalId"] == consumer.outputs["principalId"]
