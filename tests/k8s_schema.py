"""Offline validators for the Kubernetes custom resources and KEDA triggers the program renders.

The upstream CRDs in ``tests/reference/crds`` accept typos (no ``additionalProperties: false``,
and server-side apply prunes unknown fields silently), so this module checks strictly, the way the
apiserver's ``fieldValidation=Strict`` would: closed objects, ObjectMeta for root ``metadata``,
server defaults applied before ``required``, non-nullable nulls dropped. It also evaluates the few
CEL rule shapes that catch real mistakes cheaply (restricted label domains, "exactly one of",
"at least one of", forbidden values, regex matches); other CEL rules, ``format`` and list-map key
uniqueness are not checked. See ``tests/reference/README.md``.

Integral floats count as integers (``weight: 10.0``), as on the apiserver; Pulumi mocks hand
numbers over as floats. Typical use in another test::

    from tests.k8s_schema import validate_custom_resource, validate_keda_trigger

    assert validate_custom_resource(rendered_nodepool, "aws") == []
    assert validate_keda_trigger(trigger, "azure-workload") == []
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from tests.reference_data import reference_dir

Provider = Literal["aws", "azure"]

# KEDA's CRDs are the same on both clouds; Karpenter's differ (provider-patched CEL rules).
_CRD_SETS: dict[str, tuple[str, ...]] = {
    "aws": ("keda", "karpenter-aws"),
    "azure": ("keda", "karpenter-azure"),
}

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

# The CRDs type root metadata as a bare object; this is the part of ObjectMeta a client sets.
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "uid": {"type": "string"},
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
            },
        },
    },
}


# ---------------------------------------------------------------------------------------------
# CRD lookup and schema preparation


@functools.cache
def _crd_index(provider: str) -> dict[tuple[str, str], Path]:
    """(group, kind) -> CRD file, read from each file's head so big CRDs are never parsed."""
    index: dict[tuple[str, str], Path] = {}
    for crd_set in _CRD_SETS[provider]:
        for path in sorted((reference_dir() / "crds" / crd_set).glob("*.yaml")):
            with path.open(encoding="utf-8") as handle:
                head = handle.read(4096)
            group = re.search(r"^  group: (\S+)$", head, re.MULTILINE)
            kind = re.search(r"^    kind: (\S+)$", head, re.MULTILINE)
            if group is None or kind is None:
                raise ValueError(f"{path}: no spec.group/spec.names.kind in the first 4 KiB")
            index[(group.group(1), kind.group(1))] = path
    return index


@functools.cache
def _load_crd(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _strict(node: Any) -> Any:
    """Copy of a structural schema with every unspecified object closed (Strict validation)."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "properties" in node:
        out["properties"] = {key: _strict(sub) for key, sub in node["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            out[key] = _strict(node[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [_strict(sub) for sub in node[key]]
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    open_object = "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields")
    if node.get("type") == "object" and not open_object:
        out["additionalProperties"] = False
    return out


def _cel_keyword(
    validator: Any, rules: list[dict[str, Any]], instance: Any, _schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    for rule in rules:
        failing = _cel_violations(rule["rule"], instance)
        if failing is not None:
            culprits = f" (offending: {', '.join(failing)})" if failing else ""
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            yield ValidationError(f"{message}{culprits}")


_StrictValidator = validators.extend(
    Draft202012Validator, {"x-kubernetes-validations": _cel_keyword}
)


@functools.cache
def _crd_version(path: Path, version: str) -> tuple[Any, dict[str, Any], str] | None:
    """(validator, raw schema for defaulting, scope) of a served version, or None."""
    crd = _load_crd(path)
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version and entry.get("served"):
            raw = entry["schema"]["openAPIV3Schema"]
            schema = _strict(raw)
            schema["properties"] = {**schema["properties"], "metadata": _OBJECT_META}
            return _StrictValidator(schema), raw, crd["spec"]["scope"]
    return None


# ---------------------------------------------------------------------------------------------
# A few CEL rule shapes, evaluated in Python. A check returns None when it does not apply to the
# value (wrong type) and rules of other shapes are skipped, so neither produces false errors.

_RESTRICTED_DOMAIN = re.compile(
    r"^(?:self\.all\((?P<var>\w+), (?P=var)|self) in \[(?P<allowed>[^\]]*)\] \|\| "
    r'!\w+\.find\("\^\(\[\^/\]\+\)"\)\.endsWith\("(?P<domain>[^"]+)"\)\)?$'
)
_FORBIDDEN_VALUE = re.compile(
    r"^(?:self\.all\((?P<var>\w+), (?P=var)|self) ?!= ?(?P<q>[\"'])(?P<value>[^\"']*)(?P=q)\)?$"
)
_ANY_HAS = re.compile(
    r"^(?:self\.all\((?P<var>\w+), )?(?P<body>has\([\w.]+\)(?: \|\| has\([\w.]+\))*)\)?$"
)
_EXACTLY_ONE = re.compile(
    r"^\(has\(self\.(?P<a>\w+)\) && !has\(self\.(?P<b>\w+)\)\) \|\| "
    r"\(!has\(self\.(?P=a)\) && has\(self\.(?P=b)\)\)$"
)
_MATCHES = re.compile(r"^self\.matches\('(?P<regex>[^']*)'\)$")


def _check_restricted_domain(match: re.Match[str], label: Any) -> bool | None:
    if not isinstance(label, str):
        return None
    # CEL find("^([^/]+)") is the label's prefix up to the first slash.
    allowed = re.findall(r'"([^"]*)"', match["allowed"])
    return label in allowed or not label.split("/", 1)[0].endswith(match["domain"])


def _check_forbidden_value(match: re.Match[str], value: Any) -> bool | None:
    return value != match["value"]


def _check_any_has(match: re.Match[str], value: Any) -> bool | None:
    if not isinstance(value, dict):
        return None
    fields = re.findall(rf"has\({match['var'] or 'self'}\.(\w+)\)", match["body"])
    return any(field in value for field in fields)


def _check_exactly_one(match: re.Match[str], value: Any) -> bool | None:
    if not isinstance(value, dict):
        return None
    return (match["a"] in value) != (match["b"] in value)


def _check_matches(match: re.Match[str], value: Any) -> bool | None:
    if not isinstance(value, str):
        return None
    return re.search(match["regex"], value) is not None


_CEL_SHAPES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], Any], bool | None]], ...] = (
    (_RESTRICTED_DOMAIN, _check_restricted_domain),
    (_FORBIDDEN_VALUE, _check_forbidden_value),
    (_ANY_HAS, _check_any_has),
    (_EXACTLY_ONE, _check_exactly_one),
    (_MATCHES, _check_matches),
)


def _cel_violations(rule: str, instance: Any) -> list[str] | None:
    """None when the rule holds (or is not understood); else what breaks it.

    For ``self.all(x, ...)`` that is the offending map keys / list indexes, else ``[]``.
    """
    for pattern, check in _CEL_SHAPES:
        match = pattern.match(rule.strip())
        if match is None:
            continue
        if match.groupdict().get("var") is None:
            return [] if check(match, instance) is False else None
        if isinstance(instance, list):
            members = [(f"[{index}]", item) for index, item in enumerate(instance)]
        elif isinstance(instance, dict):
            members = [(str(key), key) for key in instance]
        else:
            return None
        failing = [name for name, member in members if check(match, member) is False]
        return failing or None
    return None


# ---------------------------------------------------------------------------------------------
# Server-side defaulting and error formatting


def _default(value: Any, schema: Mapping[str, Any]) -> None:
    """In place, like the apiserver: drop non-nullable nulls, fill defaults, recurse."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if value[key] is None and sub is not None and not sub.get("nullable"):
                del value[key]
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                _default(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


def _json_path(parts: Collection[str | int]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path or "<root>"


def _unknown_field(path: str, key: str, known: Collection[str]) -> str:
    hint = difflib.get_close_matches(key, list(known), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"{path}: unknown field (known: {', '.join(sorted(known)) or 'none'}){suggestion}"


def _describe(error: ValidationError) -> list[str]:
    parts = list(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        unknown = [key for key in instance if key not in known]
        return [_unknown_field(_json_path([*parts, key]), key, known) for key in unknown]
    if error.validator == "required" and isinstance(instance, dict):
        missing = [key for key in error.validator_value if key not in instance]
        return [f"{_json_path([*parts, key])}: required field is missing" for key in missing]
    return [f"{_json_path(parts)}: {error.message}"]


def _schema_errors(validator: Any, obj: Any) -> list[str]:
    errors = {line for error in validator.iter_errors(obj) for line in _describe(error)}
    return sorted(errors)


# ---------------------------------------------------------------------------------------------
# Public API


def validate_custom_resource(obj: dict[str, Any], provider: Provider) -> list[str]:
    """Errors (with JSON paths) for a rendered custom resource on ``provider``; [] when valid."""
    if provider not in _CRD_SETS:
        raise ValueError(f"provider must be one of {sorted(_CRD_SETS)}, got {provider!r}")
    if not isinstance(obj, dict):
        return [f"<root>: expected an object (dict), got {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or api_version.count("/") != 1:
        return [f"apiVersion: expected '<group>/<version>', got {api_version!r}"]
    group, version = api_version.split("/")
    index = _crd_index(provider)
    path = index.get((group, str(kind)))
    if path is None:
        known = ", ".join(f"{g} {k}" for g, k in sorted(index))
        return [f"apiVersion/kind: no CRD for {group} {kind!r} on {provider} (known: {known})"]
    found = _crd_version(path, version)
    if found is None:
        served = [v["name"] for v in _load_crd(path)["spec"]["versions"] if v.get("served")]
        return [f"apiVersion: {api_version!r} is not served for {kind} (served: {served})"]
    validator, raw_schema, scope = found
    defaulted = copy.deepcopy(obj)
    _default(defaulted, raw_schema)
    errors = _schema_errors(validator, defaulted)
    metadata = obj.get("metadata")
    if scope == "Cluster" and isinstance(metadata, dict) and "namespace" in metadata:
        errors.append(f"metadata.namespace: {kind} is cluster-scoped; a namespace has no effect")
    return errors


# ---------------------------------------------------------------------------------------------
# KEDA trigger metadata (keda-scalers.json)

_GO_BOOLS = frozenset(
    {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}
)
_INT64 = re.compile(r"-?(0|[1-9][0-9]*)")
# HPA target types; KEDA rejects Utilization for external scalers (ErrScalerUnsupported...).
_METRIC_TYPES = ("AverageValue", "Value")


@functools.cache
def _scalers() -> dict[str, Any]:
    with (reference_dir() / "keda-scalers.json").open(encoding="utf-8") as handle:
        return json.load(handle)


@functools.cache
def _trigger_schema() -> tuple[Any, dict[str, Any]]:
    """The ScaledObject CRD's own (validator, raw schema) for one trigger; same on both clouds."""
    found = _crd_version(_crd_index("aws")[("keda.sh", "ScaledObject")], "v1alpha1")
    if found is None:
        raise ValueError("keda.sh/v1alpha1 ScaledObject is not served by the reference CRD")
    validator, raw, _scope = found
    raw_trigger = raw["properties"]["spec"]["properties"]["triggers"]["items"]
    strict_trigger = validator.schema["properties"]["spec"]["properties"]["triggers"]["items"]
    return _StrictValidator(strict_trigger), raw_trigger


def _supported_providers(scaler: Mapping[str, Any]) -> list[str]:
    # Entries read like "aws-eks (deprecated)".
    return [entry.split(" (")[0] for entry in scaler["podIdentity"]["supportedProviders"]]


def _is_required(
    key: str, field: Mapping[str, Any], provider: str, metadata: Mapping[str, str]
) -> bool:
    """Evaluate ``required``: a bool, or one of the condition phrasings keda-scalers.json uses."""
    required = field["required"]
    if isinstance(required, bool):
        return required
    by_provider = re.match(r"when podIdentity\.provider is ([\w/-]+)", required)
    if by_provider:
        providers = {"none" if p == "empty" else p for p in by_provider.group(1).split("/")}
        return provider in providers
    by_setting = re.match(r"only when (\w+)=(\w+)", required)
    if by_setting:
        setting, expected = by_setting.groups()
        return metadata.get(setting, "").strip().lower() == expected.lower()
    raise ValueError(f"keda-scalers.json: unrecognised condition for {key!r}: {required!r}")


def _value_errors(key: str, field: Mapping[str, Any], value: str) -> list[str]:
    where = f"metadata.{key}"
    text = value.strip()
    if field["type"] == "int64":
        if not _INT64.fullmatch(text) or not -(2**63) <= int(text) < 2**63:
            return [f'{where}: {value!r} is not a plain integer string (int64), e.g. "5"']
    elif field["type"] == "bool":
        if text not in _GO_BOOLS:
            return [f"{where}: {value!r} is not a Go bool (allowed: {sorted(_GO_BOOLS)})"]
    elif "enum" in field:
        if text not in field["enum"]:
            return [f"{where}: {value!r} not allowed (case-sensitive, allowed: {field['enum']})"]
    elif "values" in field and not field.get("notes", "").startswith("No enum check"):
        allowed = [entry.split(" (")[0] for entry in field["values"]]
        if text.lower() not in {entry.lower() for entry in allowed}:
            return [f"{where}: {value!r} not allowed (allowed: {allowed})"]
    return []


def _metadata_errors(
    scaler_type: str,
    metadata: Mapping[str, Any],
    provider: str,
    auth_params: Collection[str],
) -> list[str]:
    scaler = _scalers()["scalers"][scaler_type]
    fields: dict[str, Any] = scaler["metadata"]
    env_keys = {field["fromEnvKey"] for field in fields.values() if "fromEnvKey" in field}
    known = set(fields) | env_keys | set(scaler.get("metadataReadOutsideStruct", {}))
    errors: list[str] = []
    # Non-string values are reported by the CRD schema (metadata is map[string]string).
    for key in metadata:
        if key not in known:
            errors.append(f"{_unknown_field(f'metadata.{key}', key, known)} (case-sensitive)")
    # Values are TrimSpace'd and an empty one counts as absent.
    present = {k: v for k, v in metadata.items() if isinstance(v, str) and v.strip()}
    for key, field in fields.items():
        if key in present:
            errors += _value_errors(key, field, present[key])
            continue
        from_env = field.get("fromEnvKey") in present
        takes_auth = "authParams" in field.get("order", ())
        if from_env or (takes_auth and key in auth_params):
            continue
        if _is_required(key, field, provider, present):
            alternatives = [f"metadata.{field['fromEnvKey']}"] if "fromEnvKey" in field else []
            alternatives += ["a TriggerAuthentication parameter"] if takes_auth else []
            alt = f" (or {', '.join(alternatives)})" if alternatives else ""
            errors.append(
                f"metadata.{key}: required by {scaler_type} with podIdentity provider"
                f" {provider!r}{alt}"
            )
    identity = scaler["podIdentity"].get(provider)
    ignores_owner = isinstance(identity, dict) and identity.get(
        "triggerMetadataIdentityOwnerIgnored"
    )
    if ignores_owner and "identityOwner" in metadata:
        errors.append(f"metadata.identityOwner: ignored with podIdentity provider {provider!r}")
    return errors


def validate_keda_trigger(
    trigger: dict[str, Any],
    pod_identity_provider: str | None,
    *,
    auth_params: Collection[str] = (),
) -> list[str]:
    """Errors for one ScaledObject trigger, given the TriggerAuthentication's podIdentity provider.

    ``auth_params`` are the parameter names the referenced TriggerAuthentication supplies (e.g.
    ``awsRegion``); they satisfy required keys whose lookup order includes authParams.
    """
    if not isinstance(trigger, dict):
        return [f"<root>: expected a trigger object (dict), got {type(trigger).__name__}"]
    validator, raw_schema = _trigger_schema()
    defaulted = copy.deepcopy(trigger)
    _default(defaulted, raw_schema)
    errors = _schema_errors(validator, defaulted)
    metric_type = trigger.get("metricType")
    if metric_type not in (None, "", *_METRIC_TYPES):
        errors.append(f"metricType: {metric_type!r} not allowed (allowed: {list(_METRIC_TYPES)})")
    scalers = _scalers()["scalers"]
    scaler_type = trigger.get("type")
    if not isinstance(scaler_type, str) or scaler_type not in scalers:
        return [*errors, f"type: unknown scaler {scaler_type!r} (known: {sorted(scalers)})"]
    provider = pod_identity_provider or "none"  # KEDA treats unset/empty as none
    supported = _supported_providers(scalers[scaler_type])
    if provider not in supported:
        errors.append(
            f"podIdentity.provider: {provider!r} is not supported by {scaler_type}"
            f" (supported: {supported})"
        )
    metadata = trigger.get("metadata")
    if isinstance(metadata, dict):
        errors += _metadata_errors(scaler_type, metadata, provider, auth_params)
    return errors
