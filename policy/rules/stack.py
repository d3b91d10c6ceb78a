"""Stack-level rules: relations between resources that no single resource can show.

Resources are linked by dependencies (the engine records that a QueuePolicy or a work queue was
built from another queue's outputs), never by computed outputs such as ARNs or URLs, because
those are unknown during the first preview and reading them would make the rule inconclusive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .aws import QUEUE_ROLES, SQS_QUEUE, is_dead_letter_queue, is_exempt_queue, statements
from .common import (
    UNKNOWN,
    Config,
    Node,
    StackFinding,
    as_list,
    containers,
    dig,
    each,
    inconclusive,
    is_set,
    json_document,
    namespace_of,
    of_kind,
    pod_spec,
    preview_value,
    stack_rule,
)

SQS_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
AZURE_QUEUE = "azure-native:storage:Queue"
NODEPOOL = "k8s:karpenter.sh:NodePool"
SCALED_OBJECT = "k8s:keda.sh:ScaledObject"
TRIGGER_AUTH = "k8s:keda.sh:TriggerAuthentication"
CLUSTER_TRIGGER_AUTH = "k8s:keda.sh:ClusterTriggerAuthentication"
DEPLOYMENT = "k8s:apps:Deployment"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
CAPACITY_TYPES = frozenset({"spot", "on-demand", "reserved"})
POISON_SUFFIX = "-poison"
VISIBILITY_ENV = "EDW_VISIBILITY_TIMEOUT_SECONDS"
SQS_DEFAULT_VISIBILITY = 30  # seconds, when visibilityTimeoutSeconds is unset
K8S_DEFAULT_GRACE = 30  # seconds, when terminationGracePeriodSeconds is unset


def k8s_name(node: Node) -> Any:
    return dig(node.subject.props, "metadata", "name")


def k8s_key(node: Node) -> tuple[str, Any]:
    """(namespace, name): how Kubernetes objects refer to each other."""
    return namespace_of(node.subject.props), k8s_name(node)


def redrives(queue: Node) -> bool:
    return is_set(queue.subject.props, "redrivePolicy")


def dead_letter_queues(nodes: list[Node], config: Config) -> list[Node]:
    """Queues marked as DLQs, or that another queue's redrive policy was built from."""
    queues = of_kind(nodes, SQS_QUEUE)
    return [
        q
        for q in queues
        if not redrives(q)
        and (
            is_dead_letter_queue(q.subject, config)
            or any(redrives(other) and other.depends_on(q) for other in queues)
        )
    ]


def work_queues(nodes: list[Node], config: Config) -> list[Node]:
    """SQS queues that consumers read: neither a DLQ nor exempt (interruption queue)."""
    dead = {q.subject.urn for q in dead_letter_queues(nodes, config)}
    return [
        q
        for q in of_kind(nodes, SQS_QUEUE)
        if q.subject.urn not in dead and not is_exempt_queue(q.subject, config)
    ]


# --- SQS transport ------------------------------------------------------------------------------


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    secure = dig(statement, "Condition", "Bool", "aws:SecureTransport")
    actions = {str(a).lower() for a in as_list(statement.get("Action"))}
    principal = statement.get("Principal")
    everyone = principal == "*" or dig(principal, "AWS") == "*"
    return (
        statement.get("Effect") == "Deny"
        and str(secure).lower() == "false"
        and bool(actions & {"sqs:*", "*"})
        and everyone
    )


def _policy_holders(queue: Node, nodes: list[Node]) -> list[Mapping[str, Any]]:
    """Props that may carry the queue's policy: its own (inline) and each QueuePolicy on it."""
    holders = [queue.subject.props]
    holders += [p.subject.props for p in of_kind(nodes, SQS_QUEUE_POLICY) if p.depends_on(queue)]
    return holders


def _sqs_tls_only(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    exempt = set(config["exemptQueueNames"])

    def check(queue: Node) -> Iterator[StackFinding]:
        if {queue.subject.label, queue.subject.name} & exempt:
            return
        policies = [preview_value(h, "policy") for h in _policy_holders(queue, nodes)]
        documents = [json_document(p) for p in policies if p is not UNKNOWN]
        if any(_denies_insecure_transport(s) for d in documents for s in statements(d)):
            return
        if UNKNOWN in policies:  # a policy whose text is only known after the update
            inconclusive(queue.subject, "policy")
        yield (
            f"queue {queue.subject.label!r} has no queue policy denying sqs:* when "
            "aws:SecureTransport is false",
            queue.subject.urn,
        )

    yield from each(of_kind(nodes, SQS_QUEUE), check)


# --- NodePool capacity mix ----------------------------------------------------------------------


def capacity_types(pool: Node) -> frozenset[str]:
    """Capacity types a NodePool may launch; Karpenter defaults to on-demand only."""
    requirements = as_list(dig(pool.subject.props, "spec", "template", "spec", "requirements"))
    for requirement in requirements:
        if dig(requirement, "key") != CAPACITY_TYPE:
            continue
        values = frozenset(str(v) for v in as_list(dig(requirement, "values")))
        operator = dig(requirement, "operator")
        if operator == "In":
            return values
        if operator == "NotIn":
            return CAPACITY_TYPES - values
        if operator == "Exists":
            return CAPACITY_TYPES
    return frozenset({"on-demand"})


def _spot_beside_on_demand(nodes: list[Node], _: Config) -> Iterator[StackFinding]:
    pools = of_kind(nodes, NODEPOOL)
    if not pools:
        return
    offered = frozenset().union(*(capacity_types(p) for p in pools))
    for wanted in ("spot", "on-demand"):
        if wanted not in offered:
            names = ", ".join(repr(p.subject.label) for p in pools)
            yield f"no NodePool allows {wanted} capacity (pools: {names})", None


# --- KEDA authentication --------------------------------------------------------------------------


def _trigger_auth_exists(nodes: list[Node], _: Config) -> Iterator[StackFinding]:
    namespaced = {k8s_key(n) for n in of_kind(nodes, TRIGGER_AUTH)}
    cluster_wide = {k8s_name(n) for n in of_kind(nodes, CLUSTER_TRIGGER_AUTH)}
    for scaled in of_kind(nodes, SCALED_OBJECT):
        namespace = namespace_of(scaled.subject.props)
        refs = [
            dig(t, "authenticationRef")
            for t in as_list(dig(scaled.subject.props, "spec", "triggers"))
            if dig(t, "authenticationRef")
        ]
        if not refs:
            yield (
                f"ScaledObject {scaled.subject.label!r} has no trigger with an authenticationRef",
                scaled.subject.urn,
            )
        for ref in refs:
            name, kind = dig(ref, "name"), dig(ref, "kind") or "TriggerAuthentication"
            found = (
                name in cluster_wide
                if kind == "ClusterTriggerAuthentication"
                else (namespace, name) in namespaced
            )
            if not found:
                yield (
                    f"ScaledObject {scaled.subject.label!r} refers to {kind} {name!r}, "
                    f"which this stack does not define in namespace {namespace!r}",
                    scaled.subject.urn,
                )


# --- Dead-letter / poison queues ------------------------------------------------------------------


def _sqs_dead_letters(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    dead = dead_letter_queues(nodes, config)
    for queue in work_queues(nodes, config):
        if not redrives(queue) or not any(queue.depends_on(d) for d in dead):
            yield (
                f"queue {queue.subject.label!r} does not redrive to a dead-letter queue of this "
                "stack",
                queue.subject.urn,
            )


def _azure_poison_queues(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    queues = of_kind(nodes, AZURE_QUEUE)
    exempt = set(config["exemptQueueNames"])

    def name(node: Node) -> str:
        return str(node.subject.props.get("queueName") or node.subject.name)

    def same_account(a: Node, b: Node) -> bool:
        # An auto-named account's name is unknown in a first preview: not a mismatch.
        accounts = {preview_value(n.subject.props, "accountName") for n in (a, b)}
        return len(accounts) == 1 or UNKNOWN in accounts

    def check(queue: Node) -> Iterator[StackFinding]:
        work = name(queue)
        if work.endswith(POISON_SUFFIX) or work in exempt:
            return
        poison = f"{work}{POISON_SUFFIX}"
        if not any(name(q) == poison and same_account(queue, q) for q in queues):
            yield (
                f"queue {work!r} has no poison queue {poison!r} in the same account",
                queue.subject.urn,
            )

    yield from each(queues, check)


def _dead_letters(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    yield from _sqs_dead_letters(nodes, config)
    yield from _azure_poison_queues(nodes, config)


# --- Drain time vs visibility -------------------------------------------------------------------


def consumers(nodes: list[Node]) -> list[tuple[Node, Node]]:
    """(ScaledObject, Deployment) pairs: the Deployments KEDA scales are the queue consumers."""
    deployments = {k8s_key(d): d for d in of_kind(nodes, DEPLOYMENT)}
    pairs = []
    for scaled in of_kind(nodes, SCALED_OBJECT):
        target = dig(scaled.subject.props, "spec", "scaleTargetRef") or {}
        if (target.get("kind") or "Deployment") != "Deployment":
            continue
        found = deployments.get((namespace_of(scaled.subject.props), target.get("name")))
        if found:
            pairs.append((scaled, found))
    return pairs


def _visibility_timeouts(
    scaled: Node, deployment: Node, nodes: list[Node], config: Config
) -> list[tuple[str, float]]:
    """(source, seconds) of every visibility timeout the consumer is subject to."""
    found: list[tuple[str, float]] = []
    for container in containers(pod_spec(deployment.subject)):
        for env in as_list(container.get("env")):
            if dig(env, "name") == VISIBILITY_ENV and dig(env, "value") is not None:
                found.append((f"env {VISIBILITY_ENV}", float(dig(env, "value"))))
    queues = work_queues(nodes, config)
    linked = [q for q in queues if deployment.depends_on(q) or scaled.depends_on(q)]
    for queue in linked or queues:  # unlinked (e.g. URL passed via a ConfigMap): all work queues
        seconds = queue.subject.props.get("visibilityTimeoutSeconds") or SQS_DEFAULT_VISIBILITY
        found.append((f"queue {queue.subject.label!r} visibilityTimeoutSeconds", float(seconds)))
    return found


def _grace_below_visibility(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    for scaled, deployment in consumers(nodes):
        spec = pod_spec(deployment.subject)
        grace = float(spec.get("terminationGracePeriodSeconds") or K8S_DEFAULT_GRACE)
        timeouts = _visibility_timeouts(scaled, deployment, nodes, config)
        label = deployment.subject.label
        if not timeouts:
            yield (
                f"consumer {label!r}: no queue visibility timeout found (set {VISIBILITY_ENV} "
                "or scale on an SQS queue of this stack)",
                deployment.subject.urn,
            )
        for source, seconds in timeouts:
            if grace >= seconds:
                yield (
                    f"consumer {label!r} terminationGracePeriodSeconds {grace:g} is not below "
                    f"{source} {seconds:g}: a draining pod's message would be redelivered "
                    "while it still works on it",
                    deployment.subject.urn,
                )


POLICIES = [
    stack_rule(
        "aws-sqs-deny-insecure-transport",
        "Every SQS queue must have a policy denying requests without TLS "
        "(aws:SecureTransport=false).",
        _sqs_tls_only,
        config={"exemptQueueNames": QUEUE_ROLES["exemptQueueNames"]},
    ),
    stack_rule(
        "karpenter-spot-beside-on-demand",
        "NodePools must offer spot capacity (cheap) beside on-demand (fallback when spot is "
        "reclaimed or unavailable).",
        _spot_beside_on_demand,
    ),
    stack_rule(
        "keda-trigger-authentication-exists",
        "Every ScaledObject must authenticate its scaler through a TriggerAuthentication of this "
        "stack (pod identity), not credentials in trigger metadata.",
        _trigger_auth_exists,
    ),
    stack_rule(
        "queue-has-dead-letter",
        "Every work queue must have a dead-letter (SQS) or '<queue>-poison' (Azure) queue in the "
        "stack, so failed messages are kept for inspection instead of lost or looping.",
        _dead_letters,
        config=QUEUE_ROLES,
    ),
    stack_rule(
        "consumer-grace-below-visibility",
        "A consumer's termination grace period must be shorter than the queue's visibility "
        "timeout, or scale-in redelivers messages that are still being processed.",
        _grace_below_visibility,
        config=QUEUE_ROLES,
    ),
]
