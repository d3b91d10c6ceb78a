"""What a preview identity may do in the cluster: read, and create/patch (never delete) exactly
the kinds the program manages, where it manages them.

pulumi-kubernetes previews with a server-side dry run, which the API server authorizes as the
real verb: a preview needs `patch` (and `create` for new objects) on every kind it previews
(pulumi/pulumi-kubernetes#2213; Kubernetes API concepts, "Dry-run authorization"). Those rights
are granted with Kubernetes RBAC, per namespace where the kinds are namespaced, because a
cloud's own RBAC cannot always name them (on AKS, Azure RBAC reaches custom resources only
through custom roles with ABAC conditions: docs/azure.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import meta, rbac

PREVIEW_VERBS = ("get", "list", "watch", "create", "patch")
# The provider reads CRDs to tell how a custom resource is scoped: reading is enough.
CRD_READ = rbac.v1.PolicyRuleArgs(
    api_groups=["apiextensions.k8s.io"],
    resources=["customresourcedefinitions"],
    verbs=["get", "list", "watch"],
)


@dataclass(frozen=True)
class Kind:
    """A resource as RBAC names it: API group ("" for core) and plural resource name."""

    group: str
    resource: str


@dataclass(frozen=True)
class Subject:
    """A Kubernetes RBAC subject: kind User or Group, and its name as the API server sees it."""

    kind: str
    name: str


@dataclass(frozen=True)
class PreviewAccessArgs:
    name: str  # of the ClusterRole, Roles and bindings
    subjects: Sequence[Subject]
    cluster_kinds: Sequence[Kind]  # cluster-scoped kinds (namespaces, NodePools...)
    namespaced_kinds: Mapping[str, Sequence[Kind]]  # namespace -> kinds managed there
    # What must exist before the namespaced roles: the namespaces the program creates.
    ready: Sequence[pulumi.Resource] = ()


def rules(kinds: Sequence[Kind]) -> list[rbac.v1.PolicyRuleArgs]:
    groups: dict[str, list[str]] = {}
    for kind in kinds:
        groups.setdefault(kind.group, []).append(kind.resource)
    return [
        rbac.v1.PolicyRuleArgs(
            api_groups=[group], resources=sorted(set(names)), verbs=list(PREVIEW_VERBS)
        )
        for group, names in sorted(groups.items())
    ]


class PreviewAccess(pulumi.ComponentResource):
    """A ClusterRole for the cluster-scoped kinds, a Role per namespace for the others, each
    bound to the preview subjects."""

    def __init__(
        self, name: str, args: PreviewAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:PreviewAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subjects = [
            rbac.v1.SubjectArgs(kind=s.kind, name=s.name, api_group="rbac.authorization.k8s.io")
            for s in args.subjects
        ]
        role = rbac.v1.ClusterRole(
            f"{name}-cluster",
            metadata=meta.v1.ObjectMetaArgs(name=args.name),
            rules=[*rules(args.cluster_kinds), CRD_READ],
            opts=child,
        )
        rbac.v1.ClusterRoleBinding(
            f"{name}-cluster-binding",
            metadata=meta.v1.ObjectMetaArgs(name=args.name),
            role_ref=rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role.metadata.name
            ),
            subjects=subjects,
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=list(args.ready))
        for namespace, kinds in args.namespaced_kinds.items():
            local = rbac.v1.Role(
                f"{name}-{namespace}",
                metadata=meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace),
                rules=rules(kinds),
                opts=in_namespace,
            )
            rbac.v1.RoleBinding(
                f"{name}-{namespace}-binding",
                metadata=meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace),
                role_ref=rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=local.metadata.name
                ),
                subjects=subjects,
                opts=in_namespace,
            )
        self.register_outputs({})
