"""Every tag, label, annotation and metadata key either stack sends obeys its service's naming
rules, so no create fails with a 400 on a name (as queue metadata `edw-role` would have).

Rules, as the services document them:
- Azure Storage queue metadata: names are C# identifiers (letters, digits, underscore; not
  starting with a digit), case-insensitive, values ASCII (Queue service REST API, "Set Queue
  Metadata": "Metadata names must adhere to the naming rules for C# identifiers").
- Azure resource tags: names at most 512 characters (128 for storage accounts), none of
  ``< > % & \\ ? /``; values at most 256 characters (Azure Resource Manager, "Use tags").
- AWS tags: keys 1-128 and values 0-256 Unicode letters, digits, spaces and ``_ . : / = + - @``;
  keys must not start with ``aws:`` (AWS General Reference, "Tagging AWS resources").
- Kubernetes labels: qualified names (optional DNS-subdomain prefix, name of at most 63
  alphanumerics, ``-_.`` inside), values at most 63 of the same or empty; annotation keys are
  qualified names too (Kubernetes "Labels and Selectors", "Annotations").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from stacks.offline import RecordedResource, StackRun

CSHARP_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
AZURE_TAG_FORBIDDEN = re.compile(r"[<>%&\\?/]")
AWS_TAG = re.compile(r"^[\w\s.:/=+\-@]*$", re.UNICODE)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
K8S_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def queue_metadata_problems(metadata: Mapping[str, Any]) -> Iterator[str]:
    for name, value in metadata.items():
        if not CSHARP_IDENTIFIER.match(name):
            yield f"queue metadata name {name!r} is not a C# identifier"
        if not str(value).isascii():
            yield f"queue metadata {name!r} has a non-ASCII value"
    lowered = [name.lower() for name in metadata]
    if len(set(lowered)) != len(lowered):
        yield "queue metadata names repeat (they are case-insensitive)"


def azure_tag_problems(resource_type: str, tags: Mapping[str, Any]) -> Iterator[str]:
    longest = 128 if resource_type.endswith(":StorageAccount") else 512
    for key, value in tags.items():
        if not key or len(key) > longest or AZURE_TAG_FORBIDDEN.search(key):
            yield f"Azure tag name {key!r} (1-{longest} chars, none of < > % & \\ ? /)"
        if len(str(value)) > 256:
            yield f"Azure tag {key!r} value is longer than 256 characters"


def aws_tag_problems(tags: Mapping[str, Any]) -> Iterator[str]:
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not AWS_TAG.match(key) or key.lower().startswith("aws:"):
            yield f"AWS tag key {key!r} (1-128 of letters, digits, spaces, _ . : / = + - @)"
        if len(str(value)) > 256 or not AWS_TAG.match(str(value)):
            yield f"AWS tag {key!r} value {value!r} (0-256 of the same characters)"


def qualified_name_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return f"{key!r}: prefix is not a DNS subdomain"
    if not name or len(name) > 63 or not K8S_NAME.match(name):
        return f"{key!r}: name is not 1-63 alphanumerics with - _ . inside"
    return None


def kubernetes_problems(metadata: Mapping[str, Any]) -> Iterator[str]:
    for key, value in (metadata.get("labels") or {}).items():
        if problem := qualified_name_problem(key):
            yield f"label {problem}"
        if isinstance(value, str) and value and (len(value) > 63 or not K8S_NAME.match(value)):
            yield f"label {key!r} value {value!r} is not 0-63 alphanumerics with - _ . inside"
    for key in metadata.get("annotations") or {}:
        if problem := qualified_name_problem(key):
            yield f"annotation {problem}"


def k8s_metadata(props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Object metadata and every pod-template / job-template metadata inside it."""
    if isinstance(props.get("metadata"), Mapping):
        yield props["metadata"]
    for path in (("spec", "template"), ("spec", "jobTemplate", "spec", "template")):
        node: Any = props
        for step in path:
            node = node.get(step) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and isinstance(node.get("metadata"), Mapping):
            yield node["metadata"]


def problems(resource: RecordedResource) -> list[str]:
    props = resource.inputs
    found: list[str] = []
    if resource.type == "azure-native:storage:Queue":
        found += queue_metadata_problems(props.get("metadata") or {})
    if isinstance(props.get("tags"), Mapping):
        if resource.type.startswith("azure-native:"):
            found += azure_tag_problems(resource.type, props["tags"])
        elif resource.type.startswith(("aws:", "eks:")):
            found += aws_tag_problems(props["tags"])
    if resource.type.startswith("kubernetes:"):
        for metadata in k8s_metadata(props):
            found += kubernetes_problems(metadata)
    return [f"{resource.type} {resource.name}: {p}" for p in found]


@pytest.mark.parametrize("stack", ["aws_run", "dev_run"])
def test_every_key_the_program_sends_obeys_the_services_naming_rules(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: StackRun = request.getfixturevalue(stack)
    checked = [r for r in run.resources if problems(r) == [] and r.inputs]
    assert [p for r in run.resources for p in problems(r)] == []
    assert len(checked) > 20


def test_azure_queues_carry_metadata_that_is_checked(dev_run: StackRun) -> None:
    # Registration order depends on when each queue's inputs resolve: match by name.
    roles = {q.name: q.inputs["metadata"] for q in dev_run.of_type("azure-native:storage:Queue")}
    assert sorted(roles.values(), key=str) == [{"edw_role": "poison"}, {"edw_role": "work"}]
    assert all((m["edw_role"] == "poison") == ("poison" in n) for n, m in roles.items())


@pytest.mark.parametrize(
    ("check", "bad"),
    [
        (lambda: queue_metadata_problems({"edw-role": "work"}), "not a C# identifier"),
        (lambda: queue_metadata_problems({"1st": "x"}), "not a C# identifier"),
        (lambda: queue_metadata_problems({"Role": "a", "role": "b"}), "case-insensitive"),
        (lambda: azure_tag_problems("x", {"a/b": "v"}), "Azure tag name"),
        (lambda: aws_tag_problems({"aws:reserved": "v"}), "AWS tag key"),
        (lambda: aws_tag_problems({"k": "x" * 257}), "value"),
        (lambda: kubernetes_problems({"labels": {"bad key!": "v"}}), "label"),
        (lambda: kubernetes_problems({"labels": {"app": "-bad"}}), "value"),
        (lambda: kubernetes_problems({"annotations": {"Bad_Prefix.io/x": "v"}}), "prefix"),
    ],
)
def test_the_rules_catch_illegal_keys(check: Any, bad: str) -> None:
    assert any(bad in p for p in check())
