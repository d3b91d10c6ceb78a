"""Run the pack against a stack's full resource graph without cloud credentials.

``python -m policy.offline --stack aws`` runs the Pulumi program under mocks (``stacks.offline``),
then hands every recorded resource to the pack exactly as the engine does: each resource (type,
name, inputs) to every ResourceValidationPolicy, then the whole resource list to every
StackValidationPolicy, with the same argument types, unknown-checking proxies, enforcement
levels and pack config file format as ``--policy-pack-config``. It does so twice: with every
value known (what ``pulumi up`` judges), and as the first ``pulumi preview`` of a new stack sees
it, where every output a provider computes is unknown (``--mode`` picks one). It prints the
violations like ``pulumi preview`` and exits 1 when one of them is mandatory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jsonschema
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from policy.rules import PACK_NAME, POLICIES, POLICIES_BY_NAME

PACK_VERSION = "0.1.0"  # keep equal to PulumiPolicy.yaml (a test checks)
# Per-stack pack config (reviewed waivers and tuning), used by CI's preview and by default here.
STACK_CONFIG_DIR = Path(__file__).resolve().parent / "stack-config"
STACKS = ("aws", "dev")
# How each mode runs the program (stacks.offline's preview flag) and what the report calls it.
MODES = {
    "known": (False, "every value known, as `pulumi up` checks it"),
    "preview": (True, "first preview, computed values unknown"),
}
LEVELS = {level.value: level for level in EnforcementLevel}
# Without a level of its own a policy gets the pack default, as PolicyPack(...) sets it.
PACK_DEFAULT_LEVEL = EnforcementLevel.ADVISORY


class Recorded(Protocol):
    """What ``stacks.offline`` records per registered resource (a RecordedResource)."""

    type: str
    name: str
    urn: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    parent: str
    dependencies: Sequence[str]
    provider: str


class PackConfigError(ValueError):
    """A policy pack config file that the CLI would reject too."""


@dataclass(frozen=True)
class PackConfig:
    """Per-policy enforcement levels and properties (the ``--policy-pack-config`` JSON)."""

    levels: Mapping[str, EnforcementLevel] = field(default_factory=dict)
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def level(self, policy: Policy) -> EnforcementLevel:
        return self.levels.get(policy.name) or policy.enforcement_level or PACK_DEFAULT_LEVEL

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> PackConfig:
        """Validate like the CLI: known policy names, known levels, each policy's schema."""
        levels: dict[str, EnforcementLevel] = {}
        properties: dict[str, Mapping[str, Any]] = {}
        errors: list[str] = []
        everything = raw.get("all")
        if everything is not None:
            if everything not in LEVELS:
                errors.append(f"all: {everything!r} is not one of {', '.join(LEVELS)}")
            else:
                levels = dict.fromkeys(POLICIES_BY_NAME, LEVELS[everything])
        for name, value in raw.items():
            if name == "all":
                continue
            policy = POLICIES_BY_NAME.get(name)
            if policy is None:
                errors.append(f"{name}: no such policy (known: {', '.join(POLICIES_BY_NAME)})")
                continue
            entry = {"enforcementLevel": value} if isinstance(value, str) else value
            problem = _schema_problem(policy, entry)
            if problem:
                errors.append(f"{name}: {problem}")
                continue
            if "enforcementLevel" in entry:
                levels[name] = LEVELS[entry["enforcementLevel"]]
            properties[name] = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        if errors:
            raise PackConfigError("invalid policy pack config:\n  " + "\n  ".join(errors))
        return PackConfig(levels, properties)

    @staticmethod
    def load(path: Path) -> PackConfig:
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise PackConfigError(f"cannot read policy pack config {path}: {error}") from error
        if not isinstance(raw, dict):
            raise PackConfigError(f"policy pack config {path} must be a JSON object")
        return PackConfig.parse(raw)


def _schema_problem(policy: Policy, entry: Any) -> str | None:
    properties = dict(policy.config_schema.properties) if policy.config_schema else {}
    properties["enforcementLevel"] = {"enum": list(LEVELS)}
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    try:
        jsonschema.validate(entry, schema)
    except jsonschema.ValidationError as error:
        where = ".".join(str(p) for p in error.absolute_path)
        unknown_key = error.validator == "additionalProperties"
        allowed = f"; allowed: {', '.join(properties)}" if unknown_key else ""
        return f"{where + ': ' if where else ''}{error.message}{allowed}"
    return None


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    description: str
    message: str
    urn: str | None
    resource: str  # "type: name", or "" for a stack-wide finding

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY


def _options(resource: Recorded) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent or None,
    )


def _provider(resource: Recorded, by_urn: Mapping[str, Recorded]) -> PolicyProviderResource | None:
    """The provider reference ``<urn>::<id>`` resolved to its recorded provider resource."""
    urn = resource.provider.rsplit("::", 1)[0] if resource.provider else ""
    found = by_urn.get(urn)
    if found is None:
        return None
    props = unknown_checking_proxy(dict(found.inputs))
    return PolicyProviderResource(found.type, props, urn, found.name)


def stack_state(resource: Recorded) -> dict[str, Any]:
    # A preview's stack analysis sees each resource's outputs, which for a custom resource
    # include its inputs; mocks may return only the computed values (e.g. just metadata.name),
    # so lay the outputs over the inputs, merging nested objects.
    return _overlay(dict(resource.inputs), resource.outputs or {})


def _overlay(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        both_maps = isinstance(below, Mapping) and isinstance(value, Mapping)
        merged[key] = _overlay(below, value) if both_maps else value
    return merged


def stack_resources(resources: Sequence[Recorded]) -> list[PolicyResource]:
    """The resources as AnalyzeStack hands them to a StackValidationPolicy."""
    by_urn = {r.urn: r for r in resources}
    policy_resources = {
        r.urn: PolicyResource(
            r.type,
            unknown_checking_proxy(stack_state(r)),
            r.urn,
            r.name,
            _options(r),
            _provider(r, by_urn),
            None,
            [],
            {},
        )
        for r in resources
    }
    for r in resources:  # link parents and dependencies to objects, as the engine does
        node = policy_resources[r.urn]
        node.parent = policy_resources.get(r.parent)
        node.dependencies = [policy_resources[d] for d in r.dependencies if d in policy_resources]
    return list(policy_resources.values())


def _reporter(
    violations: list[Violation], policy: Policy, level: EnforcementLevel, resource: str
) -> ReportViolation:
    def report(message: str, urn: str | None = None) -> None:
        violations.append(Violation(policy.name, level, policy.description, message, urn, resource))

    return report


def _enabled(config: PackConfig, kind: type[Policy]) -> Iterator[tuple[Policy, EnforcementLevel]]:
    """The pack's policies of one kind that run, each at the level the engine reports."""
    for policy in POLICIES:
        level = config.level(policy)
        if not isinstance(policy, kind) or level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:  # the engine reports what it could not fix
            level = EnforcementLevel.MANDATORY
        yield policy, level


def resource_violations(
    resource: Recorded, config: PackConfig, by_urn: Mapping[str, Recorded]
) -> list[Violation]:
    """What every ResourceValidationPolicy reports for one resource (the engine's Analyze)."""
    violations: list[Violation] = []
    for policy, level in _enabled(config, ResourceValidationPolicy):
        args = ResourceValidationArgs(
            resource.type,
            unknown_checking_proxy(resource.inputs),
            resource.urn,
            resource.name,
            _options(resource),
            _provider(resource, by_urn),
            config.properties.get(policy.name),
        )
        _run(policy, args, level, f"{resource.type}: {resource.name}", violations)
    return violations


def stack_violations(graph: Sequence[PolicyResource], config: PackConfig) -> list[Violation]:
    """What every StackValidationPolicy reports for the whole graph (the engine's AnalyzeStack)."""
    violations: list[Violation] = []
    for policy, level in _enabled(config, StackValidationPolicy):
        args = StackValidationArgs(list(graph), config.properties.get(policy.name))
        _run(policy, args, level, "", violations)
    return violations


def evaluate(resources: Sequence[Recorded], config: PackConfig | None = None) -> list[Violation]:
    """Every violation the pack reports for this resource graph."""
    config = config or PackConfig()
    by_urn = {r.urn: r for r in resources}
    violations = [v for r in resources for v in resource_violations(r, config, by_urn)]
    violations += stack_violations(stack_resources(resources), config)
    return _with_resource_names(violations, by_urn)


def _run(
    policy: Policy,
    args: ResourceValidationArgs | StackValidationArgs,
    level: EnforcementLevel,
    resource: str,
    violations: list[Violation],
) -> None:
    """Validate like the engine: a value unknown during preview makes the policy inconclusive
    (an advisory note), never a crash."""
    try:
        policy.validate(args, _reporter(violations, policy, level, resource))  # type: ignore[arg-type]
    except UnknownValueError as error:
        message = f"can't run policy '{policy.name}' during preview: {error.message}"
        advisory = EnforcementLevel.ADVISORY
        violations.append(
            Violation(policy.name, advisory, policy.description, message, None, resource)
        )


def _with_resource_names(
    violations: list[Violation], by_urn: Mapping[str, Recorded]
) -> list[Violation]:
    """Stack findings name a resource by URN; show it like resource findings."""
    named = []
    for v in violations:
        found = by_urn.get(v.urn or "")
        resource = v.resource or (f"{found.type}: {found.name}" if found else "")
        named.append(Violation(v.policy, v.level, v.description, v.message, v.urn, resource))
    return named


def format_report(violations: Sequence[Violation], stack: str, mode: str = "") -> str:
    """The ``Policies:`` block of a preview, then a one-line summary."""
    mandatory = sum(v.mandatory for v in violations)
    mark = "❌" if mandatory else ("⚠️ " if violations else "✅")
    where = f"stack {stack}, {mode}" if mode else f"stack {stack}"
    lines = ["Policies:", f"    {mark} {PACK_NAME}@v{PACK_VERSION} (local: policy, {where})"]
    for v in sorted(violations, key=lambda v: (not v.mandatory, v.policy, v.resource)):
        where = f"  ({v.resource})" if v.resource else ""
        lines.append(f"        - [{v.level.value}]  {v.policy}{where}")
        lines.append(f"          {v.description}")
        lines.append(f"          {v.message}")
    advisory = len(violations) - mandatory
    summary = f"{mandatory} mandatory and {advisory} advisory policy violation(s) in {stack}"
    lines.append(f"{summary} ({mode})" if mode else summary)
    return "\n".join(lines)


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PackConfigError(f"--override must look like key=value; got {pair!r}")
        # A provider key (aws:region) as it is; a bare one is the project's (edw:).
        parsed[key if ":" in key else f"edw:{key}"] = value
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policy.offline", description=__doc__)
    parser.add_argument("--stack", required=True, choices=STACKS, help="stack to check")
    parser.add_argument(
        "--config",
        type=Path,
        help="policy pack config JSON, as the CLI's --policy-pack-config "
        "(default: policy/stack-config/<stack>.json)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="edw: stack setting to change for this run, e.g. maxReplicas=500 (repeatable)",
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="known: every value known (as `pulumi up`); preview: a new stack's first preview, "
        "every computed output unknown; both (default): one after the other",
    )
    options = parser.parse_args(argv)
    try:
        config = PackConfig.load(options.config or STACK_CONFIG_DIR / f"{options.stack}.json")
        overrides = parse_overrides(options.override)
    except PackConfigError as error:
        print(error, file=sys.stderr)
        return 2
    from stacks.offline import ProgramError, run_stack  # noqa: PLC0415  (loads the program)

    failed = False
    for mode in MODES if options.mode == "both" else [options.mode]:
        preview, label = MODES[mode]
        try:
            run = run_stack(options.stack, overrides or None, preview=preview)
        except ProgramError as error:
            # The program itself refused (e.g. a bad setting): say why, as `pulumi preview` would.
            print(f"error: the {options.stack} program failed: {error}", file=sys.stderr)
            return 2
        violations = evaluate(run.resources, config)
        print(format_report(violations, options.stack, label))
        failed = failed or any(v.mandatory for v in violations)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
