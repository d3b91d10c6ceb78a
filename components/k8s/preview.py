"""The Kubernetes rights of an identity that only previews, cloud-neutral.

pulumi-kubernetes previews with server-side dry run, and the API server authorizes a dry run as
the real verb: a preview needs `patch` on every object it diffs and, for a new object, `create`
too (pulumi/pulumi-kubernetes#2213; Kubernetes API concepts, "Dry-run authorization"). Helm
releases need nothing: their preview renders the chart on the client (pulumi-kubernetes
provider/pkg/provider/helm_release.go: Check and Diff are local, Create and Update return early
in preview). So the grant is: read, create and patch on exactly the kinds the program manages,
namespaced kinds only in the namespaces it manages, never `delete`, `update`, `escalate` or
`bind`. RBAC's escalation check applies to dry runs too: to preview a ClusterRole the identity
must hold its rules, which is why the caller passes the rules of every role the program manages.

A previewer can do for real what it can preview (RBAC has no dry-run-only verb): give it to the
pull-request identity, not to people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_kubernetes import meta, rbac

RBAC_GROUP = "rbac.authorization.k8s.io"
PREVIEW_VERBS = ("get", "list", "watch", "create", "patch")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True)
class Grant:
    """One API group's resources (plural names) and the verbs allowed on them."""

    api_group: str  # "" for the core group
    resources: tuple[str, ...]
    verbs: tuple[str, ...] = PREVIEW_VERBS

    def rule(self) -> rbac.v1.PolicyRuleArgs:
        return rbac.v1.PolicyRuleArgs(
            api_groups=[self.api_group], resources=list(self.resources), verbs=list(self.verbs)
        )


# The kinds the cloud-neutral components manage (components/k8s/consumer.py, schedule.py,
# nodepools.py): the consumer namespace's objects, and the namespace and NodePools themselves.
CONSUMER_GRANTS = (
    Grant("", ("serviceaccounts",)),
    Grant("apps", ("deployments",)),
    Grant("batch", ("cronjobs", "jobs")),  # jobs: a schedule's first heartbeat
    Grant("policy", ("poddisruptionbudgets",)),
    Grant("networking.k8s.io", ("networkpolicies",)),
    Grant("keda.sh", ("scaledobjects", "scaledjobs", "triggerauthentications")),
)
CLUSTER_GRANTS = (Grant("", ("namespaces",)), Grant("karpenter.sh", ("nodepools",)))
# The provider reads CRDs to tell how a custom resource is scoped; reading is enough.
CRD_READ = Grant("apiextensions.k8s.io", ("customresourcedefinitions",), READ_VERBS)


@dataclass(frozen=True)
class PreviewAccessArgs:
    group: str  # the Kubernetes group the previewers' access entries / role assignments map to
    namespaces: Sequence[pulumi.Input[str]]  # where the program's namespaced objects live
    cluster_grants: Sequence[Grant] = CLUSTER_GRANTS
    namespaced_grants: Sequence[Grant] = CONSUMER_GRANTS
    # Rules of the ClusterRoles the program manages: a previewer must hold them (RBAC).
    held_rules: Sequence[Grant] = ()


class PreviewAccess(pulumi.ComponentResource):
    """A ClusterRole (cluster-scoped kinds) and, per namespace, a Role (namespaced kinds), each
    bound to the previewers' group. Both include the RBAC kinds themselves, so a preview can
    also diff these objects."""

    cluster_role_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: PreviewAccessArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:PreviewAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subject = rbac.v1.SubjectArgs(kind="Group", name=args.group, api_group=RBAC_GROUP)
        cluster_rbac = Grant(RBAC_GROUP, ("clusterroles", "clusterrolebindings"))
        cluster_role = rbac.v1.ClusterRole(
            f"{name}-cluster-role",
            metadata=meta.v1.ObjectMetaArgs(name=name),
            rules=[
                g.rule() for g in (*args.cluster_grants, cluster_rbac, CRD_READ, *args.held_rules)
            ],
            opts=child,
        )
        rbac.v1.ClusterRoleBinding(
            f"{name}-cluster-binding",
            metadata=meta.v1.ObjectMetaArgs(name=name),
            role_ref=rbac.v1.RoleRefArgs(
                api_group=RBAC_GROUP, kind="ClusterRole", name=cluster_role.metadata.name
            ),
            subjects=[subject],
            opts=child,
        )
        namespaced_rbac = Grant(RBAC_GROUP, ("roles", "rolebindings"))
        for i, namespace in enumerate(args.namespaces):
            role = rbac.v1.Role(
                f"{name}-role-{i}",
                metadata=meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
                rules=[g.rule() for g in (*args.namespaced_grants, namespaced_rbac)],
                opts=child,
            )
            rbac.v1.RoleBinding(
                f"{name}-binding-{i}",
                metadata=meta.v1.ObjectMetaArgs(name=name, namespace=namespace),
                role_ref=rbac.v1.RoleRefArgs(
                    api_group=RBAC_GROUP, kind="Role", name=role.metadata.name
                ),
                subjects=[subject],
                opts=child,
            )
        self.cluster_role_name = cluster_role.metadata.name
        self.register_outputs({"cluster_role_name": self.cluster_role_name})
