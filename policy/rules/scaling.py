"""Cost and scaling guardrails: bounded NodePools and ScaledObjects."""

from __future__ import annotations

from collections.abc import Iterator

from .common import Config, Subject, dig, quantity, resource_rule

NODEPOOL = "k8s:karpenter.sh:NodePool"
SCALED_OBJECT = "k8s:keda.sh:ScaledObject"
SCALED_JOB = "k8s:keda.sh:ScaledJob"
# Karpenter's (and AKS NAP's) pod annotation against voluntary disruption of its node.
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
GI = 2**30


def _nodepool_limits(pool: Subject, config: Config) -> Iterator[str]:
    limits = dig(pool.props, "spec", "limits") or {}
    bounds = (("cpu", config["maxCpu"], 1, "vCPU"), ("memory", config["maxMemoryGi"], GI, "Gi"))
    for resource, bound, unit, label in bounds:
        value = limits.get(resource)
        if value is None:
            yield f"NodePool {pool.label!r} has no spec.limits.{resource}: it can grow unbounded"
            continue
        try:
            amount = quantity(value) / unit
        except ValueError as error:
            yield f"NodePool {pool.label!r} spec.limits.{resource}: {error}"
            continue
        if amount > bound:
            yield (
                f"NodePool {pool.label!r} spec.limits.{resource} is {value} "
                f"({amount:g} {label}); allowed at most {bound:g} {label}"
            )


def _scaled_object_max(scaled: Subject, config: Config) -> Iterator[str]:
    spec = dig(scaled.props, "spec") or {}
    maximum = spec.get("maxReplicaCount")
    bound = config["maxReplicas"]
    kind = scaled.kind.rsplit(":", 1)[-1]
    if maximum is None:
        yield f"{kind} {scaled.label!r} has no maxReplicaCount (KEDA defaults to 100)"
        return
    if maximum > bound:
        yield f"{kind} {scaled.label!r} maxReplicaCount {maximum:g} exceeds {bound:g}"
    minimum = spec.get("minReplicaCount") or 0
    if minimum > maximum:
        yield f"{kind} {scaled.label!r} minReplicaCount {minimum:g} exceeds {maximum:g}"


def _scaled_job_safe(job: Subject, _: Config) -> Iterator[str]:
    target = dig(job.props, "spec", "jobTargetRef") or {}
    deadline = target.get("activeDeadlineSeconds")
    if not isinstance(deadline, int | float) or deadline <= 0:
        yield (
            f"ScaledJob {job.label!r} has no jobTargetRef.activeDeadlineSeconds: a stuck job "
            "would hold its messages and its node forever"
        )
    annotations = dig(target, "template", "metadata", "annotations") or {}
    if annotations.get(DO_NOT_DISRUPT) != "true":
        yield (
            f'ScaledJob {job.label!r} pods lack the {DO_NOT_DISRUPT}: "true" annotation: '
            "consolidation or drift could evict a job half way"
        )


POLICIES = [
    resource_rule(
        "karpenter-nodepool-limits",
        "Every Karpenter/NAP NodePool must cap total CPU and memory, or a scaling bug or a flood "
        "of work buys nodes without bound.",
        [NODEPOOL],
        _nodepool_limits,
        config={
            "maxCpu": {
                "type": "number",
                "minimum": 1,
                "default": 256,
                "description": "Most vCPUs one NodePool may provision.",
            },
            "maxMemoryGi": {
                "type": "number",
                "minimum": 1,
                "default": 1024,
                "description": "Most memory (GiB) one NodePool may provision.",
            },
        },
    ),
    resource_rule(
        "keda-scaledobject-max-replicas",
        "Every ScaledObject and ScaledJob must set maxReplicaCount within the team's bound, so a "
        "queue backlog cannot scale consumers (and nodes) without limit.",
        [SCALED_OBJECT, SCALED_JOB],
        _scaled_object_max,
        config={
            "maxReplicas": {
                "type": "integer",
                "minimum": 1,
                "default": 100,
                "description": "Highest allowed maxReplicaCount.",
            }
        },
    ),
    resource_rule(
        "keda-scaledjob-deadline-and-undisrupted",
        "Every ScaledJob must bound each job with activeDeadlineSeconds and mark its pods "
        f"{DO_NOT_DISRUPT}, so a job is never evicted half way by consolidation or drift.",
        [SCALED_JOB],
        _scaled_job_safe,
    ),
]
