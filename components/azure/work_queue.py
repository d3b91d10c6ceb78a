"""The work queue on Azure: a locked-down storage account with the queue and its poison queue."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
from pulumi_azure_native import authorization, storage

from components.azure.readiness import role_definition_visible
from components.azure.roles import QUEUE_MESSAGE_WRITE, role_definition_id

POISON_SUFFIX = "-poison"


@dataclass(frozen=True)
class StorageWorkQueueArgs:
    resource_group_name: pulumi.Input[str]
    resource_group_id: pulumi.Input[str]
    subscription_id: str
    stack_name: str  # <prefix>-<stack>, names the custom role
    location: str
    account_name: str  # globally unique, 3-24 chars of a-z0-9
    queue_name: str
    network_default_action: Literal["Allow", "Deny"]
    tags: Mapping[str, str]


class StorageWorkQueue(pulumi.ComponentResource):
    """StorageV2 account (Entra-only, TLS 1.2, infrastructure encryption) + work and poison queue.

    Storage queues have no redrive: the consumer moves a message whose dequeue count exceeds
    EDW_MAX_DELIVERIES to `<queue>-poison` (the name the Azure Functions convention uses), and
    sets the visibility timeout on every receive.
    """

    account_name: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    queue_id: pulumi.Output[str]
    poison_queue_name: pulumi.Output[str]
    poison_queue_id: pulumi.Output[str]
    message_updater_role_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageWorkQueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:StorageWorkQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
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
            opts=child,
        )
        queues = {
            role: storage.Queue(
                f"{name}-{role}",
                account_name=account.name,
                resource_group_name=args.resource_group_name,
                queue_name=queue_name,
                # Queue metadata names must be C# identifiers: letters, digits, underscores.
                metadata={"edw_role": role},
                opts=child,
            )
            for role, queue_name in (
                ("work", args.queue_name),
                ("poison", f"{args.queue_name}{POISON_SUFFIX}"),
            )
        }
        self.message_updater_role_id = self._message_updater(name, args)
        self.account_name = account.name
        self.queue_name = queues["work"].name
        self.queue_id = queues["work"].id
        self.poison_queue_name = queues["poison"].name
        self.poison_queue_id = queues["poison"].id
        self.register_outputs(
            {
                "account_name": self.account_name,
                "queue_name": self.queue_name,
                "queue_id": self.queue_id,
                "poison_queue_name": self.poison_queue_name,
                "poison_queue_id": self.poison_queue_id,
                "message_updater_role_id": self.message_updater_role_id,
            }
        )

    def _message_updater(self, name: str, args: StorageWorkQueueArgs) -> pulumi.Output[str]:
        """A custom role with only Update Message, which the consumer needs to extend a
        message's visibility and no built-in queue role short of Data Contributor includes.

        Custom roles cannot be assignable at a single queue, so the definition lists the
        resource group; its assignment is still scoped to the work queue.
        """
        sub = args.subscription_id
        guid = uuid.uuid5(uuid.NAMESPACE_URL, f"edw/{sub}/{args.stack_name}/queue-message-updater")
        definition = authorization.RoleDefinition(
            f"{name}-message-updater",
            role_definition_id=str(guid),
            # Role names are unique per tenant: name the stack and its subscription.
            role_name=f"{args.stack_name} queue message updater ({sub[:8]})",
            description="Update messages (visibility) of the EDW work queue.",
            scope=args.resource_group_id,
            assignable_scopes=[args.resource_group_id],
            permissions=[authorization.PermissionArgs(data_actions=[QUEUE_MESSAGE_WRITE])],
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Role definitions propagate: an assignment made right away can be refused.
        visible = role_definition_visible(
            f"{name}-message-updater-visible",
            definition.id,
            pulumi.ResourceOptions(parent=self, depends_on=[definition]),
        )
        return pulumi.Output.all(definition.name, visible.attempts).apply(
            lambda a: role_definition_id(sub, a[0])
        )
