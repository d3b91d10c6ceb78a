"""Who may do what on the Azure stack, as ARM and the API server would see it: the mocks send
role assignments as the SDK does and refuse them as ARM does; preview identities are bound as the
API server names them (their rights: test_preview_access.py); the workbook asks only for
aggregations its metrics support."""

from __future__ import annotations

import json

import pytest
from pulumi_azure_native import authorization

from stacks.offline import (
    DEPLOYER_OBJECT_ID,
    ArmError,
    ProviderMocks,
    StackRun,
    TenantState,
    run_stack,
)

APP = "55555555-2222-4333-8444-555555555555"
GROUP = "44444444-2222-4333-8444-555555555555"
RBAC = "rbac.authorization.k8s.io"


def test_the_sdk_sends_user_when_no_principal_type_is_given() -> None:
    """pulumi-azure-native authorization/role_assignment.py: principal_type defaults to "User"
    in what is sent, so a mock must judge the request with that value, not its absence."""
    sent = authorization.RoleAssignmentArgs(
        principal_id=APP, role_definition_id="r", scope="s"
    ).principal_type
    assert sent == "User"


@pytest.mark.parametrize(
    ("principal", "sent", "error"),
    [
        (
            APP,
            "User",
            f"UnmatchedPrincipalType: The PrincipalId '{APP}' has type 'ServicePrincipal'",
        ),
        (GROUP, "ServicePrincipal", "has type 'Group'"),
        ("66666666-2222-4333-8444-555555555555", "User", "PrincipalNotFound"),
    ],
)
def test_the_mocks_refuse_a_principal_type_arm_refuses(
    principal: str, sent: str, error: str
) -> None:
    mocks = ProviderMocks(
        "", "westeurope", tenant=TenantState(directory={APP: "ServicePrincipal", GROUP: "Group"})
    )
    with pytest.raises(ArmError, match=error):
        mocks._check_principal_type(principal, sent)
    mocks._check_principal_type(DEPLOYER_OBJECT_ID, "User")  # the default deployer is a person


def test_a_publisher_without_its_type_would_be_refused() -> None:
    """Before publishers carried their type, an app publisher was sent as User: ARM (and the
    mocks) refuse that, so the config insists on <type>:<object id>."""
    mocks = ProviderMocks("", "westeurope", tenant=TenantState(directory={APP: "ServicePrincipal"}))
    with pytest.raises(ArmError, match="UnmatchedPrincipalType"):
        mocks._check_principal_type(APP, "User")
    run = run_stack(
        "dev",
        {
            "routerPublishers": json.dumps([f"ServicePrincipal:{APP}"]),
            "offline:directory": json.dumps({APP: "ServicePrincipal"}),
        },
    )
    (grant,) = [
        g
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["principalId"] == APP
    ]
    assert grant.inputs["principalType"] == "ServicePrincipal"


@pytest.fixture(scope="module")
def previewed() -> StackRun:
    return run_stack(
        "dev",
        {
            "previewPrincipals": json.dumps([f"ServicePrincipal:{APP}", f"Group:{GROUP}"]),
            "offline:directory": json.dumps({APP: "ServicePrincipal", GROUP: "Group"}),
        },
    )


def test_preview_identities_are_bound_as_the_api_server_names_them(previewed: StackRun) -> None:
    """A service principal is the User named by its object id (kubelogin, "Using Service
    Principal"); a group the Group named by its object id."""
    bindings = [
        r
        for r in previewed.resources
        if r.type.startswith(f"kubernetes:{RBAC}/v1:") and "Binding" in r.type
    ]
    assert {b.inputs["metadata"].get("namespace") for b in bindings} == {None, "edw"}
    for binding in bindings:
        assert {(s["kind"], s["name"]) for s in binding.inputs["subjects"]} == {
            ("User", APP),
            ("Group", GROUP),
        }
    namespace = previewed.one("kubernetes:core/v1:Namespace")
    (role,) = [r for r in previewed.resources if r.type == f"kubernetes:{RBAC}/v1:Role"]
    assert previewed.depends_on(role, namespace)


def test_without_preview_identities_no_preview_rights_exist(dev_run: StackRun) -> None:
    assert not [r for r in dev_run.resources if r.type.startswith(f"kubernetes:{RBAC}/")]


def test_the_workbook_counts_cosmos_requests(dev_run: StackRun) -> None:
    """Cosmos DB TotalRequests supports the Count aggregation only; workbooks spell Count 7."""
    body = json.loads(
        dev_run.one("azure-native:applicationinsights:Workbook").inputs["serializedData"]
    )
    metrics = [m for item in body["items"] for m in item.get("content", {}).get("metrics", [])]
    (requests,) = [m for m in metrics if m["metric"].endswith("TotalRequests")]
    assert requests["aggregation"] == 7
