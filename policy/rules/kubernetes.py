"""Kubernetes workload rules: pod security, resources, probes, image pinning, Helm pinning."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import ResourceValidationPolicy

from .common import (
    LONG_RUNNING_KINDS,
    WORKLOAD_KINDS,
    Config,
    ResourceCheck,
    Schema,
    Subject,
    containers,
    dig,
    long_running_containers,
    namespace_of,
    pod_spec,
    resource_rule,
    string_list,
)

HELM_RELEASE = "k8s:helm.sh:Release"  # kubernetes:helm.sh/v3:Release
CPU_MEMORY = ["cpu", "memory"]


def _where(workload: Subject, container: Mapping[str, Any]) -> str:
    kind = workload.kind.rsplit(":", 1)[-1]
    return f"{kind} {workload.label!r} container {container.get('name')!r}"


def _non_root(workload: Subject, _: Config) -> Iterator[str]:
    spec = pod_spec(workload)
    pod = spec.get("securityContext") or {}
    for container in containers(spec):
        own = container.get("securityContext") or {}
        non_root = own.get("runAsNonRoot", pod.get("runAsNonRoot"))
        user = own.get("runAsUser", pod.get("runAsUser"))
        if non_root is not True:
            yield f"{_where(workload, container)} does not set runAsNonRoot=true"
        if user == 0:
            yield f"{_where(workload, container)} runs as UID 0"


def _read_only_root(workload: Subject, _: Config) -> Iterator[str]:
    for container in containers(pod_spec(workload)):
        if dig(container, "securityContext", "readOnlyRootFilesystem") is not True:
            yield f"{_where(workload, container)} does not set readOnlyRootFilesystem=true"


def _no_privilege_escalation(workload: Subject, _: Config) -> Iterator[str]:
    for container in containers(pod_spec(workload)):
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"{_where(workload, container)} does not set allowPrivilegeEscalation=false"
        if context.get("privileged") is True:
            yield f"{_where(workload, container)} is privileged"


def _resources(workload: Subject, config: Config) -> Iterator[str]:
    for container in containers(pod_spec(workload)):
        for section, required in (
            ("requests", config["requiredRequests"]),
            ("limits", config["requiredLimits"]),
        ):
            present = dig(container, "resources", section) or {}
            missing = [r for r in required if present.get(r) in (None, "")]
            if missing:
                yield f"{_where(workload, container)} has no {section} for {', '.join(missing)}"


def _probes(workload: Subject, config: Config) -> Iterator[str]:
    for container in long_running_containers(pod_spec(workload)):
        missing = [p for p in config["requiredProbes"] if not container.get(p)]
        if missing:
            yield f"{_where(workload, container)} has no {', '.join(missing)}"


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is (tag other than latest/digest)."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]  # a registry port (host:5000/app) is not a tag
    if ":" not in last:
        return "has no tag (implies :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return "uses :latest"
    return None


def _no_latest(workload: Subject, _: Config) -> Iterator[str]:
    for container in containers(pod_spec(workload)):
        image = str(container.get("image") or "")
        problem = image_problem(image) if image else "has no image"
        if problem:
            yield f"{_where(workload, container)} image {image!r} {problem}"


def _helm_pinned(release: Subject, _: Config) -> Iterator[str]:
    if not release.props.get("version"):
        yield f"Helm release {release.label!r} does not pin a chart version"


def _outside_exempt_namespaces(check: ResourceCheck) -> ResourceCheck:
    def checked(workload: Subject, config: Config) -> Iterator[str]:
        if namespace_of(workload.props) not in config["exemptNamespaces"]:
            yield from check(workload, config)

    return checked


def workload_rule(
    name: str,
    description: str,
    check: ResourceCheck,
    kinds: tuple[str, ...] = WORKLOAD_KINDS,
    config: Schema | None = None,
) -> ResourceValidationPolicy:
    """A rule over pod specs that teams can switch off for platform namespaces."""
    exempt = string_list("Namespaces whose workloads this rule skips.", ["kube-system"])
    return resource_rule(
        name,
        description,
        kinds,
        _outside_exempt_namespaces(check),
        config={**(config or {}), "exemptNamespaces": exempt},
    )


POLICIES = [
    workload_rule(
        "k8s-run-as-non-root",
        "Containers must run as a non-root user, limiting what a container escape can do.",
        _non_root,
    ),
    workload_rule(
        "k8s-read-only-root-filesystem",
        "Containers must have a read-only root filesystem, so an intruder cannot drop tools.",
        _read_only_root,
    ),
    workload_rule(
        "k8s-no-privilege-escalation",
        "Containers must set allowPrivilegeEscalation=false and never run privileged.",
        _no_privilege_escalation,
    ),
    workload_rule(
        "k8s-resources-set",
        "Containers must set CPU/memory requests (for scheduling and autoscaling) and limits "
        "(so one pod cannot starve a node).",
        _resources,
        config={
            "requiredRequests": string_list("Resources every container requests.", CPU_MEMORY),
            "requiredLimits": string_list("Resources every container limits.", CPU_MEMORY),
        },
    ),
    workload_rule(
        "k8s-probes-set",
        "Long-running containers (native sidecars included) must have probes, so broken pods "
        "are restarted and get no traffic or work.",
        _probes,
        LONG_RUNNING_KINDS,
        config={
            "requiredProbes": string_list(
                "Probes every long-running container needs.", ["livenessProbe", "readinessProbe"]
            )
        },
    ),
    workload_rule(
        "k8s-no-latest-image",
        "Images must be pinned by tag or digest, never ':latest', so deploys are reproducible.",
        _no_latest,
    ),
    resource_rule(
        "k8s-helm-chart-pinned",
        "Helm releases must pin a chart version, so an upstream release cannot change the "
        "cluster on the next deploy.",
        [HELM_RELEASE],
        _helm_pinned,
    ),
]
