"""The results table on Azure: a Cosmos DB for Table account that only Entra identities reach."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import cosmosdb

from components.azure.identity import CosmosTableGrant
from components.azure.roles import (
    COSMOS_TABLE_DATA_CONTRIBUTOR,
    cosmos_table_role_definition_id,
    cosmos_table_scope,
)

PROVISIONED_THROUGHPUT = 400  # RU/s, the minimum, when the account is not serverless


@dataclass(frozen=True)
class CosmosResultsTableArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    account_name: str  # globally unique, 3-44 chars of a-z0-9-
    table_name: str
    serverless: bool
    deletion_protection: bool
    tags: Mapping[str, str]
    # Failover locations after the primary, in priority order (provisioned accounts only).
    replica_locations: Sequence[str] = ()


class CosmosResultsTable(pulumi.ComponentResource):
    """Serverless (by default) Table account with continuous backup, TLS 1.2, no keys; with
    replica locations, a provisioned account replicated there (continuous backup stays on)."""

    account_name: pulumi.Output[str]
    account_id: pulumi.Output[str]
    table_name: pulumi.Output[str]
    table_endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: CosmosResultsTableArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:CosmosResultsTable", name, None, opts)
        # Cosmos DB has no deletion-protection flag; Pulumi's protect makes destroy refuse.
        kept = pulumi.ResourceOptions(parent=self, protect=args.deletion_protection)
        capabilities = [cosmosdb.CapabilityArgs(name="EnableTable")]
        if args.serverless:
            capabilities.append(cosmosdb.CapabilityArgs(name="EnableServerless"))
        account = cosmosdb.DatabaseAccount(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="GlobalDocumentDB",
            database_account_offer_type="Standard",
            capabilities=capabilities,
            locations=[
                cosmosdb.LocationArgs(
                    location_name=location, failover_priority=priority, is_zone_redundant=False
                )
                for priority, location in enumerate([args.location, *args.replica_locations])
            ],
            # With replicas, Azure fails the account over to the next location by itself when
            # the write region is lost (service-managed failover).
            enable_automatic_failover=bool(args.replica_locations),
            consistency_policy=cosmosdb.ConsistencyPolicyArgs(default_consistency_level="Session"),
            backup_policy=cosmosdb.ContinuousModeBackupPolicyArgs(
                type="Continuous",
                continuous_mode_properties=cosmosdb.ContinuousModePropertiesArgs(
                    tier="Continuous7Days"
                ),
            ),
            minimal_tls_version="Tls12",
            # Keys off: only Entra identities with a Cosmos data-plane role get in.
            disable_local_auth=True,
            disable_key_based_metadata_write_access=True,
            tags=dict(args.tags),
            opts=kept,
        )
        table = cosmosdb.TableResourceTable(
            f"{name}-table",
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            table_name=args.table_name,
            resource=cosmosdb.TableResourceArgs(id=args.table_name),
            options=None
            if args.serverless
            else cosmosdb.CreateUpdateOptionsArgs(throughput=PROVISIONED_THROUGHPUT),
            opts=kept,
        )
        self.account_name = account.name
        self.account_id = account.id
        self.table_name = table.name
        self.table_endpoint = account.name.apply(
            lambda n: f"https://{n}.table.cosmos.azure.com:443/"
        )
        self.register_outputs(
            {
                "account_name": self.account_name,
                "account_id": self.account_id,
                "table_name": self.table_name,
                "table_endpoint": self.table_endpoint,
            }
        )


@dataclass(frozen=True)
class TableRef:
    """The Cosmos DB table the consumer writes to: this stack's, or a replicated one."""

    account_name: pulumi.Input[str]
    account_id: pulumi.Input[str]
    resource_group_name: pulumi.Input[str]
    table_name: pulumi.Input[str]
    table_endpoint: pulumi.Input[str]

    def writer(self) -> CosmosTableGrant:
        """Entity read and write on this table only (a consumer's grant)."""
        return CosmosTableGrant(
            "table-writer",
            self.account_name,
            cosmos_table_role_definition_id(self.account_id, COSMOS_TABLE_DATA_CONTRIBUTOR),
            cosmos_table_scope(self.account_id, self.table_name),
            self.resource_group_name,
        )
