"""Azure rules: Storage, Cosmos DB, AKS identity/network, data-role scope and preview APIs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from .common import (
    UNKNOWN,
    Config,
    Node,
    StackFinding,
    Subject,
    as_list,
    dig,
    each,
    inconclusive,
    of_kind,
    preview_value,
    resource_rule,
    stack_rule,
    string_list,
)

STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"
COSMOS_ACCOUNT = "azure-native:cosmosdb:DatabaseAccount"
MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"

STORAGE_TLS_ORDER = ("TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3")
COSMOS_TLS_ORDER = ("Tls", "Tls11", "Tls12", "Tls13")
# Built-in data-plane roles (the GUID is the last segment of roleDefinitionId).
DATA_ROLE_DEFINITION_IDS = {
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "19e7f393-937e-4f77-808e-94535e297925": "Storage Queue Data Reader",
    "8a0f0c08-91a1-4084-bc3d-661d67233fed": "Storage Queue Data Message Processor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    # Registry content and the Kubernetes API: roles over what a registry or cluster holds
    # (learn.microsoft.com, "Azure built-in roles for Containers").
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "8311e382-0749-4cb8-b61a-304f252e45ec": "AcrPush",
    "c2f4ef07-c644-48eb-af81-4b1b4947fb11": "AcrDelete",
    "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b": "Azure Kubernetes Service RBAC Cluster Admin",
}
_BROAD_SCOPE = re.compile(
    r"^/$|^/subscriptions/[^/]+/?$|^/subscriptions/[^/]+/resourceGroups/[^/]+/?$"
    r"|^/providers/Microsoft\.Management/managementGroups/",
    re.IGNORECASE,
)
# Explicitly versioned tokens look like azure-native:containerservice/v20250202preview:Kind.
_PREVIEW_TOKEN = re.compile(r"^azure-native:[^:/]+/v[0-9a-z]*preview[0-9a-z]*:", re.IGNORECASE)


def _tls_at_least(value: object, minimum: str, order: tuple[str, ...]) -> bool:
    return value in order and order.index(str(value)) >= order.index(minimum)


# --- Storage -----------------------------------------------------------------------------------


def _storage_https(account: Subject, _: Config) -> Iterator[str]:
    if account.props.get("enableHttpsTrafficOnly") is not True:
        yield f"storage account {account.label!r} must set enableHttpsTrafficOnly=true"


def _storage_tls(account: Subject, config: Config) -> Iterator[str]:
    value = account.props.get("minimumTlsVersion")
    if not _tls_at_least(value, config["minimumTlsVersion"], STORAGE_TLS_ORDER):
        yield (
            f"storage account {account.label!r} minimumTlsVersion is {value!r}; "
            f"required: {config['minimumTlsVersion']} or newer"
        )


def _storage_no_public_blob(account: Subject, _: Config) -> Iterator[str]:
    if account.props.get("allowBlobPublicAccess") is not False:
        yield f"storage account {account.label!r} must set allowBlobPublicAccess=false"


def _storage_no_shared_key(account: Subject, _: Config) -> Iterator[str]:
    if account.props.get("allowSharedKeyAccess") is not False:
        yield (
            f"storage account {account.label!r} must set allowSharedKeyAccess=false (Entra ID only)"
        )


# --- Cosmos DB ---------------------------------------------------------------------------------


def _cosmos_local_auth(account: Subject, _: Config) -> Iterator[str]:
    if account.props.get("disableLocalAuth") is not True:
        yield f"Cosmos DB account {account.label!r} must set disableLocalAuth=true"


def _cosmos_tls(account: Subject, config: Config) -> Iterator[str]:
    value = account.props.get("minimalTlsVersion")
    if not _tls_at_least(value, config["minimalTlsVersion"], COSMOS_TLS_ORDER):
        yield (
            f"Cosmos DB account {account.label!r} minimalTlsVersion is {value!r}; "
            f"required: {config['minimalTlsVersion']} or newer"
        )


# --- AKS ---------------------------------------------------------------------------------------


def _aks_workload_identity(cluster: Subject, _: Config) -> Iterator[str]:
    if dig(cluster.props, "oidcIssuerProfile", "enabled") is not True:
        yield f"AKS cluster {cluster.label!r} must enable oidcIssuerProfile"
    if dig(cluster.props, "securityProfile", "workloadIdentity", "enabled") is not True:
        yield f"AKS cluster {cluster.label!r} must enable securityProfile.workloadIdentity"


def _aks_local_accounts(cluster: Subject, _: Config) -> Iterator[str]:
    if cluster.props.get("disableLocalAccounts") is not True:
        yield f"AKS cluster {cluster.label!r} must set disableLocalAccounts=true"


def _aks_azure_rbac(cluster: Subject, _: Config) -> Iterator[str]:
    if cluster.props.get("enableRBAC") is False:
        yield f"AKS cluster {cluster.label!r} disables Kubernetes RBAC"
    if dig(cluster.props, "aadProfile", "enableAzureRBAC") is not True:
        yield f"AKS cluster {cluster.label!r} must set aadProfile.enableAzureRBAC=true"


def _aks_network_policy(cluster: Subject, config: Config) -> Iterator[str]:
    policy = dig(cluster.props, "networkProfile", "networkPolicy")
    allowed = config["allowedNetworkPolicies"]
    if policy not in allowed:
        yield (
            f"AKS cluster {cluster.label!r} networkProfile.networkPolicy is {policy!r}; "
            f"allowed: {', '.join(allowed)}"
        )


# --- Authorization and API versions --------------------------------------------------------------


def _role_guid(role_definition_id: object) -> str:
    return str(role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def _custom_data_roles(nodes: list[Node]) -> dict[str, Node]:
    """Custom role definitions of the stack that grant data actions, by their GUID."""
    found = {}
    for node in of_kind(nodes, ROLE_DEFINITION):
        permissions = as_list(node.subject.props.get("permissions"))
        if any(as_list(dig(p, "dataActions")) for p in permissions):
            # Unknown in a preview when generated: the assignment's dependency says which.
            guid = preview_value(node.subject.props, "roleDefinitionId")
            found[_role_guid(node.subject.name if guid in (None, UNKNOWN) else guid)] = node
    return found


def _data_role_scope(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    builtin = {r.lower() for r in config["dataRoleDefinitionIds"]}
    custom = _custom_data_roles(nodes)

    def check(node: Node) -> Iterator[StackFinding]:
        assignment = node.subject
        scope = str(assignment.props.get("scope") or "")
        if not _BROAD_SCOPE.match(scope):
            return
        role_id = preview_value(assignment.props, "roleDefinitionId")
        guid = None if role_id is UNKNOWN else _role_guid(role_id)
        if guid in builtin:
            role = DATA_ROLE_DEFINITION_IDS.get(guid, guid)
        else:
            # A custom role's id may still be unknown in a preview: its dependency says which.
            definition = custom.get(guid) or next(
                (d for d in custom.values() if node.depends_on(d)), None
            )
            if definition is None:
                if role_id is UNKNOWN:
                    inconclusive(assignment, "roleDefinitionId")
                return
            role = f"{definition.subject.label!r} (custom, with data actions)"
        yield (
            f"role assignment {assignment.label!r} grants data role {role} at {scope!r}; "
            "scope it to the storage account, queue, table, registry or cluster",
            assignment.urn,
        )

    yield from each(of_kind(nodes, ROLE_ASSIGNMENT), check)


def _no_preview_api(resource: Subject, config: Config) -> Iterator[str]:
    if _PREVIEW_TOKEN.match(resource.type) and resource.type not in config["allowedPreviewTypes"]:
        yield (
            f"{resource.label!r} uses the preview API {resource.type}; add it to "
            "allowedPreviewTypes if that is intended"
        )


POLICIES = [
    resource_rule(
        "azure-storage-https-only",
        "Storage accounts must refuse plain HTTP: queue messages and keys travel over it.",
        [STORAGE_ACCOUNT],
        _storage_https,
    ),
    resource_rule(
        "azure-storage-min-tls",
        "Storage accounts must refuse TLS versions older than 1.2 (known weaknesses).",
        [STORAGE_ACCOUNT],
        _storage_tls,
        config={
            "minimumTlsVersion": {
                "type": "string",
                "enum": list(STORAGE_TLS_ORDER),
                "default": "TLS1_2",
                "description": "Oldest TLS version a storage account may accept.",
            }
        },
    ),
    resource_rule(
        "azure-storage-no-public-blob",
        "Storage accounts must not allow anonymous public blob access (data leaks).",
        [STORAGE_ACCOUNT],
        _storage_no_public_blob,
    ),
    resource_rule(
        "azure-storage-shared-key-disabled",
        "Storage accounts must disable shared keys so every data call is an audited Entra "
        "identity that can be revoked.",
        [STORAGE_ACCOUNT],
        _storage_no_shared_key,
    ),
    resource_rule(
        "azure-cosmos-local-auth-disabled",
        "Cosmos DB accounts must disable key-based (local) auth in favour of Entra RBAC.",
        [COSMOS_ACCOUNT],
        _cosmos_local_auth,
    ),
    resource_rule(
        "azure-cosmos-min-tls",
        "Cosmos DB accounts must refuse TLS versions older than 1.2.",
        [COSMOS_ACCOUNT],
        _cosmos_tls,
        config={
            "minimalTlsVersion": {
                "type": "string",
                "enum": list(COSMOS_TLS_ORDER),
                "default": "Tls12",
                "description": "Oldest TLS version a Cosmos DB account may accept.",
            }
        },
    ),
    resource_rule(
        "azure-aks-workload-identity",
        "AKS must run the OIDC issuer and workload identity so pods get short-lived Entra tokens "
        "instead of stored secrets.",
        [MANAGED_CLUSTER],
        _aks_workload_identity,
    ),
    resource_rule(
        "azure-aks-local-accounts-disabled",
        "AKS local accounts (static admin kubeconfig) must be off: access goes through Entra.",
        [MANAGED_CLUSTER],
        _aks_local_accounts,
    ),
    resource_rule(
        "azure-aks-azure-rbac",
        "AKS must use Azure RBAC for Kubernetes authorization, so access is granted and revoked "
        "in one place.",
        [MANAGED_CLUSTER],
        _aks_azure_rbac,
    ),
    resource_rule(
        "azure-aks-network-policy",
        "AKS must enforce Kubernetes NetworkPolicies, or every pod can reach every other pod.",
        [MANAGED_CLUSTER],
        _aks_network_policy,
        config={
            "allowedNetworkPolicies": string_list(
                "Accepted networkProfile.networkPolicy engines.", ["cilium", "calico", "azure"]
            )
        },
    ),
    stack_rule(
        "azure-data-role-scope",
        "Data-plane roles (queue, table, blob data, registry content, the Kubernetes API, and "
        "custom roles with data actions) must not be granted at subscription or resource-group "
        "scope: that reaches every account, registry or cluster in it.",
        _data_role_scope,
        config={
            "dataRoleDefinitionIds": string_list(
                "Role definition GUIDs treated as data roles.", sorted(DATA_ROLE_DEFINITION_IDS)
            )
        },
    ),
    resource_rule(
        "azure-no-preview-api",
        "Resources must not use preview Azure API versions, which change or vanish without the "
        "usual deprecation notice.",
        lambda subject: subject.type.startswith("azure-native:"),
        _no_preview_api,
        config={
            "allowedPreviewTypes": string_list(
                "Preview type tokens allowed on purpose, e.g. "
                "'azure-native:containerservice/v20250202preview:ManagedCluster'.",
                [],
            )
        },
    ),
]
