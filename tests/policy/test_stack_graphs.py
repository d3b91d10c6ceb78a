"""The whole pack against each stack's full resource graph, recorded under mocks.

Each stack must pass with zero mandatory violations, and deliberately broken copies of the
recorded graph (one property changed, as a bad pull request would) must be caught.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import pytest

from policy.offline import STACK_CONFIG_DIR, PackConfig, evaluate, format_report
from policy.rules.azure import DATA_ROLE_DEFINITION_IDS
from policy.rules.common import as_list, dig, kind_of
from stacks import offline as stacks_offline


@dataclass
class Copy:
    """A mutable copy of a RecordedResource (same fields), so tests can break one property."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    provider: str = ""

    @property
    def kind(self) -> str:
        return kind_of(self.type, self.inputs)

    @property
    def k8s_name(self) -> Any:
        """metadata.name: an auto-generated one is only in the outputs."""
        return dig(self.outputs, "metadata", "name") or dig(self.inputs, "metadata", "name")

    def change(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``edit`` to the inputs and to the outputs that echo them."""
        edit(self.inputs)
        if self.outputs:
            edit(self.outputs)


@pytest.fixture(scope="session", params=["aws", "dev"])
def recorded(request: pytest.FixtureRequest) -> tuple[str, list[Any]]:
    return request.param, stacks_offline.run_stack(request.param).resources


def copies(resources: list[Any]) -> list[Copy]:
    return [
        Copy(
            r.type,
            r.name,
            r.urn,
            deepcopy(dict(r.inputs)),
            deepcopy(dict(r.outputs or {})),
            r.parent,
            list(r.dependencies),
            r.provider,
        )
        for r in resources
    ]


def stack_pack_config(stack: str) -> PackConfig:
    """The stack's reviewed pack config, as CI's preview and `make policy-check` apply it."""
    return PackConfig.load(STACK_CONFIG_DIR / f"{stack}.json")


def mandatory(graph: list[Any], stack: str) -> set[str]:
    return {v.policy for v in evaluate(graph, stack_pack_config(stack)) if v.mandatory}


EXPECTED_KINDS = {
    "aws": {
        "aws:sqs/queue:Queue",
        "aws:dynamodb/table:Table",
        "aws:iam/role:Role",
        "eks:index:Cluster",
        "k8s:apps:Deployment",
        "k8s:keda.sh:ScaledObject",
        "k8s:keda.sh:TriggerAuthentication",
        "k8s:karpenter.sh:NodePool",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
    },
    "dev": {
        "azure-native:storage:StorageAccount",
        "azure-native:storage:Queue",
        "azure-native:cosmosdb:DatabaseAccount",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:authorization:RoleAssignment",
        "k8s:apps:Deployment",
        "k8s:keda.sh:ScaledObject",
        "k8s:keda.sh:TriggerAuthentication",
        "k8s:karpenter.sh:NodePool",
    },
}


def test_graph_holds_what_the_rules_examine(recorded) -> None:
    stack, resources = recorded
    kinds = {c.kind for c in copies(resources)}
    assert EXPECTED_KINDS[stack] - kinds == set()


def test_stack_has_zero_mandatory_violations(recorded) -> None:
    stack, resources = recorded
    violations = evaluate(resources, stack_pack_config(stack))
    assert not [v for v in violations if v.mandatory], format_report(violations, stack)


def first(graph: list[Copy], kinds: str, where: Callable[[Copy], bool] = lambda _: True) -> Copy:
    """The first resource of one of the space-separated kinds that satisfies ``where``."""
    return next(c for c in graph if c.kind in kinds.split() and where(c))


def drop_nodepool_limits(graph: list[Copy]) -> None:
    first(graph, "k8s:karpenter.sh:NodePool").change(lambda p: p["spec"].pop("limits"))


def consumer_grace_too_long(graph: list[Copy]) -> None:
    """The Deployment a ScaledObject scales drains for 12 h: longer than any visibility."""
    target = first(graph, "k8s:keda.sh:ScaledObject").inputs["spec"]["scaleTargetRef"]["name"]

    def edit(props: dict[str, Any]) -> None:
        props["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 43_200.0

    first(graph, "k8s:apps:Deployment", lambda c: c.k8s_name == target).change(edit)


def drop_trigger_authentications(graph: list[Copy]) -> None:
    graph[:] = [c for c in graph if c.kind != "k8s:keda.sh:TriggerAuthentication"]


def wildcard_iam_action(graph: list[Copy]) -> None:
    policy = first(graph, "aws:iam/rolePolicy:RolePolicy aws:iam/policy:Policy")

    def edit(props: dict[str, Any]) -> None:
        document = json.loads(props["policy"])
        statements = document["Statement"]
        (statements if isinstance(statements, dict) else statements[0])["Action"] = "*"
        props["policy"] = json.dumps(document)

    policy.change(edit)


def loosen_irsa_subject(graph: list[Copy]) -> None:
    """Every service account of the namespace may assume the IRSA role."""

    def edit(props: dict[str, Any]) -> None:
        document = json.loads(props["assumeRolePolicy"])
        for statement in as_list(document["Statement"]):
            equals = statement.get("Condition", {}).get("StringEquals", {})
            for key in [k for k in equals if k.endswith(":sub")]:
                equals[key] = "system:serviceaccount:edw:*"
        props["assumeRolePolicy"] = json.dumps(document)

    first(
        graph, "aws:iam/role:Role", lambda c: "WebIdentity" in c.inputs["assumeRolePolicy"]
    ).change(edit)


def data_role_at_resource_group(graph: list[Copy]) -> None:
    def is_data_role(assignment: Copy) -> bool:
        role = assignment.inputs["roleDefinitionId"].rsplit("/", 1)[-1]
        return role in DATA_ROLE_DEFINITION_IDS

    group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/edw-dev"
    first(graph, "azure-native:authorization:RoleAssignment", is_data_role).change(
        lambda p: p.update(scope=group)
    )


def drop_redrive_policy(graph: list[Copy]) -> None:
    first(graph, "aws:sqs/queue:Queue", lambda c: "redrivePolicy" in c.inputs).change(
        lambda p: p.pop("redrivePolicy", None)
    )


def shared_keys_on(graph: list[Copy]) -> None:
    first(graph, "azure-native:storage:StorageAccount").change(
        lambda p: p.update(allowSharedKeyAccess=True)
    )


def drop_alarms_on(metric: str) -> Callable[[list[Copy]], None]:
    def drop(graph: list[Copy]) -> None:
        graph[:] = [c for c in graph if c.inputs.get("metricName") != metric]

    drop.__name__ = f"drop_alarms_on_{metric}"
    return drop


drop_backlog_age_alarm = drop_alarms_on("ApproximateAgeOfOldestMessage")
drop_dead_letter_alarm = drop_alarms_on("ApproximateNumberOfMessagesVisible")


def silence_an_alarm(graph: list[Copy]) -> None:
    first(graph, "aws:cloudwatch/metricAlarm:MetricAlarm").change(
        lambda p: p.update(alarmActions=[])
    )


def drop_poison_queue(graph: list[Copy]) -> None:
    graph[:] = [c for c in graph if not str(c.inputs.get("queueName", "")).endswith("-poison")]


BREAKS = {
    "aws": [
        (drop_nodepool_limits, {"karpenter-nodepool-limits"}),
        (consumer_grace_too_long, {"consumer-grace-below-visibility"}),
        (drop_trigger_authentications, {"keda-trigger-authentication-exists"}),
        (wildcard_iam_action, {"aws-iam-no-wildcard-actions"}),
        (loosen_irsa_subject, {"aws-iam-irsa-trust-scoped"}),
        (drop_redrive_policy, {"aws-sqs-redrive-to-dlq", "queue-has-dead-letter"}),
        (drop_backlog_age_alarm, {"work-queue-age-alarmed"}),
        (drop_dead_letter_alarm, {"dead-letter-queue-alarmed"}),
        (silence_an_alarm, {"alarm-has-actions"}),
    ],
    "dev": [
        (drop_nodepool_limits, {"karpenter-nodepool-limits"}),
        (consumer_grace_too_long, {"consumer-grace-below-visibility"}),
        (drop_trigger_authentications, {"keda-trigger-authentication-exists"}),
        (shared_keys_on, {"azure-storage-shared-key-disabled"}),
        (data_role_at_resource_group, {"azure-data-role-scope"}),
        (drop_poison_queue, {"queue-has-dead-letter"}),
    ],
}


# A statement made Action "*" also trips the resource rule when its Resource is "*" already.
COLLATERAL = {wildcard_iam_action: {"aws-iam-no-wildcard-resources"}}


def test_broken_graphs_are_caught(recorded) -> None:
    stack, resources = recorded
    for breaks, expected in BREAKS[stack]:
        graph = copies(resources)
        breaks(graph)
        found = mandatory(graph, stack)
        assert expected <= found <= expected | COLLATERAL.get(breaks, set()), breaks.__name__


def test_api_cidr_setting_reaches_the_endpoint_rule() -> None:
    def endpoint_findings(overrides: dict[str, str] | None) -> list[str]:
        run = stacks_offline.run_stack("aws", overrides)
        return [
            v.message for v in evaluate(run.resources) if v.policy == "aws-eks-endpoint-restricted"
        ]

    assert any("open to 0.0.0.0/0" in m for m in endpoint_findings(None))
    assert endpoint_findings({"edw:apiAllowedCidrs": '["203.0.113.0/24"]'}) == []
