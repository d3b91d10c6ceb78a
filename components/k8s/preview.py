"""The Kubernetes rights of an identity that only previews, cloud-neutral (EKS and AKS).

What a pulumi-kubernetes preview sends (provider/pkg/provider/provider.go and pkg/await/await.go;
read at commit 94977969 of 2026-07-01, after 4.32.0: the pinned 4.34.2 could not be read here):
an object that exists is previewed by a server-side-apply PATCH with `dryRun=All`; a new object
by a POST create with `dryRun=All` (a PATCH only with `upsertExistingObjects`, which we leave
off so that an `up` never adopts an object it did not create). The API server authorizes a dry
run as the real verb (Kubernetes API concepts, "Dry-run authorization"). When it answers 403, the
provider does not fail the preview: Create and Update log "unable to compute Server-side dry-run"
and show the inputs as planned, without the server's defaulting and validation. Helm releases
need nothing: their preview renders the chart on the client (helm_release.go).

So the grant is, never `delete`, `update`, `escalate` or `bind`:
- in each namespace where the program manages objects, read, create and patch on exactly the
  kinds it manages there (the namespace is the boundary: RBAC cannot restrict `create` by name),
  except the RBAC kinds: roles and bindings are read, and patched only by name (this component's
  own Role and binding, the only ones the program makes there), never created, so a previewer
  cannot make a Role or bind one in the namespace (a preview of a new one is client-side, below);
- for cluster-scoped kinds (namespaces, NodePools, node classes, ClusterRoles and bindings), read,
  and `patch` restricted with `resourceNames` to the objects the program manages, no `create`:
  RBAC cannot restrict a POST create by name (Kubernetes RBAC, "Referring to resources": "You
  cannot restrict create or deletecollection requests by their resource name"), and an
  unrestricted create would let a previewer make any namespace or bind a role it holds to anyone.
  A preview adding a cluster-scoped object shows it client-side only; every later preview of it
  is a full server-side dry run.
A new namespaced Role or binding (the preview access first made, which a deployer's `up` does,
or renamed) is likewise previewed client-side: provider.go's Create answers the Forbidden dry run
with the inputs ("unable to compute Server-side dry-run and defaulting to client-side").
The program manages these roles and bindings too, so each role covers the RBAC kinds of its
scope, by name. Even an unrestricted create would grant no new rights (without `escalate` and
`bind`, RBAC lets an identity create or patch a role or binding only with rules it already holds:
Kubernetes RBAC, "Privilege escalation prevention and bootstrapping"), but it would let the
pull-request code bind those rights to any subject, a grant that outlives its own access.
The escalation check applies to dry runs too, which is why the caller passes every other
ClusterRole the program manages (`other_cluster_roles`), rules and name.

A previewer can do for real what it can preview (RBAC has no dry-run-only verb): give it to the
pull-request identity, not to people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes import meta, rbac

from components.k8s.nodepools import NODE_POOL_NAMES

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


NAMESPACES = Kind("", "namespaces")
NODE_POOLS = Kind("karpenter.sh", "nodepools")
CLUSTER_ROLES = Kind(RBAC_GROUP, "clusterroles")
CLUSTER_ROLE_BINDINGS = Kind(RBAC_GROUP, "clusterrolebindings")
# The kinds the cloud-neutral components manage in the consumer namespace
# (components/k8s/consumer.py, schedule.py). A stack adds its own (system ConfigMaps).
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
# What this component manages itself in a namespace, under its own name: read, patched by name.
NAMESPACED_RBAC = (Kind(RBAC_GROUP, "roles"), Kind(RBAC_GROUP, "rolebindings"))


@dataclass(frozen=True)
class OtherClusterRole:
    """Another ClusterRole the program manages, with its ClusterRoleBinding of the same name."""

    name: str
    rules: Sequence[rbac.v1.PolicyRuleArgs]


@dataclass(frozen=True)
class PreviewAccessArgs:
    name: str  # of the ClusterRole, Roles and bindings in the cluster
    subjects: Sequence[Subject]
    # Cluster-scoped objects the program manages, kind -> names (beyond the RBAC objects).
    cluster_objects: Mapping[Kind, Sequence[str]]
    namespaced_kinds: Mapping[str, Sequence[Kind]]  # namespace -> kinds managed there
    # The other ClusterRoles the program manages: a previewer must hold their rules (RBAC).
    other_cluster_roles: Sequence[OtherClusterRole] = ()
    # What must exist before the namespaced roles: the namespaces the program creates.
    ready: Sequence[pulumi.Resource] = ()
    # Namespaces the program does not own (kube-system), namespace -> kind -> the names it
    # manages there: read those kinds and patch only those objects, create nothing. Its own
    # namespaces bound a previewer; these hold the cluster's own objects (e.g. coredns-custom).
    foreign_objects: Mapping[str, Mapping[Kind, Sequence[str]]] = field(default_factory=dict)


def consumer_cluster_objects(namespace: str) -> dict[Kind, tuple[str, ...]]:
    """The cluster-scoped objects the cloud-neutral components manage: the consumer namespace
    (components/k8s/consumer.py) and the NodePools (components/k8s/nodepools.py)."""
    return {NAMESPACES: (namespace,), NODE_POOLS: NODE_POOL_NAMES}


def rules(kinds: Sequence[Kind], verbs: Sequence[str]) -> list[rbac.v1.PolicyRuleArgs]:
    """One rule per API group, resources sorted and unique."""
    groups: dict[str, set[str]] = {}
    for kind in kinds:
        groups.setdefault(kind.group, set()).add(kind.resource)
    return [
        rbac.v1.PolicyRuleArgs(api_groups=[group], resources=sorted(names), verbs=list(verbs))
        for group, names in sorted(groups.items())
    ]


def named_patches(objects: Mapping[Kind, Sequence[str]]) -> list[rbac.v1.PolicyRuleArgs]:
    """`patch` on exactly the named objects: one rule per kind, so that no kind's names apply to
    another kind of the same group."""
    return [
        rbac.v1.PolicyRuleArgs(
            api_groups=[kind.group],
            resources=[kind.resource],
            resource_names=sorted(set(names)),
            verbs=["patch"],
        )
        for kind, names in sorted(
            objects.items(), key=lambda item: (item[0].group, item[0].resource)
        )
    ]


def cluster_rules(args: PreviewAccessArgs) -> list[rbac.v1.PolicyRuleArgs]:
    """The ClusterRole's rules: read the cluster-scoped kinds, patch the program's objects of
    them (this component's own ClusterRole and binding, and the other ClusterRoles' too), read
    CRDs, and hold the other ClusterRoles' rules."""
    rbac_names = [args.name, *(role.name for role in args.other_cluster_roles)]
    objects: dict[Kind, list[str]] = {
        kind: list(names) for kind, names in args.cluster_objects.items()
    }
    for kind in (CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS):
        objects.setdefault(kind, []).extend(rbac_names)
    return [
        *rules(list(objects), READ_VERBS),
        *named_patches(objects),
        CRD_READ,
        *(rule for role in args.other_cluster_roles for rule in role.rules),
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
            rules=cluster_rules(args),
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
        own_rbac = {kind: [args.name] for kind in NAMESPACED_RBAC}
        namespaced = {
            namespace: [
                *rules(kinds, PREVIEW_VERBS),
                *rules(NAMESPACED_RBAC, READ_VERBS),
                *named_patches(own_rbac),
            ]
            for namespace, kinds in args.namespaced_kinds.items()
        }
        for namespace, objects in args.foreign_objects.items():
            own = {**objects, **own_rbac}
            namespaced[namespace] = [*rules(list(own), READ_VERBS), *named_patches(own)]
        for namespace, namespace_rules in namespaced.items():
            role = rbac.v1.Role(
                f"{name}-role-{namespace}",
                metadata=meta.v1.ObjectMetaArgs(name=args.name, namespace=namespace),
                rules=namespace_rules,
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
