"""Preview identities (AWS edw:previewArns, Azure edw:previewPrincipals): exactly the Kubernetes
rights a preview needs, from the one component both stacks use (components/k8s/preview.py).

pulumi-kubernetes previews by server-side dry run, authorized as the real verb (a POST create
for a new object, a server-side-apply patch for one that exists): the grant must cover every kind
the program manages, where it manages it, and nothing that a preview never does (delete, update,
escalate, bind, secrets). Cluster-scoped objects are patchable by name only, and never creatable
(RBAC cannot restrict a create by name; the provider previews a forbidden dry run client-side)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws.cluster import PREVIEW_GROUP
from stacks.offline import ACCOUNT, StackRun, run_stack

PREVIEW_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pr-preview"
APP = "55555555-2222-4333-8444-555555555555"
GROUP = "44444444-2222-4333-8444-555555555555"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
PREVIEW_NAME = "edw-preview"  # the Kubernetes name of every preview role and binding
PREVIEW_VERBS = {"get", "list", "watch", "create", "patch"}
# Every kind of object: a job workflow with a schedule, observability full (the collector's
# ClusterRole on AWS, the metrics agent's ConfigMap in kube-system on Azure).
WORKFLOWS = [
    {"name": "work"},
    {
        "name": "nightly",
        "mode": "job",
        "schedule": "@daily",
        "filter": {"type": ["edw.schedule.nightly"]},
    },
]
EVERYTHING = {"observability": "full", "workflows": json.dumps(WORKFLOWS)}
PREVIEWERS = {
    "aws": {"previewArns": json.dumps([PREVIEW_ROLE])},
    "dev": {
        "previewPrincipals": json.dumps([f"ServicePrincipal:{APP}", f"Group:{GROUP}"]),
        "offline:directory": json.dumps({APP: "ServicePrincipal", GROUP: "Group"}),
    },
}
# What only one cloud manages, beyond the common kinds.
OWN_KINDS = {
    "aws": {(None, "karpenter.k8s.aws", "ec2nodeclasses")},
    "dev": {(None, "karpenter.azure.com", "aksnodeclasses"), ("kube-system", "", "configmaps")},
}
NOT_KUBERNETES_OBJECTS = ("kubernetes:helm.sh/v3:Release", "pulumi:providers:kubernetes")
Scoped = tuple[str | None, str, str]  # (namespace or None for cluster scope, group, resource)
Named = tuple[str, str, str]  # (group, resource, name) of a cluster-scoped object


@pytest.fixture(scope="module", params=["aws", "dev"])
def run(request: pytest.FixtureRequest) -> StackRun:
    return run_stack(request.param, {**EVERYTHING, **PREVIEWERS[request.param]})


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def kind_of(token: str) -> tuple[str, str]:
    """(API group, plural resource) of a registration's type token, group/version:Kind."""
    _, group_version, kind = token.split(":")
    group = group_version.split("/")[0]
    return ("" if group == "core" else group), plural(kind)


def objects(run: StackRun) -> list[Any]:
    return [
        r
        for r in run.resources
        if r.custom and r.type.startswith("kubernetes:") and r.type not in NOT_KUBERNETES_OBJECTS
    ]


def managed(run: StackRun) -> set[Scoped]:
    """Every kind of Kubernetes object the program manages, with its namespace."""
    return {(r.inputs["metadata"].get("namespace"), *kind_of(r.type)) for r in objects(run)}


def cluster_objects(run: StackRun) -> set[Named]:
    """Every cluster-scoped object the program manages, by name."""
    return {
        (*kind_of(r.type), r.inputs["metadata"]["name"])
        for r in objects(run)
        if not r.inputs["metadata"].get("namespace")
    }


def preview_roles(run: StackRun) -> dict[str | None, list[dict[str, Any]]]:
    """The rules of the preview ClusterRole (key None) and of each namespace's preview Role."""
    roles = [
        r
        for r in (*run.of_type(f"{RBAC}:ClusterRole"), *run.of_type(f"{RBAC}:Role"))
        if r.inputs["metadata"]["name"] == PREVIEW_NAME
    ]
    return {r.inputs["metadata"].get("namespace"): r.inputs["rules"] for r in roles}


def allows(
    rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str = ""
) -> bool:
    """Whether RBAC authorizes the request: a rule with resourceNames covers only requests that
    carry one of those names (a POST create carries none; Kubernetes RBAC, "Referring to
    resources")."""
    return any(
        group in r["apiGroups"]
        and resource in r["resources"]
        and verb in r["verbs"]
        and (not r.get("resourceNames") or name in r["resourceNames"])
        for r in rules
    )


def writable(roles: dict[str | None, list[dict[str, Any]]]) -> set[Scoped]:
    """What each namespace's Role lets a previewer write, by kind."""
    return {
        (namespace, group, resource)
        for namespace, rules in roles.items()
        if namespace is not None
        for r in rules
        if "create" in r["verbs"] or "patch" in r["verbs"]
        for group in r["apiGroups"]
        for resource in r["resources"]
    }


def patchable_by_name(cluster_rules: list[dict[str, Any]]) -> set[Named]:
    """What the ClusterRole lets a previewer patch, by name."""
    return {
        (group, resource, name)
        for r in cluster_rules
        if "patch" in r["verbs"]
        for group in r["apiGroups"]
        for resource in r["resources"]
        for name in r["resourceNames"]
    }


def other_cluster_roles(run: StackRun) -> list[Any]:
    return [
        r
        for r in run.of_type(f"{RBAC}:ClusterRole")
        if r.inputs["metadata"]["name"] != PREVIEW_NAME
    ]


def test_every_kind_the_program_manages_can_be_previewed(run: StackRun) -> None:
    """Namespaced objects: the dry-run create of a new one and the dry-run patch of an existing
    one, through the Role of their namespace. Cluster-scoped objects: the dry-run patch, by name,
    through the ClusterRole."""
    roles = preview_roles(run)
    kinds = managed(run)
    stack = run.stack
    # The fixture exercises every kind: the common ones, this cloud's own, the RBAC objects.
    assert {
        ("edw", "apps", "deployments"),
        ("edw", "keda.sh", "scaledjobs"),
        ("edw", "batch", "cronjobs"),
        ("edw", "batch", "jobs"),
        ("edw", "rbac.authorization.k8s.io", "roles"),
        (None, "rbac.authorization.k8s.io", "clusterroles"),
        *OWN_KINDS[stack],
    } <= kinds
    for namespace, group, resource in kinds - {k for k in kinds if k[0] is None}:
        if namespace == "kube-system" or group == RBAC_GROUP:
            continue  # the cluster's namespace, and roles and bindings: below, by name
        for verb in ("get", "create", "patch"):
            assert allows(roles[namespace], group, resource, verb), (namespace, resource, verb)
    # Our roles and bindings: read, and patched (an existing one's dry run) by name.
    for r in objects(run):
        namespace = r.inputs["metadata"].get("namespace")
        group, resource = kind_of(r.type)
        if namespace and group == RBAC_GROUP:
            for verb in ("get", "patch"):
                name = r.inputs["metadata"]["name"]
                assert allows(roles[namespace], group, resource, verb, name), (name, verb)
    # Our objects in kube-system (not ours to create in): read, and patched by name.
    for r in objects(run):
        if r.inputs["metadata"].get("namespace") == "kube-system":
            group, resource = kind_of(r.type)
            name = r.inputs["metadata"]["name"]
            for verb in ("get", "patch"):
                assert allows(roles["kube-system"], group, resource, verb, name), (name, verb)
    # Cluster-scoped objects: read, and patched (an existing object's dry run) by name.
    for group, resource, name in cluster_objects(run):
        assert allows(roles[None], group, resource, "get", name), (resource, name)
        assert allows(roles[None], group, resource, "patch", name), (resource, name)


def test_a_previewer_creates_no_cluster_scoped_object_and_patches_only_ours(run: StackRun) -> None:
    """Before, the ClusterRole let a previewer create and patch every namespace, NodePool, node
    class, ClusterRole and binding of the cluster. Now: patch by name, exactly the program's
    objects, and no create (RBAC cannot restrict a create by name: a new cluster-scoped object is
    previewed client-side)."""
    cluster = preview_roles(run)[None]
    ours = cluster_objects(run)
    for group, resource in {(g, r) for g, r, _ in ours}:
        assert not allows(cluster, group, resource, "create"), resource
        for _, _, name in sorted(n for n in ours if n[:2] == (group, resource)):
            assert not allows(cluster, group, resource, "create", name), (resource, name)
    for name in ("kube-system", "default", "keda", "kube-public"):
        assert not allows(cluster, "", "namespaces", "patch", name), name
    assert not allows(cluster, "karpenter.sh", "nodepools", "patch", "default")
    for resource in ("clusterroles", "clusterrolebindings"):
        assert not allows(cluster, "rbac.authorization.k8s.io", resource, "patch", "cluster-admin")
    for rule in cluster:
        if {"create", "patch"} & set(rule["verbs"]):
            assert rule["verbs"] == ["patch"], rule
            assert rule["resourceNames"], rule


def test_a_previewer_may_write_nothing_more(run: StackRun) -> None:
    """Create/patch exactly where the program manages objects (plus what RBAC requires it to
    hold of the other ClusterRoles); no other verb, no wildcard, no secrets, no exec."""
    roles = preview_roles(run)
    held = {
        (None, group, resource)
        for role in other_cluster_roles(run)
        for r in role.inputs["rules"]
        if {"create", "patch"} & set(r["verbs"])
        for group in r["apiGroups"]
        for resource in r["resources"]
    }
    assert held == set()  # the collector's ClusterRole only reads
    assert writable(roles) == {k for k in managed(run) if k[0] is not None}
    assert patchable_by_name(roles[None]) == cluster_objects(run)
    for rules in roles.values():
        verbs = {v for r in rules for v in r["verbs"]}
        assert verbs <= PREVIEW_VERBS
        resources = {x for r in rules for x in r["resources"]}
        assert not {"*", "secrets", "pods/exec", "nodes/proxy"} & resources
    # Beyond the writable kinds, only CRDs (how the provider scopes custom resources) and the
    # rules of the other ClusterRoles are readable.
    (crds,) = [r for r in roles[None] if r["apiGroups"] == ["apiextensions.k8s.io"]]
    assert crds == {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    }


def test_a_previewer_holds_the_rules_of_every_cluster_role_it_previews(run: StackRun) -> None:
    """RBAC's escalation check applies to dry runs: patching a ClusterRole needs its rules."""
    cluster = preview_roles(run)[None]
    others = other_cluster_roles(run)
    assert bool(others) == (run.stack == "aws")  # the AMP collector's, with observability full
    for role in others:
        for rule in role.inputs["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert allows(cluster, group, resource, verb), (role.name, resource, verb)
    # Read only: the collector's pods are never written by a previewer.
    assert not allows(cluster, "", "pods", "create")


def test_eks_roles_are_bound_to_the_group_of_the_previewers_access_entries() -> None:
    run = run_stack("aws", {**EVERYTHING, **PREVIEWERS["aws"]})
    group = {"kind": "Group", "name": PREVIEW_GROUP, "apiGroup": "rbac.authorization.k8s.io"}
    bindings = [
        b
        for b in (
            *run.of_type(f"{RBAC}:ClusterRoleBinding"),
            *run.of_type(f"{RBAC}:RoleBinding"),
        )
        if b.inputs["metadata"]["name"] == PREVIEW_NAME
    ]
    assert {b.inputs["metadata"].get("namespace") for b in bindings} == {None, "edw"}
    for binding in bindings:
        assert binding.inputs["subjects"] == [group]
        assert binding.inputs["roleRef"]["name"] == PREVIEW_NAME
    (entry,) = [
        e
        for e in run.of_type("aws:eks/accessEntry:AccessEntry")
        if e.inputs["principalArn"] == PREVIEW_ROLE
    ]
    assert entry.inputs["kubernetesGroups"] == [PREVIEW_GROUP]


def test_aks_system_configmaps_are_previewable_only_with_observability_full() -> None:
    """kube-system holds the metrics agent's ConfigMap only with observability full: without
    it, the previewers get no Role there."""
    run = run_stack("dev", PREVIEWERS["dev"])
    assert set(preview_roles(run)) == {None, "edw"}
    assert "kube-system" in preview_roles(run_stack("dev", {**EVERYTHING, **PREVIEWERS["dev"]}))


@pytest.mark.parametrize("stack_fixture", ["aws_run", "dev_run"])
def test_no_preview_objects_without_previewers(
    stack_fixture: str, request: pytest.FixtureRequest
) -> None:
    stack_run: StackRun = request.getfixturevalue(stack_fixture)
    assert not [
        r
        for r in stack_run.resources
        if r.type.startswith(RBAC) and r.inputs["metadata"]["name"] == PREVIEW_NAME
    ]


def test_in_kube_system_previewers_patch_only_the_programs_objects_and_create_nothing() -> None:
    """kube-system is the cluster's, not ours: a previewer may read ConfigMaps there and patch
    the metrics agent's settings and its own Role and binding by name, nothing else (no
    coredns-custom, no binding of its Role to anyone)."""
    rules = preview_roles(run_stack("dev", {**EVERYTHING, **PREVIEWERS["dev"]}))["kube-system"]
    assert allows(rules, "", "configmaps", "get", "coredns-custom")
    assert allows(rules, "", "configmaps", "patch", "ama-metrics-settings-configmap")
    assert not allows(rules, "", "configmaps", "patch", "coredns-custom")
    for resource in ("configmaps", "roles", "rolebindings"):
        group = "" if resource == "configmaps" else "rbac.authorization.k8s.io"
        assert not allows(rules, group, resource, "create")
    assert allows(rules, "rbac.authorization.k8s.io", "rolebindings", "patch", PREVIEW_NAME)
    assert not allows(rules, "rbac.authorization.k8s.io", "rolebindings", "patch", "other")


def test_in_its_own_namespaces_a_previewer_creates_no_role_or_binding(run: StackRun) -> None:
    """Before, the consumer namespace's Role let a previewer create and patch any Role and
    RoleBinding there: bind its rights to any subject. Now: read them, and patch by name only the
    program's own (the preview Role and binding); a new one previews client-side."""
    roles = preview_roles(run)
    own = {
        r.inputs["metadata"]["name"]
        for r in objects(run)
        if kind_of(r.type)[0] == RBAC_GROUP and r.inputs["metadata"].get("namespace")
    }
    assert own == {PREVIEW_NAME}  # the only roles and bindings the program makes in a namespace
    for namespace in {"edw", *(["kube-system"] if run.stack == "dev" else [])}:
        rules = roles[namespace]
        for resource in ("roles", "rolebindings"):
            assert allows(rules, RBAC_GROUP, resource, "list")
            assert allows(rules, RBAC_GROUP, resource, "patch", PREVIEW_NAME)
            assert not allows(rules, RBAC_GROUP, resource, "create")
            assert not allows(rules, RBAC_GROUP, resource, "create", PREVIEW_NAME)
            assert not allows(rules, RBAC_GROUP, resource, "patch", "other")
        for rule in rules:
            if RBAC_GROUP in rule["apiGroups"] and "patch" in rule["verbs"]:
                assert rule["verbs"] == ["patch"]
                assert rule["resourceNames"] == [PREVIEW_NAME]
