"""The work queues on Azure: a locked-down storage account, and per workflow a queue and its
poison queue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import storage

POISON_SUFFIX = "-poison"


# The Event Grid router dead-letters what it cannot deliver here (one container per account).
DEAD_LETTER_CONTAINER = "router-dead-letters"
# Where the account lived when the stack had one queue (docs/routing.md).
LEGACY_OWNER = ("work", "edw:azure:StorageWorkQueue")


@dataclass(frozen=True)
class QueueAccountArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    account_name: str  # globally unique, 3-24 chars of a-z0-9
    network_default_action: Literal["Allow", "Deny"]
    tags: Mapping[str, str]


class QueueAccount(pulumi.ComponentResource):
    """StorageV2 account (Entra-only, TLS 1.2, infrastructure encryption) that holds every
    workflow's queues and the router's dead-letter container. No custom role: creating one needs
    Microsoft.Authorization/roleDefinitions/write, which neither Contributor nor Role Based
    Access Control Administrator has; the consumers use built-in roles (stacks/azure.py)."""

    account_name: pulumi.Output[str]
    account_id: pulumi.Output[str]
    dead_letter_container: pulumi.Output[str]
    dead_letter_container_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: QueueAccountArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:QueueAccount", name, None, opts)
        old_parent = pulumi.create_urn(*LEGACY_OWNER)

        def moved(old_name: str) -> pulumi.ResourceOptions:
            # Same resource, new parent and name: updated in place, never replaced.
            return pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(name=old_name, parent=old_parent)]
            )

        # Queues get infrastructure (double) encryption only with account-scoped keys.
        encrypted = storage.EncryptionServiceArgs(enabled=True, key_type="Account")
        account = storage.StorageAccount(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_LRS"),
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            # Entra ID only: no account keys or SAS; identities get data roles per queue.
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            allow_cross_tenant_replication=False,
            encryption=storage.EncryptionArgs(
                key_source="Microsoft.Storage",
                require_infrastructure_encryption=True,
                services=storage.EncryptionServicesArgs(queue=encrypted, blob=encrypted),
            ),
            network_rule_set=storage.NetworkRuleSetArgs(
                default_action=args.network_default_action, bypass="AzureServices"
            ),
            tags=dict(args.tags),
            opts=moved(f"{LEGACY_OWNER[0]}-account"),
        )
        container = storage.BlobContainer(
            f"{name}-dead-letters",
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            container_name=DEAD_LETTER_CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.account_name, self.account_id = account.name, account.id
        self.dead_letter_container, self.dead_letter_container_id = container.name, container.id
        self.register_outputs(
            {
                "account_name": self.account_name,
                "account_id": self.account_id,
                "dead_letter_container": self.dead_letter_container,
            }
        )


@dataclass(frozen=True)
class StorageWorkQueueArgs:
    resource_group_name: pulumi.Input[str]
    account_name: pulumi.Input[str]
    queue_name: str


class StorageWorkQueue(pulumi.ComponentResource):
    """A workflow's work queue and its poison queue, in the stack's queue account.

    Storage queues have no redrive: the consumer moves a message whose dequeue count exceeds
    EDW_MAX_DELIVERIES to `<queue>-poison` (the name the Azure Functions convention uses), and
    sets the visibility timeout on every receive.
    """

    queue_name: pulumi.Output[str]
    queue_id: pulumi.Output[str]
    poison_queue_name: pulumi.Output[str]
    poison_queue_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageWorkQueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:StorageWorkQueue", name, None, opts)
        queues = {
            role: storage.Queue(
                f"{name}-{role}",
                account_name=args.account_name,
                resource_group_name=args.resource_group_name,
                queue_name=queue_name,
                # Queue metadata names must be C# identifiers: letters, digits, underscores.
                metadata={"edw_role": role},
                opts=pulumi.ResourceOptions(parent=self),
            )
            for role, queue_name in (
                ("work", args.queue_name),
                ("poison", f"{args.queue_name}{POISON_SUFFIX}"),
            )
        }
        self.queue_name = queues["work"].name
        self.queue_id = queues["work"].id
        self.poison_queue_name = queues["poison"].name
        self.poison_queue_id = queues["poison"].id
        self.register_outputs(
            {
                "queue_name": self.queue_name,
                "queue_id": self.queue_id,
                "poison_queue_name": self.poison_queue_name,
                "poison_queue_id": self.poison_queue_id,
            }
        )
