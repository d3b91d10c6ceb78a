"""The pack fails open on values a preview cannot know.

In a preview that creates a resource, every output a provider computes is unknown, and so is
every input built from one. pulumi_policy raises UnknownValueError when a rule reads one and
reports "can't run policy ... during preview" as an advisory (pulumi-policy 1.21.0,
``policy.py`` Analyze/AnalyzeStack). A rule that instead reads the unknown as unset turns a
compliant first preview into a mandatory violation, and the engine fails the preview.

Two checks: each stack's program as a first preview records it (every computed output unknown)
breaks no mandatory rule, with its features on; and in each compliant graph, any one value a
rule reads made unknown never makes a mandatory violation either.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    unknown_checking_proxy,
)

from policy.offline import (
    STACK_CONFIG_DIR,
    PackConfig,
    Recorded,
    evaluate,
    format_report,
    resource_violations,
    stack_resources,
    stack_state,
    stack_violations,
)
from stacks.offline import run_stack
from tests.infra.test_batch_stacks import NIGHTLY

Path = tuple[str | int, ...]

# Several workflows (queues, one filtered, a scheduled job) and two partner webhooks.
WORKFLOWS = [
    {"name": "work"},
    {"name": "orders", "filter": {"type": ["com.example.order.created"]}, "maxReplicas": 5},
    NIGHTLY,
]
WEBHOOKS = [
    {"name": "partner", "url": "https://partner.example.com/hooks/edw", "filter": {"type": ["a"]}},
    {"name": "audit", "url": "https://audit.example.com/in", "filter": {"type": {"prefix": "a."}}},
]
ROUTED = {"workflows": json.dumps(WORKFLOWS), "webhooks": json.dumps(WEBHOOKS)}
VARIANTS: dict[str, dict[str, dict[str, str] | None]] = {
    "aws": {
        "default": None,
        "workflows and webhooks": ROUTED,
        "observability full": {"observability": "full"},
        "replicas": {"replicaRegions": '["us-west-2"]'},
    },
    "dev": {
        "default": None,
        "workflows and webhooks": ROUTED,
        "observability full": {"observability": "full"},
        "replicas": {"replicaLocations": '["northeurope"]', "cosmosServerless": "false"},
    },
}
CASES = [(stack, name) for stack, variants in VARIANTS.items() for name in variants]


def pack_config(stack: str) -> PackConfig:
    return PackConfig.load(STACK_CONFIG_DIR / f"{stack}.json")


@pytest.mark.parametrize(("stack", "variant"), CASES)
def test_a_first_preview_breaks_no_mandatory_rule(stack: str, variant: str) -> None:
    run = run_stack(stack, VARIANTS[stack][variant], preview=True)
    violations = [v for v in evaluate(run.resources, pack_config(stack)) if v.mandatory]
    assert not violations, format_report(violations, stack, f"first preview, {variant}")


def test_the_preview_run_leaves_computed_values_unknown() -> None:
    """What the check above runs on: a new stack's first preview, not the known-values graph."""
    run = run_stack("aws", preview=True)
    topic = run.one("aws:sns/topic:Topic", "router-topic")
    assert topic.inputs["kmsMasterKeyId"] == UNKNOWN_STRING_VALUE  # the new key's ARN
    [subscription] = run.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.inputs["redrivePolicy"] == UNKNOWN_STRING_VALUE  # the new DLQ's ARN
    assert subscription.inputs["rawMessageDelivery"] is True  # a literal stays known
    assert topic.outputs["arn"] == UNKNOWN_STRING_VALUE
    assert topic.id == ""  # the SDK's unknown id of a resource being created
    # Nested outputs key by key: what was given stays as given (known or not), what the
    # provider assigns (a uid, a principal) is unknown.
    account = run.one("kubernetes:core/v1:ServiceAccount", "consumer-sa").outputs["metadata"]
    assert account["name"] == "edw-consumer"
    assert account["annotations"] == {"eks.amazonaws.com/role-arn": UNKNOWN_STRING_VALUE}
    assert account["uid"] == UNKNOWN_STRING_VALUE
    dev = run_stack("dev", preview=True)
    grid = dev.one("azure-native:eventgrid:Topic").outputs["identity"]
    assert grid == {"type": "SystemAssigned", "principalId": UNKNOWN_STRING_VALUE,
                    "tenantId": UNKNOWN_STRING_VALUE}  # fmt: skip
    queue = dev.of_type("azure-native:storage:Queue")[0]
    assert queue.inputs["accountName"] == UNKNOWN_STRING_VALUE  # the new account's name output
    assert queue.outputs["accountName"] == UNKNOWN_STRING_VALUE


# --- any one value unknown ------------------------------------------------------------------


def sentinel(value: Any) -> str:
    """The engine's unknown of the value's type (sdk/go/common/resource/plugin/rpc.go)."""
    if isinstance(value, bool):
        return UNKNOWN_BOOLEAN_VALUE
    if isinstance(value, int | float):
        return UNKNOWN_NUMBER_VALUE
    if isinstance(value, list):
        return UNKNOWN_ARRAY_VALUE
    if isinstance(value, dict):
        return UNKNOWN_OBJECT_VALUE
    return UNKNOWN_STRING_VALUE


def unknown_at(value: Any, path: Path) -> Any:
    """A copy of ``value`` whose position ``path`` is unknown (copied along the path only)."""
    if not path:
        return sentinel(value)
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = unknown_at(value[head], tuple(rest))  # type: ignore[index]
    return copy


class _Reads(Mapping):
    """Props that log every position a rule reads (a value never read cannot sway it)."""

    def __init__(self, target: dict[str, Any], path: Path, log: set[Path]) -> None:
        self._target, self._path, self._log = target, path, log

    def __getitem__(self, key: str) -> Any:
        return _read(self._target[key], (*self._path, key), self._log)

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)


class _ReadsList(Sequence):
    def __init__(self, target: list[Any], path: Path, log: set[Path]) -> None:
        self._target, self._path, self._log = target, path, log

    def __getitem__(self, index: Any) -> Any:
        return _read(self._target[index], (*self._path, index), self._log)

    def __len__(self) -> int:
        return len(self._target)


def _read(value: Any, path: Path, log: set[Path]) -> Any:
    log.add(path)
    if isinstance(value, dict):
        return _Reads(value, path, log)
    if isinstance(value, list):
        return _ReadsList(value, path, log)
    return value


def read_by_resource_rules(resource: Recorded, config: PackConfig, by_urn: Any) -> set[Path]:
    log: set[Path] = set()
    reads = dataclasses.replace(resource, inputs=_Reads(resource.inputs, (), log))  # type: ignore[type-var]
    resource_violations(reads, config, by_urn)
    return log


def test_the_read_log_sees_what_a_rule_reads() -> None:
    log: set[Path] = set()
    props = _Reads({"a": [{"b": True, "c": 1}], "d": 2}, (), log)
    assert props["a"][0].get("b") is True
    assert props.get("x") is None
    assert log == {("a",), ("a", 0), ("a", 0, "b")}
    assert unknown_at({"a": [{"b": True}]}, ("a", 0, "b")) == {"a": [{"b": UNKNOWN_BOOLEAN_VALUE}]}
    assert unknown_at({"a": [1]}, ("a",)) == {"a": UNKNOWN_ARRAY_VALUE}


@pytest.mark.parametrize("stack", list(VARIANTS))
def test_no_rule_reads_one_unknown_value_as_a_violation(stack: str) -> None:
    resources = run_stack(stack, ROUTED).resources
    config = pack_config(stack)
    by_urn = {r.urn: r for r in resources}
    found: list[str] = []
    for resource in resources:
        for path in read_by_resource_rules(resource, config, by_urn):
            mutated = dataclasses.replace(resource, inputs=unknown_at(resource.inputs, path))  # type: ignore[type-var]
            found += [
                f"{v.policy}: {resource.name} inputs {path}: {v.message}"
                for v in resource_violations(mutated, config, by_urn)
                if v.mandatory
            ]
    graph = stack_resources(resources)
    states = [stack_state(r) for r in resources]
    logs: list[set[Path]] = [set() for _ in resources]
    proxies = [node.props for node in graph]
    for node, state, log in zip(graph, states, logs, strict=True):
        node.props = _Reads(state, (), log)
    assert not [v for v in stack_violations(graph, config) if v.mandatory]
    for node, proxy in zip(graph, proxies, strict=True):
        node.props = proxy
    for resource, node, state, log in zip(resources, graph, states, logs, strict=True):
        for path in log:
            node.props = unknown_checking_proxy(unknown_at(state, path))
            found += [
                f"{v.policy}: {resource.name} state {path}: {v.message}"
                for v in stack_violations(graph, config)
                if v.mandatory
            ]
        node.props = unknown_checking_proxy(state)
    assert not found, "\n".join(found)
