"""The rules read the property names and type tokens the real provider SDKs send.

sdk_program.py registers each resource through pulumi_aws, pulumi_kubernetes and
pulumi_azure_native under mocks (in a subprocess: mocks are process-global), once compliant
(``ok-*``) and once with one value wrong (``bad-*``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi_policy import ResourceValidationPolicy

from policy.offline import evaluate
from policy.rules import POLICIES_BY_NAME
from tests.policy.fixtures import Rec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recorded() -> list[Rec]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.policy.sdk_program"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [Rec(r["type"], r["name"], r["inputs"]) for r in json.loads(result.stdout)]


# Stack rules that judge one resource's own properties (the others need a coherent stack, which
# this list of unrelated resources is not).
PER_RESOURCE_STACK_RULES = {"azure-data-role-scope"}


def flagged(graph: list[Rec]) -> set[str]:
    """Names of the resources some rule on their own properties objects to."""
    return {
        v.resource.split(": ", 1)[1]
        for v in evaluate(graph)
        if isinstance(POLICIES_BY_NAME[v.policy], ResourceValidationPolicy)
        or v.policy in PER_RESOURCE_STACK_RULES
    }


def test_custom_resources_arrive_with_typed_tokens(recorded) -> None:
    # pulumi-kubernetes registers a CustomResource as kubernetes:<apiVersion>:<kind>.
    expected = {"kubernetes:karpenter.sh/v1:NodePool", "kubernetes:keda.sh/v1alpha1:ScaledObject"}
    assert expected <= {r.type for r in recorded}


def test_compliant_sdk_resources_pass_and_each_broken_one_is_caught(recorded) -> None:
    names = {r.name for r in recorded}
    assert len(names) == len(recorded) == 28
    assert flagged(recorded) == {n for n in names if n.startswith("bad-")}
