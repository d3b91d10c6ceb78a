"""Built-in role ids the Azure stack grants, and how to spell their full ids.

Azure RBAC role GUIDs are the same in every tenant; Cosmos DB for Table data-plane roles are
Cosmos-native definitions that live under the account, not in Microsoft.Authorization.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.settings import Principal

# Built-in role definitions: MicrosoftDocs/azure-docs articles/role-based-access-control/
# built-in-roles/storage.md and containers.md (the JSON of each role).
# Queue Data Contributor: queues/messages read, write (Update Message), delete, process; and the
# queue's own read/write/delete through ARM.
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
# Message Processor: messages/read and messages/process/action (Get and Delete Message).
STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR = "8a0f0c08-91a1-4084-bc3d-661d67233fed"
STORAGE_QUEUE_DATA_MESSAGE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
STORAGE_QUEUE_DATA_READER = "19e7f393-937e-4f77-808e-94535e297925"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
EVENTGRID_DATA_SENDER = "d5a91429-5739-47e2-a06b-3470a27159e7"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
# listClusterUserCredential/action + managedClusters/read (built-in-roles/containers.md).
AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
# Cosmos DB for Table "Cosmos DB Built-in Data Contributor": entity read/write on the scope.
COSMOS_TABLE_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"
# Tables of a Cosmos DB for Table account live in the fixed database TablesDB.
COSMOS_TABLES_DB = "TablesDB"


def role_definition_id(subscription_id: str, role: str) -> str:
    """Full id of a built-in Azure RBAC role."""
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def grant_name(
    prefix: str, principal: Principal, among: Sequence[Principal]
) -> tuple[str, list[pulumi.Alias]]:
    """A principal's role assignment: ``<prefix>-<object id>``, the whole id, since two principals
    may share any part of it (a shared part made one URN twice: the engine refuses the program).
    Grants were named by the id's first 8 hex digits before; that name is the alias when no other
    principal in ``among`` shares them, so a deployed grant updates in place (azure-native keeps
    the assignment's stored name, pulumi-azure-native provider.go getDefaultName): a new one
    beside it would be refused while the old one stands (RoleAssignmentExists: one principal,
    role and scope). When one does share them, neither answers to the old name (which one held
    it is unknown here); a stack deployed with one of them alone then recreates its grant, which
    ARM refuses until the old one is gone. Two object ids share 8 hex digits once in 2^32."""
    short = principal.object_id[:8]
    shared = sum(p.object_id[:8] == short for p in among) > 1
    return f"{prefix}-{principal.object_id}", [] if shared else [
        pulumi.Alias(name=f"{prefix}-{short}")
    ]


def cosmos_table_role_definition_id(account_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    """Full id of a Cosmos DB for Table data-plane role definition of one account."""
    return pulumi.Output.concat(account_id, "/tableRoleDefinitions/", role)


def cosmos_table_scope(
    account_id: pulumi.Input[str], table: pulumi.Input[str]
) -> pulumi.Output[str]:
    """The narrowest data-plane scope Cosmos DB for Table accepts: one table."""
    return pulumi.Output.concat(account_id, f"/dbs/{COSMOS_TABLES_DB}/colls/", table)
