"""The DynamoDB table the consumers write results to, optionally a global table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import dynamodb, kms

# The hash key: app.backend.row_key of (workflow, source, id), so a redelivered message
# overwrites its own row. Its name and type are the table's schema: never change them.
PARTITION_KEY = "id"
TTL_ATTRIBUTE = "expiresAt"


@dataclass(frozen=True)
class DynamoResultsTableArgs:
    deletion_protection: bool
    ttl_enabled: bool
    tags: Mapping[str, str]
    # Regions that hold a replica (a global table, version 2019.11.21); empty: one region.
    replica_regions: Sequence[str] = ()


class DynamoResultsTable(pulumi.ComponentResource):
    """On-demand table keyed by row key (docs/app.md), with PITR, KMS encryption and optional TTL;
    with replica regions, a global table whose every replica has PITR and a key of its region.

    Encryption uses one multi-region KMS key: the primary in the stack's region and a replica
    key (same key material and id) in each replica region, which DynamoDB requires of every
    replica's key. One key to rotate, audit and grant, instead of one independent key per
    region; each replica still only uses the key in its own region.
    """

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str] | None  # the multi-region key, when there are replicas

    def __init__(
        self, name: str, args: DynamoResultsTableArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:DynamoResultsTable", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        # A single-region table keeps the AWS managed key (nothing to manage, nothing billed).
        key = (
            kms.Key(
                f"{name}-key",
                description="Results table encryption (multi-region: replicas share it)",
                multi_region=True,
                enable_key_rotation=True,
                deletion_window_in_days=7,
                tags=tags,
                opts=child,
            )
            if args.replica_regions
            else None
        )
        replica_keys = {
            region: kms.ReplicaKey(
                f"{name}-key-{region}",
                primary_key_arn=key.arn,  # type: ignore[union-attr]
                region=region,
                description=f"Results table encryption in {region}",
                deletion_window_in_days=7,
                tags=tags,
                opts=child,
            )
            for region in args.replica_regions
        }
        table = dynamodb.Table(
            f"{name}-table",
            billing_mode="PAY_PER_REQUEST",
            hash_key=PARTITION_KEY,
            attributes=[dynamodb.TableAttributeArgs(name=PARTITION_KEY, type="S")],
            point_in_time_recovery=dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=key.arn if key else None
            ),
            ttl=dynamodb.TableTtlArgs(attribute_name=TTL_ATTRIBUTE, enabled=True)
            if args.ttl_enabled
            else None,
            deletion_protection_enabled=args.deletion_protection,
            # Replicas are fed from the table's stream (new and old images, as global tables need).
            stream_enabled=True if replica_keys else None,
            stream_view_type="NEW_AND_OLD_IMAGES" if replica_keys else None,
            replicas=[
                dynamodb.TableReplicaArgs(
                    region_name=region,
                    kms_key_arn=replica.arn,
                    point_in_time_recovery=True,
                    propagate_tags=True,
                    deletion_protection_enabled=args.deletion_protection,
                )
                for region, replica in replica_keys.items()
            ]
            or None,
            tags=tags,
            opts=child,
        )
        self.table_name = table.name
        self.table_arn = table.arn
        self.key_arn = key.arn if key else None
        self.register_outputs({"table_name": self.table_name, "table_arn": self.table_arn})
