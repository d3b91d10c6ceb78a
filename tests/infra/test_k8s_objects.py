"""Kubernetes objects both stacks render, beyond what their CRDs and checkov check: Pod Security
Admission on the consumer namespace, disruption budgets, spreading, node pool taints and drain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stacks.offline import StackRun, run_stack

NAMESPACE = "kubernetes:core/v1:Namespace"
# Volume types the "restricted" Pod Security Standard allows (Kubernetes docs, "Pod Security
# Standards", Restricted: Volume Types).
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
WORKFLOWS = (
    '[{"name": "work"}, {"name": "nightly", "mode": "job", "schedule": "@daily",'
    ' "filter": {"type": ["edw.schedule.nightly"]}}]'
)


@pytest.fixture(scope="module", params=["aws", "dev"])
def run(request: pytest.FixtureRequest) -> StackRun:
    return run_stack(request.param, {"workflows": WORKFLOWS})


def pod_templates(run: StackRun) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template the stack renders: Deployments, ScaledJobs, CronJobs."""
    for r in run.resources:
        spec = r.inputs.get("spec") or {}
        if r.type.endswith(":Deployment"):
            yield r.name, spec["template"]
        elif r.type.endswith(":ScaledJob"):
            yield r.name, spec["jobTargetRef"]["template"]
        elif r.type.endswith(":CronJob"):
            yield r.name, spec["jobTemplate"]["spec"]["template"]


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the "restricted" profile refuses (Kubernetes docs, "Pod Security Standards")."""
    found = []
    security = pod.get("securityContext", {})
    if security.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(flag)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: {kinds}")
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        c = container.get("securityContext", {})
        if c.get("allowPrivilegeEscalation") is not False:
            found.append(f"{container['name']}: allowPrivilegeEscalation")
        if not (c.get("runAsNonRoot") or security.get("runAsNonRoot")):
            found.append(f"{container['name']}: runAsNonRoot")
        if "ALL" not in c.get("capabilities", {}).get("drop", []):
            found.append(f"{container['name']}: capabilities")
        if set(c.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{container['name']}: added capabilities")
    return found


def test_the_consumer_namespace_enforces_the_restricted_profile(run: StackRun) -> None:
    (namespace,) = [n for n in run.of_type(NAMESPACE) if n.name == "consumer-ns"]
    labels = namespace.inputs["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    # ... which every pod the stack runs there passes (or the API server would refuse it).
    templates = dict(pod_templates(run))
    assert len(templates) >= 3
    for name, template in templates.items():
        assert restricted_violations(template["spec"]) == [], name


def test_the_restricted_check_catches_a_privileged_pod(run: StackRun) -> None:
    _, template = next(pod_templates(run))
    pod = {
        **template["spec"],
        "securityContext": {},
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {}}],
    }
    pod["containers"] = [{**pod["containers"][0], "securityContext": {}}]
    assert len(restricted_violations(pod)) == 6


def test_a_not_ready_consumer_never_holds_a_drain(run: StackRun) -> None:
    for pdb in run.of_type("kubernetes:policy/v1:PodDisruptionBudget"):
        assert pdb.inputs["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_each_rollout_spreads_on_its_own(run: StackRun) -> None:
    for name, template in pod_templates(run):
        if "topologySpreadConstraints" in template["spec"]:
            (spread,) = template["spec"]["topologySpreadConstraints"]
            assert spread["matchLabelKeys"] == ["pod-template-hash"], name


def test_both_consumer_pools_are_tainted_and_only_our_pods_tolerate_it(run: StackRun) -> None:
    """A stray pod can neither land on a consumer node nor make Karpenter launch one for it."""
    taints = []
    for pool in run.custom_resources("NodePool"):
        (taint,) = pool.inputs["spec"]["template"]["spec"]["taints"]
        taints.append(taint)
    assert taints == [{"key": "edw/workload", "value": "consumer", "effect": "NoSchedule"}] * 2
    for name, template in pod_templates(run):
        tolerated = {(t["key"], t.get("value")) for t in template["spec"]["tolerations"]}
        on_pools = "affinity" in template["spec"]
        assert (("edw/workload", "consumer") in tolerated) == on_pools, name


def test_a_node_drain_is_bounded_by_the_longest_consumer_need(run: StackRun) -> None:
    for pool in run.custom_resources("NodePool"):
        # The job workflow's deadline (345 s) + 300 s for the PDB.
        assert pool.inputs["spec"]["template"]["spec"]["terminationGracePeriod"] == "645s"
