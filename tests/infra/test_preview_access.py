"""Preview identities (edw:previewArns): exactly the Kubernetes rights a preview needs.

pulumi-kubernetes previews by server-side dry run, authorized as the real verb (create, patch):
the grant must cover every kind the program manages, where it manages it, and nothing that a
preview never does (delete, update, escalate, bind, secrets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws.cluster import PREVIEW_GROUP
from stacks.offline import ACCOUNT, StackRun, run_stack

PREVIEW_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pr-preview"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1"
# Every kind of object: a job workflow with a schedule, observability full (the collector's RBAC).
WORKFLOWS = [
    {"name": "work"},
    {
        "name": "nightly",
        "mode": "job",
        "schedule": "@daily",
        "filter": {"type": ["edw.schedule.nightly"]},
    },
]
NOT_KUBERNETES_OBJECTS = ("kubernetes:helm.sh/v3:Release", "pulumi:providers:kubernetes")


@pytest.fixture(scope="module")
def run() -> StackRun:
    return run_stack(
        "aws",
        {
            "previewArns": json.dumps([PREVIEW_ROLE]),
            "observability": "full",
            "workflows": json.dumps(WORKFLOWS),
        },
    )


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


def allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r.get("apiGroups", []) and resource in r["resources"] and verb in r["verbs"]
        for r in rules
        if "resources" in r
    )


def preview_roles(run: StackRun) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The preview ClusterRole's rules, and each namespace's preview Role rules."""
    cluster = run.one(f"{RBAC}:ClusterRole", "edw-preview-cluster-role").inputs["rules"]
    roles = {
        r.inputs["metadata"]["namespace"]: r.inputs["rules"]
        for r in run.of_type(f"{RBAC}:Role")
        if r.name.startswith("edw-preview-role")
    }
    return cluster, roles


def test_every_kind_the_program_manages_can_be_previewed(run: StackRun) -> None:
    """A dry-run patch of each object, or its create when it is new, is authorized: cluster
    objects through the ClusterRole, namespaced ones through the Role of their namespace."""
    cluster, roles = preview_roles(run)
    managed = [
        r
        for r in run.resources
        if r.custom and r.type.startswith("kubernetes:") and r.type not in NOT_KUBERNETES_OBJECTS
    ]
    kinds = {kind_of(r.type) for r in managed}
    assert {("apps", "deployments"), ("keda.sh", "scaledjobs"), ("batch", "cronjobs")} <= kinds
    assert {
        ("karpenter.k8s.aws", "ec2nodeclasses"),
        ("rbac.authorization.k8s.io", "roles"),
    } <= kinds
    for resource in managed:
        group, plural_name = kind_of(resource.type)
        namespace = resource.inputs["metadata"].get("namespace")
        rules = roles[namespace] if namespace else cluster
        for verb in ("get", "create", "patch"):
            assert allows(rules, group, plural_name, verb), (resource.name, verb)


def test_a_previewer_can_change_nothing_a_preview_never_does(run: StackRun) -> None:
    cluster, roles = preview_roles(run)
    for rules in (cluster, *roles.values()):
        verbs = {v for r in rules for v in r["verbs"]}
        assert verbs <= {"get", "list", "watch", "create", "patch"}
        resources = {x for r in rules for x in r.get("resources", [])}
        assert "*" not in resources
        assert "*" not in verbs
        assert not {"secrets", "pods/exec", "nodes/proxy", "configmaps"} & resources
    # Pods are read only (the collector's role needs it), never written.
    assert not allows(cluster, "", "pods", "create")


def test_a_previewer_holds_the_rules_of_every_cluster_role_it_previews(run: StackRun) -> None:
    """RBAC's escalation check applies to dry runs: patching a ClusterRole needs its rules."""
    cluster, _ = preview_roles(run)
    others = [r for r in run.of_type(f"{RBAC}:ClusterRole") if r.name != "edw-preview-cluster-role"]
    assert others  # the collector's, with observability full
    for role in others:
        for rule in role.inputs["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert allows(cluster, group, resource, verb), (role.name, resource, verb)


def test_the_roles_are_bound_to_the_group_of_the_previewers_access_entries(run: StackRun) -> None:
    group = {"kind": "Group", "name": PREVIEW_GROUP, "apiGroup": "rbac.authorization.k8s.io"}
    binding = run.one(f"{RBAC}:ClusterRoleBinding", "edw-preview-cluster-binding").inputs
    assert binding["subjects"] == [group]
    assert binding["roleRef"]["name"] == "edw-preview"
    (namespaced,) = run.of_type(f"{RBAC}:RoleBinding")
    assert namespaced.inputs["subjects"] == [group]
    assert namespaced.inputs["metadata"]["namespace"] == "edw"
    (entry,) = [
        e
        for e in run.of_type("aws:eks/accessEntry:AccessEntry")
        if e.inputs["principalArn"] == PREVIEW_ROLE
    ]
    assert entry.inputs["kubernetesGroups"] == [PREVIEW_GROUP]


def test_no_preview_objects_without_previewers(aws_run: StackRun) -> None:
    assert not [r for r in aws_run.resources if r.name.startswith("edw-preview")]
