"""Karpenter's controller policy is upstream's (v1.14.1 CloudFormation), nothing less, nothing more.

Every (action, resource) upstream grants must be granted here with the same conditions, on the
same resource or a narrower one; every (action, resource) granted here must be covered by an
upstream grant with the same conditions.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest

from stacks.offline import ACCOUNT, StackRun
from tests.reference_data import karpenter_template

REGION, CLUSTER = "us-east-1", "edw-aws"
Grant = tuple[str, str, str]  # (action, resource, canonical JSON of the condition)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(statements: list[dict[str, Any]]) -> set[Grant]:
    return {
        (action, resource, json.dumps(s.get("Condition", {}), sort_keys=True))
        for s in statements
        if s["Effect"] == "Allow"
        for action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    }


def upstream_grants(node_role: str, queue: str) -> set[Grant]:
    template = karpenter_template()
    values = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "ClusterName": CLUSTER,
        "KarpenterNodeRole.Arn": node_role,
        "KarpenterInterruptionQueue.Arn": queue,
    }
    statements = []
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if not str(props.get("ManagedPolicyName", "")).startswith("KarpenterController"):
            continue
        text = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], props["PolicyDocument"])
        statements.extend(json.loads(text)["Statement"])
    return grants(statements)


@pytest.fixture(scope="module")
def rendered(aws_run: StackRun) -> tuple[set[Grant], set[Grant]]:
    role = aws_run.one("aws:iam/role:Role", "karpenter-controller-role")
    [policy] = [
        r
        for r in aws_run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.inputs["role"] == role.outputs["name"]
    ]
    ours = grants(json.loads(policy.inputs["policy"])["Statement"])
    node_role = aws_run.one("aws:iam/role:Role", "karpenter-node").outputs["arn"]
    queue = aws_run.one("aws:sqs/queue:Queue", "karpenter-interruption").outputs["arn"]
    return ours, upstream_grants(node_role, queue)


def covered(grant: Grant, by: set[Grant]) -> bool:
    """Some grant in ``by`` allows the same action under the same condition on a resource
    pattern that includes this one."""
    action, resource, condition = grant
    return any(a == action and c == condition and fnmatchcase(resource, r) for a, r, c in by)


def test_upstream_template_has_the_controller_policies() -> None:
    theirs = upstream_grants("arn:node", "arn:queue")
    actions = {a for a, _, _ in theirs}
    assert {"ec2:DescribeInstanceStatus", "arc-zonal-shift:GetManagedResource"} <= actions
    assert len(actions) >= 30


def test_every_upstream_grant_is_given_with_the_same_conditions(rendered) -> None:
    ours, theirs = rendered
    missing = sorted(g for g in theirs if not covered(g, ours))
    assert missing == []


def test_nothing_beyond_upstream_is_granted(rendered) -> None:
    ours, theirs = rendered
    extra = sorted(g for g in ours if not covered(g, theirs))
    assert extra == []


def test_the_comparison_catches_a_dropped_action_and_a_loosened_condition(rendered) -> None:
    ours, theirs = rendered
    dropped = {g for g in ours if g[0] != "ec2:DescribeInstanceStatus"}
    assert [g for g in theirs if not covered(g, dropped)]
    loosened = {(a, r, "{}") if a == "ec2:TerminateInstances" else (a, r, c) for a, r, c in ours}
    assert [g for g in loosened if not covered(g, theirs)]
