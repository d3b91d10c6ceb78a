"""The DynamoDB table the consumers write results to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_aws import dynamodb

# The CloudEvent id is the key: a redelivered message overwrites its own row.
PARTITION_KEY = "id"
TTL_ATTRIBUTE = "expiresAt"


@dataclass(frozen=True)
class DynamoResultsTableArgs:
    deletion_protection: bool
    ttl_enabled: bool
    tags: Mapping[str, str]


class DynamoResultsTable(pulumi.ComponentResource):
    """On-demand table keyed by event id, with PITR, encryption and optional TTL."""

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DynamoResultsTableArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:DynamoResultsTable", name, None, opts)
        table = dynamodb.Table(
            f"{name}-table",
            billing_mode="PAY_PER_REQUEST",
            hash_key=PARTITION_KEY,
            attributes=[dynamodb.TableAttributeArgs(name=PARTITION_KEY, type="S")],
            point_in_time_recovery=dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=dynamodb.TableServerSideEncryptionArgs(enabled=True),
            ttl=dynamodb.TableTtlArgs(attribute_name=TTL_ATTRIBUTE, enabled=True)
            if args.ttl_enabled
            else None,
            deletion_protection_enabled=args.deletion_protection,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.table_name = table.name
        self.table_arn = table.arn
        self.register_outputs({"table_name": self.table_name, "table_arn": self.table_arn})
