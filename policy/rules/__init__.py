"""The rules of the EDW policy pack, importable without starting the policy server."""

from __future__ import annotations

from pulumi_policy import Policy

from . import alarms, aws, azure, kubernetes, resilience, routing, scaling, stack

PACK_NAME = "edw-policy"
POLICIES: list[Policy] = [
    *aws.POLICIES,
    *azure.POLICIES,
    *alarms.POLICIES,
    *kubernetes.POLICIES,
    *resilience.POLICIES,
    *routing.POLICIES,
    *scaling.POLICIES,
    *stack.POLICIES,
]
POLICIES_BY_NAME = {p.name: p for p in POLICIES}
