"""A user-assigned identity that exactly one Kubernetes service account can use (workload identity).

One component for every identity of the Azure stack: each workflow's consumer and schedule, KEDA's
and the queue metrics task's. Each grant names its role and the exact resource it applies to;
there are no subscription- or group-wide grants.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, cosmosdb, managedidentity

from components.azure.readiness import principal_known
from components.azure.roles import role_definition_id

# The audience AKS workload identity tokens carry (azure-workload-identity webhook default).
TOKEN_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class RoleGrant:
    """An Azure RBAC role on one resource (its full ARM id)."""

    name: str  # short, for the child resource name
    role_definition_id: pulumi.Input[str]
    scope: pulumi.Input[str]


@dataclass(frozen=True)
class CosmosTableGrant:
    """A Cosmos DB for Table data-plane role on one table of an account."""

    name: str
    account_name: pulumi.Input[str]
    role_definition_id: pulumi.Input[str]
    scope: pulumi.Input[str]
    resource_group_name: pulumi.Input[str]  # the account's (a recovery stack's is elsewhere)


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    oidc_issuer: pulumi.Input[str]
    namespace: str
    service_account: str
    roles: Sequence[RoleGrant] = ()
    table_roles: Sequence[CosmosTableGrant] = ()
    tags: Mapping[str, str] | None = None
    # Unique per stack (<subscription>/<prefix>-<stack>): seeds the ids of assignments that
    # need a GUID we choose, stable across runs and distinct across stacks.
    id_namespace: str = ""


def subject(namespace: str, service_account: str) -> str:
    """The `sub` claim of a projected service account token."""
    return f"system:serviceaccount:{namespace}:{service_account}"


class WorkloadIdentity(pulumi.ComponentResource):
    """Identity + federated credential for one service account + its least-privilege grants."""

    client_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=dict(args.tags or {}),
            opts=child,
        )
        managedidentity.FederatedIdentityCredential(
            f"{name}-federation",
            resource_group_name=args.resource_group_name,
            resource_name_=identity.name,
            issuer=args.oidc_issuer,
            subject=subject(args.namespace, args.service_account),
            audiences=[TOKEN_AUDIENCE],
            opts=child,
        )
        for grant in args.roles:
            assign_role(f"{name}-{grant.name}", identity.principal_id, grant, child)
        # Cosmos DB checks the principal in Entra, which learns of a new identity late.
        known = (
            [
                principal_known(
                    f"{name}-principal-known",
                    identity.principal_id,
                    pulumi.ResourceOptions(parent=self),
                )
            ]
            if args.table_roles
            else []
        )
        for grant in args.table_roles:
            cosmosdb.TableResourceTableRoleAssignment(
                f"{name}-{grant.name}",
                # Cosmos DB wants a GUID for the assignment's name: a deterministic one, so a
                # replace or a re-run addresses the same assignment instead of a random new one.
                role_assignment_id=str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"edw/{args.id_namespace}/{name}/{grant.name}")
                ),
                account_name=grant.account_name,
                resource_group_name=grant.resource_group_name,
                principal_id=identity.principal_id,
                role_definition_id=grant.role_definition_id,
                scope=grant.scope,
                opts=pulumi.ResourceOptions(parent=self, depends_on=known),
            )
        self.client_id = identity.client_id
        self.principal_id = identity.principal_id
        self.register_outputs(
            {
                "client_id": self.client_id,
                "principal_id": self.principal_id,
            }
        )


def assign_role(
    name: str,
    principal_id: pulumi.Input[str],
    grant: RoleGrant,
    opts: pulumi.ResourceOptions,
) -> authorization.RoleAssignment:
    """A managed identity's role on one resource. The assignment's name (a GUID) is left to the
    provider, which auto-names it with a random UUID at create (pulumi/pulumi-azure-native#582,
    fixed) and keeps it in the state: the assignment keeps it as long as its URN (or an alias)
    does; a new URN is a new GUID for the same principal, role and scope, which Azure refuses
    (RoleAssignmentExists) while the old assignment still stands."""
    return authorization.RoleAssignment(
        name,
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=grant.role_definition_id,
        scope=grant.scope,
        opts=opts,
    )


@dataclass(frozen=True)
class IdentityFactory:
    """The stack-wide settings of every workload identity, so each use names only its service
    account and its grants."""

    location: str
    subscription: str
    resource_group_name: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    tags: Mapping[str, str]
    id_namespace: str

    def role(self, name: str, guid: str, scope: pulumi.Input[str]) -> RoleGrant:
        return RoleGrant(name, role_definition_id(self.subscription, guid), scope)

    def __call__(
        self,
        name: str,
        namespace: str,
        service_account: str,
        roles: Sequence[RoleGrant],
        table_roles: Sequence[CosmosTableGrant] = (),
        *,
        opts: pulumi.ResourceOptions | None = None,
    ) -> WorkloadIdentity:
        return WorkloadIdentity(
            name,
            WorkloadIdentityArgs(
                resource_group_name=self.resource_group_name,
                location=self.location,
                oidc_issuer=self.oidc_issuer,
                namespace=namespace,
                service_account=service_account,
                roles=roles,
                table_roles=table_roles,
                tags=self.tags,
                id_namespace=self.id_namespace,
            ),
            opts=opts,
        )
