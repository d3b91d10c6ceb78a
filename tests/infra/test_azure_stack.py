"""The `dev` stack (Azure) run through Pulumi mocks: values, wiring, least privilege, ordering.

Role GUIDs are spelled out here on purpose (not imported from the program), so a wrong constant
in components/azure/roles.py fails these tests.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
import yaml

from stacks.config import ConfigError
from stacks.offline import SUBSCRIPTION, ProgramError, RecordedResource, StackRun, run_stack

ROLE_DEFINITIONS = (
    f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
)
QUEUE_MESSAGE_PROCESSOR = "8a0f0c08-91a1-4084-bc3d-661d67233fed"
QUEUE_MESSAGE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
QUEUE_DATA_READER = "19e7f393-937e-4f77-808e-94535e297925"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
COSMOS_TABLE_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"

RG = "azure-native:resources:ResourceGroup"
ACCOUNT = "azure-native:storage:StorageAccount"
QUEUE = "azure-native:storage:Queue"
COSMOS = "azure-native:cosmosdb:DatabaseAccount"
TABLE = "azure-native:cosmosdb:TableResourceTable"
TABLE_ROLE = "azure-native:cosmosdb:TableResourceTableRoleAssignment"
ROLE = "azure-native:authorization:RoleAssignment"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
AKS = "azure-native:containerservice:ManagedCluster"
ACR = "azure-native:containerregistry:Registry"
IMAGE = "docker-build:index:Image"

# spotCpuLimit/spotMemoryLimit and onDemandCpuLimit/onDemandMemoryLimit defaults.
LIMITS = {"spot": {"cpu": "64", "memory": "256Gi"}, "on-demand": {"cpu": "32", "memory": "128Gi"}}
# Entra-only cluster with a prebuilt image and a narrowed API server: the other branches.
HARDENED = {
    "disableLocalAccounts": "true",
    "adminGroupObjectIds": '["11111111-2222-4333-8444-555555555555"]',
    "apiAllowedCidrs": '["203.0.113.0/24"]',
    "consumerImage": "registry.example.com/edw-consumer:1.2.3",
}


@pytest.fixture(scope="module")
def run(dev_run: StackRun) -> StackRun:
    return dev_run


@pytest.fixture(scope="module")
def hardened() -> StackRun:
    return run_stack("dev", HARDENED)


def _role(run: StackRun, name: str) -> RecordedResource:
    return run.one(ROLE, name)


def _principal(run: StackRun, identity: str) -> str:
    return run.one(IDENTITY, f"{identity}-identity").outputs["principalId"]


def _client(run: StackRun, identity: str) -> str:
    return run.one(IDENTITY, f"{identity}-identity").outputs["clientId"]


def _trigger(run: StackRun) -> dict[str, Any]:
    (scaled,) = run.custom_resources("ScaledObject")
    (trigger,) = scaled.inputs["spec"]["triggers"]
    return trigger


# --- least privilege ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignment", "identity", "role", "queue"),
    [
        (
            "consumer-identity-queue-contributor",
            "consumer-identity",
            QUEUE_DATA_CONTRIBUTOR,
            "work-work",
        ),
        (
            "consumer-identity-poison-processor",
            "consumer-identity",
            QUEUE_MESSAGE_PROCESSOR,
            "work-poison",
        ),
        (
            "consumer-identity-poison-sender",
            "consumer-identity",
            QUEUE_MESSAGE_SENDER,
            "work-poison",
        ),
        ("keda-identity-queue-reader", "keda-identity", QUEUE_DATA_READER, "work-work"),
    ],
)
def test_queue_roles_are_scoped_to_one_queue(
    run: StackRun, assignment: str, identity: str, role: str, queue: str
) -> None:
    granted = _role(run, assignment).inputs
    assert granted["roleDefinitionId"] == ROLE_DEFINITIONS + role
    assert granted["scope"] == run.one(QUEUE, queue).id
    assert granted["scope"].endswith(
        f"/queueServices/default/queues/{run.one(QUEUE, queue).outputs['name']}"
    )
    assert granted["principalId"] == _principal(run, identity)
    assert granted["principalType"] == "ServicePrincipal"


def test_no_custom_role_is_created(run: StackRun) -> None:
    """Role definitions need roleDefinitions/write, which Contributor + Role Based Access
    Control Administrator lack: built-in roles only."""
    assert run.of_type(ROLE_DEFINITION) == []
    assert not [r for r in run.resources if "readiness" in r.type.lower() and "visible" in r.name]


def test_consumer_writes_the_results_table_only(run: StackRun) -> None:
    account = run.one(COSMOS)
    table = run.one(TABLE)
    (grant,) = run.of_type(TABLE_ROLE)
    assert grant.inputs["principalId"] == _principal(run, "consumer-identity")
    assert grant.inputs["accountName"] == account.outputs["name"]
    assert grant.inputs["roleDefinitionId"] == (
        f"{account.id}/tableRoleDefinitions/{COSMOS_TABLE_DATA_CONTRIBUTOR}"
    )
    assert grant.inputs["scope"] == f"{account.id}/dbs/TablesDB/colls/{table.outputs['name']}"


def test_identities_have_exactly_their_grants(run: StackRun) -> None:
    by_principal: dict[str, set[str]] = {}
    for grant in [*run.of_type(ROLE), *run.of_type(TABLE_ROLE)]:
        guid = grant.inputs["roleDefinitionId"].rsplit("/", 1)[1]
        by_principal.setdefault(grant.inputs["principalId"], set()).add(guid)
    assert by_principal[_principal(run, "consumer-identity")] == {
        QUEUE_DATA_CONTRIBUTOR,
        QUEUE_MESSAGE_PROCESSOR,
        QUEUE_MESSAGE_SENDER,
        COSMOS_TABLE_DATA_CONTRIBUTOR,
    }
    assert by_principal[_principal(run, "keda-identity")] == {QUEUE_DATA_READER}


@pytest.mark.parametrize("variant", ["run", "hardened"])
def test_no_grant_at_subscription_or_resource_group_scope(
    variant: str, request: pytest.FixtureRequest
) -> None:
    stack: StackRun = request.getfixturevalue(variant)
    broad = re.compile(r"^/subscriptions/[^/]+(/resourceGroups/[^/]+)?/?$", re.IGNORECASE)
    grants = [*stack.of_type(ROLE), *stack.of_type(TABLE_ROLE)]
    assert grants
    ids = {r.id for r in stack.resources}
    for grant in grants:
        scope = grant.inputs["scope"]
        assert not broad.match(scope), f"{grant.name} is granted at {scope}"
        # Every Azure RBAC scope is the id of one resource this stack created.
        if grant.type == ROLE:
            assert scope in ids, f"{grant.name} scope {scope} is not a resource of the stack"


def test_kubelet_pulls_from_the_registry(run: StackRun) -> None:
    pull = _role(run, "cluster-acr-pull").inputs
    kubelet = run.one(AKS).outputs["identityProfile"]["kubeletidentity"]["objectId"]
    assert pull["roleDefinitionId"] == ROLE_DEFINITIONS + ACR_PULL
    assert pull["scope"] == run.one(ACR).id
    assert pull["principalId"] == kubelet
    # The consumer's first pull must not race the grant.
    deployment = run.one("kubernetes:apps/v1:Deployment")
    assert run.depends_on(deployment, _role(run, "cluster-acr-pull"))


# --- workload identity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "subject"),
    [
        ("consumer-identity", "system:serviceaccount:edw:edw-consumer"),
        ("keda-identity", "system:serviceaccount:kube-system:keda-operator"),
    ],
)
def test_federated_credentials_trust_one_service_account(
    run: StackRun, identity: str, subject: str
) -> None:
    federation = run.one(FEDERATION, f"{identity}-federation").inputs
    issuer = run.one(AKS).outputs["oidcIssuerProfile"]["issuerURL"]
    assert issuer.startswith("https://")
    assert federation["issuer"] == issuer
    assert federation["subject"] == subject
    assert federation["audiences"] == ["api://AzureADTokenExchange"]
    assert federation["resourceName"] == run.one(IDENTITY, f"{identity}-identity").outputs["name"]


def test_service_account_and_pods_use_the_consumer_identity(run: StackRun) -> None:
    sa = run.one("kubernetes:core/v1:ServiceAccount", "consumer-sa").inputs["metadata"]
    assert sa["name"] == "edw-consumer"
    assert sa["annotations"] == {
        "azure.workload.identity/client-id": _client(run, "consumer-identity")
    }
    assert sa["labels"]["azure.workload.identity/use"] == "true"
    template = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert template["spec"]["serviceAccountName"] == "edw-consumer"


def test_consumer_env_names_the_azure_backends(run: StackRun) -> None:
    (container,) = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    account = run.one(COSMOS).outputs["name"]
    assert env["EDW_CLOUD"] == "azure"
    assert env["EDW_QUEUE"] == "work"
    assert env["EDW_DEAD_LETTER_QUEUE"] == "work-poison"
    assert env["EDW_TABLE"] == run.one(TABLE).outputs["name"]
    assert env["EDW_STORAGE_ACCOUNT"] == run.one(ACCOUNT).outputs["name"]
    assert env["EDW_TABLE_ENDPOINT"] == f"https://{account}.table.cosmos.azure.com:443/"
    assert container["image"] == run.outputs["image"]


# --- KEDA ---------------------------------------------------------------------------------------


def test_keda_authenticates_as_its_own_identity(run: StackRun) -> None:
    (auth,) = run.custom_resources("TriggerAuthentication")
    assert auth.inputs["spec"] == {
        "podIdentity": {"provider": "azure-workload", "identityId": _client(run, "keda-identity")}
    }
    assert _trigger(run)["authenticationRef"]["name"] == auth.inputs["metadata"]["name"]


def test_scaled_object_reads_the_work_queue(run: StackRun) -> None:
    trigger = _trigger(run)
    metadata = trigger["metadata"]
    assert trigger["type"] == "azure-queue"
    assert metadata["accountName"] == run.one(ACCOUNT).outputs["name"]
    assert metadata["queueName"] == run.one(QUEUE, "work-work").outputs["name"]
    # In-flight messages count, and any message at all activates: scaling to 0 strands nothing.
    assert metadata["queueLengthStrategy"] == "all"
    assert metadata["activationQueueLength"] == "0"
    assert metadata["queueLength"] == "20"
    # CRD and trigger-key validity: tests/infra/test_custom_resources.py (every stack).


# --- NAP ----------------------------------------------------------------------------------------


def test_node_pools_spot_first_then_on_demand(run: StackRun) -> None:
    (node_class,) = run.custom_resources("AKSNodeClass")
    pools = {
        p.inputs["metadata"]["name"]: p.inputs["spec"] for p in run.custom_resources("NodePool")
    }
    assert set(pools) == {"spot", "on-demand"}
    assert pools["spot"]["weight"] > pools["on-demand"]["weight"]
    for capacity, spec in pools.items():
        requirements = {r["key"]: r["values"] for r in spec["template"]["spec"]["requirements"]}
        assert requirements["karpenter.sh/capacity-type"] == [capacity]
        assert requirements["karpenter.azure.com/sku-family"] == ["D", "F"]
        assert spec["template"]["spec"]["nodeClassRef"] == {
            "group": "karpenter.azure.com",
            "kind": "AKSNodeClass",
            "name": node_class.inputs["metadata"]["name"],
        }
        assert spec["limits"] == LIMITS[capacity]
        assert spec["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert node_class.inputs["apiVersion"] == "karpenter.azure.com/v1beta1"
    # AKS owns the AKSNodeClass called "default" when NAP is on.
    assert node_class.inputs["metadata"]["name"] != "default"


def test_destroy_order_consumer_then_node_pools_then_node_class_then_cluster(
    run: StackRun,
) -> None:
    cluster = run.one(AKS)
    (node_class,) = run.custom_resources("AKSNodeClass")
    pools = run.custom_resources("NodePool")
    workload = [
        run.one("kubernetes:apps/v1:Deployment"),
        *run.custom_resources("ScaledObject"),
        *run.custom_resources("TriggerAuthentication"),
    ]
    assert run.depends_on(node_class, cluster)
    for pool in pools:
        assert run.depends_on(pool, node_class)
        assert not run.depends_on(node_class, pool)
        for resource in workload:
            assert run.depends_on(resource, pool), f"{resource.name} must go before {pool.name}"


# --- data services ------------------------------------------------------------------------------


def test_storage_account_is_entra_only_and_locked_down(run: StackRun) -> None:
    account = run.one(ACCOUNT).inputs
    assert account["kind"] == "StorageV2"
    assert account["allowSharedKeyAccess"] is False
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["encryption"]["requireInfrastructureEncryption"] is True
    assert account["encryption"]["services"]["queue"] == {"enabled": True, "keyType": "Account"}
    assert account["networkRuleSet"]["defaultAction"] == "Allow"
    assert len(account["accountName"]) <= 24
    assert re.fullmatch(r"[a-z0-9]+", account["accountName"])
    queues = {q.inputs["queueName"] for q in run.of_type(QUEUE)}
    assert queues == {"work", "work-poison"}


def test_cosmos_is_serverless_table_with_keys_off(run: StackRun) -> None:
    account = run.one(COSMOS).inputs
    assert account["disableLocalAuth"] is True
    assert account["minimalTlsVersion"] == "Tls12"
    assert {c["name"] for c in account["capabilities"]} == {"EnableTable", "EnableServerless"}
    assert account["backupPolicy"]["type"] == "Continuous"
    assert "options" not in run.one(TABLE).inputs  # serverless: no provisioned throughput


def test_provisioned_cosmos_follows_config_and_the_network_stays_reachable() -> None:
    stack = run_stack("dev", {"cosmosServerless": "false"})
    assert {c["name"] for c in stack.one(COSMOS).inputs["capabilities"]} == {"EnableTable"}
    assert stack.one(TABLE).inputs["options"]["throughput"] == 400
    assert stack.one(ACCOUNT).inputs["networkRuleSet"]["defaultAction"] == "Allow"
    # A new account: the program asked ARM whether one existed before choosing the mode.
    asked = [a for t, a in stack.invokes if t == "azure-native:cosmosdb:getDatabaseAccount"]
    assert asked == [
        {"accountName": stack.one(COSMOS).outputs["name"], "resourceGroupName": "edw-dev-rg"}
    ]


def test_an_existing_serverless_table_is_never_turned_provisioned() -> None:
    """Cosmos DB for Table cannot change an account's capacity mode: the program refuses the
    setting change, with the way forward, before it registers anything."""
    account = run_stack("dev").one(COSMOS).outputs["name"]
    with pytest.raises(ProgramError) as error:
        run_stack(
            "dev",
            {
                "cosmosServerless": "false",
                "offline:cosmosAccounts": json.dumps(
                    {account: ["EnableTable", "EnableServerless"]}
                ),
            },
        )
    assert isinstance(error.value.cause, ConfigError)
    message = str(error.value.cause)
    assert f"edw:cosmosServerless false: the results table's account {account} is serverless" in (
        message
    )
    assert "create a provisioned account and copy the table" in message
    assert error.value.resources == []
    # An account that is provisioned already goes on as it is.
    provisioned = run_stack(
        "dev",
        {
            "cosmosServerless": "false",
            "offline:cosmosAccounts": json.dumps({account: ["EnableTable"]}),
        },
    )
    assert provisioned.one(TABLE).inputs["options"]["throughput"] == 400


@pytest.mark.parametrize(
    ("overrides", "kept"), [({}, True), ({"deletionProtection": "false"}, False)]
)
def test_the_results_table_is_protected_from_deletion_by_default(
    overrides: dict[str, str], kept: bool
) -> None:
    stack = run_stack("dev", overrides)
    assert stack.one(COSMOS).protect is kept
    assert stack.one(TABLE).protect is kept


# --- cluster ------------------------------------------------------------------------------------


def test_cluster_runs_nap_keda_and_workload_identity(run: StackRun) -> None:
    aks = run.one(AKS).inputs
    (system,) = aks["agentPoolProfiles"]
    assert system["mode"] == "System"
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]
    assert system["scaleSetPriority"] == "Regular"
    assert system["count"] == 2
    assert system["vmSize"] == "Standard_D4ds_v5"
    network = aks["networkProfile"]
    assert (
        network["networkPlugin"],
        network["networkPluginMode"],
        network["networkDataplane"],
    ) == (
        "azure",
        "overlay",
        "cilium",
    )
    assert aks["nodeProvisioningProfile"]["mode"] == "Auto"
    assert aks["workloadAutoScalerProfile"]["keda"]["enabled"] is True
    assert aks["oidcIssuerProfile"]["enabled"] is True
    assert aks["securityProfile"]["workloadIdentity"]["enabled"] is True
    assert aks["aadProfile"]["managed"] is True
    assert aks["aadProfile"]["enableAzureRBAC"] is True
    assert aks["autoUpgradeProfile"] == {
        "upgradeChannel": "patch",
        "nodeOSUpgradeChannel": "NodeImage",
    }
    # The oldest minor AKS supports (components/versions.py): 1.34 left AKS in Nov 2026.
    assert aks["kubernetesVersion"] == "1.35"
    # Entra-only by default, the dev stack too; the API is open unless config narrows it.
    assert aks["disableLocalAccounts"] is True
    assert aks["aadProfile"]["enableAzureRBAC"] is True
    assert "apiServerAccessProfile" not in aks


@pytest.mark.parametrize("variant", ["run", "hardened"])
def test_the_program_never_fetches_or_exports_an_admin_credential(
    variant: str, request: pytest.FixtureRequest
) -> None:
    stack: StackRun = request.getfixturevalue(variant)
    tokens = [token for token, _ in stack.invokes]
    assert "azure-native:containerservice:listManagedClusterAdminCredentials" not in tokens
    assert "azure-native:containerservice:listManagedClusterUserCredentials" in tokens
    (user,) = yaml.safe_load(stack.outputs["kubeconfig"])["users"]
    assert set(user["user"]) == {"exec"}  # no certificate, key or token: kubelogin only


def test_the_logged_in_person_gets_the_cluster_with_their_principal_type(run: StackRun) -> None:
    """`make up STACK=dev` with nothing but `az login`: the deployer (a User, from its token's
    claims) is granted AKS RBAC Cluster Admin on this cluster, the grant named by its object id
    and answering to its old name, so an existing stack keeps it."""
    grant = run.one(ROLE, f"cluster-deployer-{RUNNER}")
    assert former_admin(grant)
    admin = grant.inputs
    assert admin["principalId"] == "00000000-0000-4000-8000-0000000000bb"
    assert admin["principalType"] == "User"
    assert admin["roleDefinitionId"] == ROLE_DEFINITIONS + AKS_RBAC_CLUSTER_ADMIN
    assert admin["scope"] == run.one(AKS).id


def test_a_ci_deployer_without_configured_principals_is_granted_as_a_service_principal() -> None:
    """An OIDC app or managed identity running `up` (a token with idtyp app): ARM refuses the
    SDK's default principalType User for it (UnmatchedPrincipalType), the mocks as well."""
    run = run_stack("dev", {"offline:deployerType": "ServicePrincipal"})
    assert run.one(ROLE, f"cluster-deployer-{RUNNER}").inputs["principalType"] == "ServicePrincipal"


def former_admin(grant: RecordedResource) -> bool:
    """Whether the grant answers to the name the runner's grant had before: deployer-admin."""
    return f"{grant.urn.rsplit('::', 1)[0]}::cluster-deployer-admin" in grant.aliases


RUNNER = "00000000-0000-4000-8000-0000000000bb"  # the mocks' signed-in identity


@pytest.mark.parametrize(
    ("configured", "inherits"),
    [
        # The person who ran the first `up` lists themself and a CI identity: their grant keeps
        # its assignment. Named anew, it would be a second assignment of the same principal,
        # role and scope while the old one still exists: RoleAssignmentExists.
        ([f"User:{RUNNER}", "ServicePrincipal:33333333-2222-4333-8444-555555555555"], RUNNER),
        # Someone else runs: no grant claims the old one, which `up` deletes.
        (["ServicePrincipal:33333333-2222-4333-8444-555555555555"], None),
    ],
)
def test_the_runners_grant_keeps_the_old_deployer_admin_assignment(
    configured: list[str], inherits: str | None
) -> None:
    run = run_stack(
        "dev",
        {
            "deployerPrincipals": json.dumps(configured),
            "offline:directory": json.dumps({p.split(":")[1]: p.split(":")[0] for p in configured}),
        },
    )
    grants = [g for g in run.of_type(ROLE) if g.name.startswith("cluster-deployer-")]
    assert sorted(g.name for g in grants) == sorted(
        f"cluster-deployer-{p.split(':')[1]}" for p in configured
    )
    assert [g.name for g in grants if former_admin(g)] == (
        [f"cluster-deployer-{inherits}"] if inherits else []
    )


def test_the_fallback_grant_says_who_gets_what_and_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO"):
        run_stack("dev", {"tags": json.dumps(["case=fallback-grant-log"])})
    (said,) = [r.getMessage() for r in caplog.records if "edw:deployerPrincipals" in r.getMessage()]
    assert f"(User {RUNNER})" in said
    assert "Azure Kubernetes Service RBAC Cluster Admin on the cluster" in said
    assert "edw:deployerPrincipals is empty" in said


def test_configured_deployers_and_previewers_get_least_aks_roles() -> None:
    deployer, group, app = (
        "33333333-2222-4333-8444-555555555555",
        "44444444-2222-4333-8444-555555555555",
        "55555555-2222-4333-8444-555555555555",
    )
    run = run_stack(
        "dev",
        {
            "deployerPrincipals": json.dumps([f"ServicePrincipal:{deployer}"]),
            "previewPrincipals": json.dumps([f"Group:{group}", f"ServicePrincipal:{app}"]),
            "offline:directory": json.dumps(
                {deployer: "ServicePrincipal", group: "Group", app: "ServicePrincipal"}
            ),
        },
    )
    aks = run.one(AKS).id
    grants = {
        g.name: (g.inputs["principalId"], g.inputs["principalType"], g.inputs["roleDefinitionId"])
        for g in run.of_type(ROLE)
        if g.inputs["scope"] == aks
    }
    # Not "whoever runs now": exactly the configured principals, keyed by object id.
    assert grants == {
        f"cluster-deployer-{deployer}": (
            deployer,
            "ServicePrincipal",
            ROLE_DEFINITIONS + AKS_RBAC_CLUSTER_ADMIN,
        ),
        f"cluster-previewer-{group}": (group, "Group", ROLE_DEFINITIONS + AKS_CLUSTER_USER),
        f"cluster-previewer-{app}": (
            app,
            "ServicePrincipal",
            ROLE_DEFINITIONS + AKS_CLUSTER_USER,
        ),
    }


def test_entra_only_cluster_uses_kubelogin(hardened: StackRun) -> None:
    aks = hardened.one(AKS)
    assert aks.inputs["disableLocalAccounts"] is True
    assert aks.inputs["aadProfile"]["adminGroupObjectIDs"] == [
        "11111111-2222-4333-8444-555555555555"
    ]
    assert aks.inputs["apiServerAccessProfile"]["authorizedIPRanges"] == ["203.0.113.0/24"]
    kubeconfig = yaml.safe_load(hardened.outputs["kubeconfig"])
    assert hardened.secret_outputs == {"kubeconfig"}
    # Same cluster and context as AKS returned; only the user's login is switched.
    (cluster,) = kubeconfig["clusters"]
    assert cluster["cluster"]["server"] == f"https://{aks.outputs['fqdn']}:443"
    assert kubeconfig["contexts"][0]["context"]["user"] == kubeconfig["users"][0]["name"]
    (user,) = kubeconfig["users"]
    assert user["user"]["exec"]["command"] == "kubelogin"
    assert user["user"]["exec"]["args"][:3] == ["get-token", "--login", "azurecli"]


# --- image ---------------------------------------------------------------------------------------


def test_image_is_built_and_pushed_to_the_stack_registry(run: StackRun) -> None:
    registry = run.one(ACR)
    login_server = registry.outputs["loginServer"]
    assert registry.inputs["adminUserEnabled"] is False
    image = run.one(IMAGE).inputs
    (export,) = image["exports"]
    assert export["registry"]["names"] == [f"{login_server}/edw-consumer"]
    assert export["registry"]["pushByDigest"] is True
    assert "tags" not in image
    assert re.fullmatch(r"src-[0-9a-f]{12}", image["labels"]["org.opencontainers.image.version"])
    (auth,) = image["registries"]
    assert auth["address"] == login_server
    assert auth["username"] == "00000000-0000-0000-0000-000000000000"
    # The password is the ACR refresh token exchanged for the deployer's ARM token.
    exchanges = [a for t, a in run.invokes if t == f"https://{login_server}/oauth2/exchange"]
    assert len(exchanges) == 1
    assert exchanges[0]["access_token"].count(".") == 2  # the provider's ARM token
    assert auth["password"].startswith("mock-acr-refresh-token-")
    # No AcrPush: the deployer's Contributor/Owner pushes already; the only grant on the
    # registry is the kubelet's pull.
    on_registry = [g.name for g in run.of_type(ROLE) if g.inputs["scope"] == registry.id]
    assert on_registry == ["cluster-acr-pull"]
    assert run.outputs["image"].startswith(f"{login_server}/edw-consumer@sha256:")


def test_prebuilt_image_skips_the_build(hardened: StackRun) -> None:
    assert hardened.of_type(IMAGE) == []
    (container,) = hardened.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == HARDENED["consumerImage"]


# --- outputs -------------------------------------------------------------------------------------


def test_stack_outputs(run: StackRun) -> None:
    assert run.outputs["cloud"] == "azure"
    assert run.outputs["location"] == "westeurope"
    assert run.outputs["resourceGroup"] == run.one(RG).outputs["name"]
    assert run.outputs["storageAccount"] == run.one(ACCOUNT).outputs["name"]
    assert run.outputs["queueName"] == "work"
    assert run.outputs["poisonQueueName"] == "work-poison"
    assert run.outputs["tableName"] == run.one(TABLE).outputs["name"]
    assert run.outputs["tableEndpoint"] == (
        f"https://{run.one(COSMOS).outputs['name']}.table.cosmos.azure.com:443/"
    )
    assert run.outputs["clusterName"] == run.one(AKS).outputs["name"] == "edw-dev"
    assert run.outputs["nodeResourceGroup"] == run.one(AKS).inputs["nodeResourceGroup"]
    assert run.outputs["registry"] == run.one(ACR).outputs["loginServer"]
    assert run.outputs["consumerNamespace"] == "edw"
    assert run.outputs["consumerClientId"] == _client(run, "consumer-identity")
    assert run.outputs["kedaClientId"] == _client(run, "keda-identity")
    assert run.secret_outputs == {"kubeconfig"}
    kubeconfig = yaml.safe_load(run.outputs["kubeconfig"])
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    assert server == f"https://{run.one(AKS).outputs['fqdn']}:443"
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "kubelogin"


def test_cosmos_table_assignments_get_a_guid_we_choose(run: StackRun) -> None:
    (assignment,) = run.of_type("azure-native:cosmosdb:TableResourceTableRoleAssignment")
    chosen = assignment.inputs["roleAssignmentId"]
    assert str(uuid.UUID(chosen)) == chosen
    expected = uuid.uuid5(
        uuid.NAMESPACE_URL, f"edw/{SUBSCRIPTION}/edw-dev/consumer-identity/table-writer"
    )
    assert chosen == str(expected)  # stable per stack and grant, not an auto-name
