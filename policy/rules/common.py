"""Plumbing shared by every rule: the rule factories, config defaults and JSON/Kubernetes helpers.

Rules see properties exactly as the engine hands them over: wrapped in pulumi_policy's
unknown-checking proxies, which are ``Mapping``/``Sequence`` but not ``dict``/``list``. Every
helper here therefore tests against the abstract types.

Values a preview cannot know: reading one through a proxy raises ``UnknownValueError``, and the
pack server turns that into an advisory "can't run policy ... during preview" (pulumi-policy
1.21.0, ``policy.py`` Analyze/AnalyzeStack). A rule must let it propagate, or decide explicitly
(``is_set``, ``UNKNOWN`` from ``preview_value``); it must never read an unknown as unset, which
turns a compliant first preview into a mandatory violation that fails it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY
CUSTOM_RESOURCE = "kubernetes:apiextensions.k8s.io:CustomResource"
_K8S_TOKEN = re.compile(r"^kubernetes:(?P<module>[^:]+):(?P<kind>[A-Za-z0-9]+)$")

Props = Mapping[str, Any]
Config = Mapping[str, Any]
Schema = Mapping[str, Mapping[str, Any]]
T = TypeVar("T")


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown until the update runs>"


UNKNOWN: Any = _Unknown()  # what preview_value returns for a value a preview cannot know


@dataclass(frozen=True)
class Subject:
    """One resource as a rule sees it: canonical kind, engine type token, names and properties."""

    kind: str
    type: str
    name: str
    urn: str
    props: Props

    @property
    def label(self) -> str:
        """How messages name the resource: its physical/Kubernetes name if known, else logical."""
        meta_name = preview_value(preview_value(self.props, "metadata"), "name")
        physical = preview_value(self.props, "name")
        named = [n for n in (meta_name, physical) if isinstance(n, str) and n]
        return named[0] if named else self.name


ResourceCheck = Callable[[Subject, Config], Iterable[str]]
StackFinding = tuple[str, str | None]  # (message, urn of the offending resource or None)
StackCheck = Callable[[list["Node"], Config], Iterable[StackFinding]]


@dataclass(frozen=True)
class Node:
    """A stack resource with its canonical kind (StackValidationPolicy input)."""

    subject: Subject
    resource: PolicyResource

    def depends_on(self, other: Node) -> bool:
        """True when ``other`` feeds this resource (a recorded or property dependency)."""
        deps = list(self.resource.dependencies)
        for prop_deps in self.resource.property_dependencies.values():
            deps.extend(prop_deps)
        return any(d.urn == other.subject.urn for d in deps)


def kind_of(resource_type: str, props: Props) -> str:
    """Canonical kind: ``k8s:<group>:<Kind>`` for Kubernetes objects, the type token otherwise.

    pulumi-kubernetes registers ``apiextensions.CustomResource`` with a typed token
    (``kubernetes:keda.sh/v1alpha1:ScaledObject``); the generic token
    ``kubernetes:apiextensions.k8s.io:CustomResource`` with apiVersion/kind in the inputs is
    accepted too. Both map to ``k8s:keda.sh:ScaledObject``. The core group is ``core``.
    """
    if resource_type == CUSTOM_RESOURCE:
        api_version = str(props.get("apiVersion") or "")
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else "core"
        return f"k8s:{group}:{props.get('kind')}"
    match = _K8S_TOKEN.match(resource_type)
    if match and "/" in match["module"]:
        group = match["module"].rsplit("/", 1)[0]
        return f"k8s:{group}:{match['kind']}"
    return resource_type


def subject_of(resource_type: str, name: str, urn: str, props: Props) -> Subject:
    return Subject(kind_of(resource_type, props), resource_type, name, urn, props)


def with_defaults(schema: Schema, given: Config | None) -> dict[str, Any]:
    """Schema defaults overlaid with the team's config (the CLI may or may not fill defaults)."""
    defaults = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
    return {**defaults, **(given or {})}


def _schema(config: Schema | None) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=dict(config)) if config else None


def _kind_in(kinds: frozenset[str]) -> Callable[[Subject], bool]:
    return lambda subject: subject.kind in kinds


def resource_rule(
    name: str,
    description: str,
    kinds: Iterable[str] | Callable[[Subject], bool],
    check: ResourceCheck,
    *,
    level: EnforcementLevel = MANDATORY,
    config: Schema | None = None,
) -> ResourceValidationPolicy:
    """A ResourceValidationPolicy that runs ``check`` on resources of the given kinds.

    ``kinds`` is a list of canonical kinds (see ``kind_of``) or a predicate on the subject.
    """
    applies = kinds if callable(kinds) else _kind_in(frozenset(kinds))
    schema = config or {}

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        subject = subject_of(args.resource_type, args.name, args.urn, args.props)
        if not applies(subject):
            return
        for message in check(subject, with_defaults(schema, args.get_config())):
            report(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        config_schema=_schema(config),
    )


def stack_rule(
    name: str,
    description: str,
    check: StackCheck,
    *,
    level: EnforcementLevel = MANDATORY,
    config: Schema | None = None,
) -> StackValidationPolicy:
    """A StackValidationPolicy that runs ``check`` over every resource of the stack."""
    schema = config or {}

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        nodes = [
            Node(subject_of(r.resource_type, r.name, r.urn, r.props), r) for r in args.resources
        ]
        for message, urn in check(nodes, with_defaults(schema, args.get_config())):
            report(message, urn)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        config_schema=_schema(config),
    )


def of_kind(nodes: Iterable[Node], *kinds: str) -> list[Node]:
    return [n for n in nodes if n.subject.kind in kinds]


def dig(value: Any, *path: str | int) -> Any:
    """Walk nested mappings/sequences; None as soon as a step is missing."""
    for step in path:
        if isinstance(step, int):
            is_list = isinstance(value, Sequence) and not isinstance(value, str)
            value = value[step] if is_list and -len(value) <= step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


def preview_value(props: Any, key: str) -> Any:
    """``props[key]``; None when unset or ``props`` is no mapping; ``UNKNOWN`` when a preview
    cannot know it. For rules that can decide without the value: compare with ``UNKNOWN``."""
    if not isinstance(props, Mapping):
        return None
    try:
        return props.get(key)
    except UnknownValueError:
        return UNKNOWN


def inconclusive(subject: Subject, key: str) -> NoReturn:
    """Give up on a rule because ``subject``'s ``key`` is unknown until the update runs."""
    raise UnknownValueError(UNKNOWN_STRING_VALUE, [subject.name, key])


def each(
    items: Iterable[T], check: Callable[[T], Iterable[StackFinding]]
) -> Iterator[StackFinding]:
    """A stack check item by item: an item with a value a preview cannot know is skipped, the
    others are still judged (their violations reported), and then the policy is inconclusive
    (the first UnknownValueError), as the engine reports it."""
    unknown: UnknownValueError | None = None
    for item in items:
        try:
            findings = list(check(item))  # all of an item's findings, or none of them
        except UnknownValueError as error:
            unknown = unknown or error
            continue
        yield from findings
    if unknown is not None:
        raise unknown


def is_set(props: Props, key: str) -> bool:
    """Whether ``key`` has a value; a value unknown during preview (computed) counts as set."""
    try:
        return props.get(key) not in (None, "")
    except UnknownValueError:
        return True


def has_items(value: Any) -> bool:
    """A non-empty sequence; its items need not be known (an alarm action's new topic ARN)."""
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0


def as_list(value: Any) -> list[Any]:
    """IAM-style "one or many": None -> [], scalar -> [scalar], sequence -> list."""
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def json_document(value: Any) -> Mapping[str, Any] | None:
    """A JSON document input (policy, redrive policy): a JSON string, or an already-parsed map."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def tags_of(props: Props) -> Mapping[str, Any]:
    tags = props.get("tags")
    return tags if isinstance(tags, Mapping) else {}


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_QUANTITY = re.compile(r"^(?P<number>\d+(\.\d+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|m|k|M|G|T|P)?$")


def quantity(value: Any) -> float:
    """A Kubernetes resource quantity ("250m", "64", "256Gi", 64.0) as a plain number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    suffix = match["suffix"] or ""
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return float(match["number"]) * factor


WORKLOAD_KINDS = (
    "k8s:apps:Deployment",
    "k8s:apps:StatefulSet",
    "k8s:apps:DaemonSet",
    "k8s:apps:ReplicaSet",
    "k8s:batch:Job",
    "k8s:batch:CronJob",
    "k8s:keda.sh:ScaledJob",  # its pods: spec.jobTargetRef.template
    "k8s:core:Pod",
)
LONG_RUNNING_KINDS = (*WORKLOAD_KINDS[:4], "k8s:core:Pod")  # not Jobs: they finish


def pod_spec(subject: Subject) -> Mapping[str, Any]:
    """The pod spec inside any workload kind."""
    props = subject.props
    if subject.kind == "k8s:core:Pod":
        spec = dig(props, "spec")
    elif subject.kind == "k8s:batch:CronJob":
        spec = dig(props, "spec", "jobTemplate", "spec", "template", "spec")
    elif subject.kind == "k8s:keda.sh:ScaledJob":
        spec = dig(props, "spec", "jobTargetRef", "template", "spec")
    else:
        spec = dig(props, "spec", "template", "spec")
    return spec if isinstance(spec, Mapping) else {}


def containers(spec: Mapping[str, Any], *, init: bool = True) -> Iterator[Mapping[str, Any]]:
    """Regular containers, then init containers unless ``init`` is False."""
    fields = ("containers", "initContainers") if init else ("containers",)
    for field in fields:
        for container in as_list(spec.get(field)):
            if isinstance(container, Mapping):
                yield container


def long_running_containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Regular containers, then native sidecars: init containers with restartPolicy Always,
    which run beside them for the pod's life (Kubernetes "Sidecar Containers", 1.29+), such as
    a workflow's handler. Other init containers run to completion first."""
    yield from containers(spec, init=False)
    for container in as_list(spec.get("initContainers")):
        if isinstance(container, Mapping) and container.get("restartPolicy") == "Always":
            yield container


def namespace_of(props: Props) -> str:
    return str(dig(props, "metadata", "namespace") or "default")


def string_list(schema_description: str, default: list[str]) -> dict[str, Any]:
    """Config schema entry: a list of strings with a default."""
    return {
        "type": "array",
        "items": {"type": "string"},
        "default": default,
        "description": schema_description,
    }
