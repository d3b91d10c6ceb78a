"""The Kubernetes rights of an identity that only previews, cloud-neutral (EKS and AKS).

pulumi-kubernetes previews with server-side dry run, and the API server authorizes a dry run as
the real verb: a preview needs `patch` on every object it diffs and, for a new object, `create`
too (pulumi/pulumi-kubernetes#2213; Kubernetes API concepts, "Dry-run authorization"). Helm
releases need nothing: their preview renders the chart on the client (pulumi-kubernetes
provider/pkg/provider/helm_release.go: Check and Diff are local, Create and Update return early
in preview). So the grant is: read, create and patch on exactly the kinds the program manages,
namespaced kinds only in the namespaces where it manages them, never `delete`, `update`,
`escalate` or `bind`. The program manages these roles and bindings too, so each role covers the
RBAC kinds of its scope. That grants nothing new: without `escalate` and `bind`, RBAC lets an
identity create or patch a role or binding only with rules it already holds (Kubernetes RBAC,
"Privilege escalation prevention and bootstrapping"); the same check applies to dry runs, which
is why the caller passes the rules of every other ClusterRole the program manages (`held_rules`).

A previewer can do for real what it can preview (RBAC has no dry-run-only verb): give it to the
pull-request identity, not to people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import meta, rbac

RBAC_GROUP = "rbac.authorization.k8s.io"
PREVIEW_VERBS = ("get", "list", "watch", "create", "patch")
READ_VERBS = ("get", "list", "watch")
# The provider reads CRDs to tell how a custom resource is scoped: reading is enough.
CRD_READ = rbac.v1.PolicyRuleArgs(
    api_groups=["apiextensions.k8s.io"],
    resources=["customresourcedefinitions"],
    verbs=list(READ_VERBS),
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


# The kinds the cloud-neutral components manage (components/k8s/consumer.py, schedule.py,
# nodepools.py): the namespace and NodePools, and the consumer namespace's objects. A stack
# adds its own (its node class; system ConfigMaps).
CLUSTER_KINDS = (Kind("", "namespaces"), Kind("karpenter.sh", "nodepools"))
CONSUMER_KINDS = (
    Kind("", "serviceaccounts"),
    Kind("apps", "deployments"),
    Kind("policy", "poddisruptionbudgets"),
    Kind("networking.k8s.io", "networkpolicies"),
    Kind("batch", "cronjobs"),
    Kind("batch", "jobs"),  # a schedule's first heartbeat
    Kind("keda.sh", "scaledobjects"),
    Kind("keda.sh", "scaledjobs"),
    Kind("keda.sh", "triggerauthentications"),
)
# What this component manages itself, per scope.
CLUSTER_RBAC = (Kind(RBAC_GROUP, "clusterroles"), Kind(RBAC_GROUP, "clusterrolebindings"))
NAMESPACED_RBAC = (Kind(RBAC_GROUP, "roles"), Kind(RBAC_GROUP, "rolebindings"))


@dataclass(frozen=True)
class PreviewAccessArgs:
    name: str  # of the ClusterRole, Roles and bindings in the cluster
    subjects: Sequence[Subject]
    cluster_kinds: Sequence[Kind]  # cluster-scoped kinds the program manages
    namespaced_kinds: Mapping[str, Sequence[Kind]]  # namespace -> kinds managed there
    # Rules of the other ClusterRoles the program manages: a previewer must hold them (RBAC).
    held_rules: Sequence[rbac.v1.PolicyRuleArgs] = ()
    # What must exist before the namespaced roles: the namespaces the program creates.
    ready: Sequence[pulumi.Resource] = ()


def rules(kinds: Sequence[Kind]) -> list[rbac.v1.PolicyRuleArgs]:
    """One preview rule per API group, resources sorted and unique."""
    groups: dict[str, set[str]] = {}
    for kind in kinds:
        groups.setdefault(kind.group, set()).add(kind.resource)
    return [
        rbac.v1.PolicyRuleArgs(
            api_groups=[group], resources=sorted(names), verbs=list(PREVIEW_VERBS)
        )
        for group, names in sorted(groups.items())
    ]


class PreviewAccess(pulumi.ComponentResource):
    """A ClusterRole for the cluster-scoped kinds and, per namespace, a Role for the kinds
    managed there, each bound to the preview subjects."""

    def __init__(
        self, name: str, args: PreviewAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:PreviewAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subjects = [
            rbac.v1.SubjectArgs(kind=s.kind, name=s.name, api_group=RBAC_GROUP)
            for s in args.subjects
        ]
        cluster_role = rbac.v1.ClusterRole(
            f"{name}-cluster-role",
            metadata=meta.v1.ObjectMetaArgs(name=args.name),
            rules=[
                *rules([*args.cluster_kinds, *CLUSTER_RBAC]),
                CRD_READ,
                *args.held_rules,
            ],
            opts=child,
        )
        rbac.v1.ClusterRoleBinding(
            f"{name}-cluster-binding",
            metadata=meta.v1.ObjectMetaArgs(name=args.name),
            role_ref=rbac.v1.RoleRefArgs(
                api_group=RBAC_GROUP, kind="ClusterRole", name=cluster_role.metadata.name
            ),
            subjects=subjects,
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=list(args.ready))
        for namespace, kinds in args.namespaced_kinds.items():
            role = rbac.v1.Role(
                f"{name}-role-{namespace}",
                metadata=meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace),
                rules=rules([*kinds, *NAMESPACED_RBAC]),
                opts=in_namespace,
            )
            rbac.v1.RoleBinding(
                f"{name}-binding-{namespace}",
                metadata=meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace),
                role_ref=rbac.v1.RoleRefArgs(
                    api_group=RBAC_GROUP, kind="Role", name=role.metadata.name
                ),
                subjects=subjects,
                opts=in_namespace,
            )
        self.register_outputs({})
