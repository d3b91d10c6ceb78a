"""Resilience: the results table kept in more than one region, where the team asks for it."""

from __future__ import annotations

from collections.abc import Iterator

from .aws import DYNAMODB_TABLE
from .azure import COSMOS_ACCOUNT
from .common import ADVISORY, Config, Subject, as_list, resource_rule


def _replicated(table: Subject, config: Config) -> Iterator[str]:
    if not config["requireReplica"]:
        return
    if table.kind == DYNAMODB_TABLE:
        if not as_list(table.props.get("replicas")):
            yield f"table {table.label!r} has no replica in another region (a global table)"
    elif len(as_list(table.props.get("locations"))) < 2:
        yield f"Cosmos DB account {table.label!r} is in one location: no failover region"


POLICIES = [
    resource_rule(
        "results-table-replicated",
        "Where the stack's pack config asks for replication (requireReplica), the results table "
        "must have a replica in another region (DynamoDB global table, Cosmos DB failover "
        "location). Advisory by default; set the level to mandatory to enforce it.",
        [DYNAMODB_TABLE, COSMOS_ACCOUNT],
        _replicated,
        level=ADVISORY,
        config={
            "requireReplica": {
                "type": "boolean",
                "default": False,
                "description": "Report results tables that live in a single region.",
            }
        },
    ),
]
