"""The offline CRD / KEDA trigger validators accept realistic resources and name every mistake."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s_schema import validate_custom_resource, validate_keda_trigger

# --- realistic resources, as the program renders them ------------------------------------------


def aws_nodepool() -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "edw-consumers", "labels": {"app.kubernetes.io/part-of": "edw"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"edw/workload": "consumer"}},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": "edw",
                    },
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                        {
                            "key": "karpenter.k8s.aws/instance-category",
                            "operator": "In",
                            "values": ["c", "m"],
                        },
                    ],
                    "expireAfter": "720h",
                },
            },
            # int-or-string: cpu as a number, memory as a quantity string.
            "limits": {"cpu": 32, "memory": "64Gi"},
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": "1m",
                # The second budget has no `nodes`: required, but the server defaults it to 10%.
                "budgets": [{"nodes": "20%"}, {"schedule": "0 9 * * mon-fri", "duration": "8h"}],
            },
        },
    }


def ec2_nodeclass() -> dict[str, Any]:
    discovery = {"karpenter.sh/discovery": "edw"}
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": "edw"},
        "spec": {
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "role": "KarpenterNodeRole-edw",
            "subnetSelectorTerms": [{"tags": discovery}],
            "securityGroupSelectorTerms": [{"tags": discovery}],
            "tags": {"project": "edw"},
        },
    }


def azure_nodepool() -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "edw-consumers"},
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.azure.com",
                        "kind": "AKSNodeClass",
                        "name": "edw",
                    },
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                        {
                            "key": "karpenter.azure.com/sku-family",
                            "operator": "In",
                            "values": ["D"],
                        },
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    ],
                },
            },
            "limits": {"cpu": "16"},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"},
        },
    }


def aks_nodeclass() -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.azure.com/v1beta1",
        "kind": "AKSNodeClass",
        "metadata": {"name": "edw"},
        "spec": {"imageFamily": "AzureLinux", "osDiskSizeGB": 64, "tags": {"project": "edw"}},
    }


def sqs_trigger() -> dict[str, Any]:
    return {
        "type": "aws-sqs-queue",
        "name": "jobs",
        "authenticationRef": {"name": "keda-aws"},
        "metadata": {
            "queueURL": "https://sqs.eu-west-1.amazonaws.com/123456789012/edw-jobs",
            "awsRegion": "eu-west-1",
            "queueLength": "5",
            "scaleOnInFlight": "true",
        },
    }


def azure_queue_trigger() -> dict[str, Any]:
    return {
        "type": "azure-queue",
        "authenticationRef": {"name": "keda-azure"},
        "metadata": {
            "queueName": "edw-jobs",
            "accountName": "edwjobs",
            "queueLength": "5",
            "queueLengthStrategy": "all",
        },
    }


def scaled_object(trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "consumer", "namespace": "edw"},
        "spec": {
            "scaleTargetRef": {"name": "consumer"},
            "minReplicaCount": 0,
            "maxReplicaCount": 20,
            "pollingInterval": 5,
            "cooldownPeriod": 60,
            "triggers": [trigger],
        },
    }


def trigger_authentication(pod_identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "keda-auth", "namespace": "edw"},
        "spec": {"podIdentity": pod_identity},
    }


def aws_scaled_object() -> dict[str, Any]:
    return scaled_object(sqs_trigger())


VALID = {
    "aws NodePool": (aws_nodepool, "aws"),
    "EC2NodeClass": (ec2_nodeclass, "aws"),
    "azure NodePool": (azure_nodepool, "azure"),
    "AKSNodeClass": (aks_nodeclass, "azure"),
    "ScaledObject aws": (aws_scaled_object, "aws"),
    "ScaledObject azure": (lambda: scaled_object(azure_queue_trigger()), "azure"),
    "TriggerAuthentication aws": (
        lambda: trigger_authentication({"provider": "aws", "identityOwner": "workload"}),
        "aws",
    ),
    "TriggerAuthentication azure-workload": (
        lambda: trigger_authentication({"provider": "azure-workload", "identityId": "0000-1111"}),
        "azure",
    ),
}


DELETE = object()  # edit() value that removes the field


def edit(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or with value=DELETE remove) a dotted path; numeric parts index lists."""
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return obj


# --- valid resources ---------------------------------------------------------------------------


@pytest.mark.parametrize(("factory", "provider"), VALID.values(), ids=VALID.keys())
def test_realistic_resources_are_valid(factory: Any, provider: Any) -> None:
    assert validate_custom_resource(factory(), provider) == []


def test_validation_does_not_mutate_the_input() -> None:
    nodepool = aws_nodepool()
    validate_custom_resource(nodepool, "aws")
    assert nodepool == aws_nodepool()


def test_defaults_fill_required_fields_before_checking() -> None:
    # budgets[].nodes is required; the server defaults it, so an explicit null or absence is fine,
    nodepool = edit(aws_nodepool(), "spec.disruption.budgets.0.nodes", None)
    assert validate_custom_resource(nodepool, "aws") == []
    # but a required field without a default stays required.
    nodeclass = edit(ec2_nodeclass(), "spec.amiSelectorTerms", DELETE)
    assert validate_custom_resource(nodeclass, "aws") == [
        "spec.amiSelectorTerms: required field is missing"
    ]


def test_non_nullable_null_without_default_is_dropped() -> None:
    assert validate_custom_resource(edit(aws_nodepool(), "spec.weight", None), "aws") == []


@pytest.mark.parametrize("cpu", [32, "32", "500m"])
def test_int_or_string_accepts_both(cpu: Any) -> None:
    assert validate_custom_resource(edit(aws_nodepool(), "spec.limits.cpu", cpu), "aws") == []


def test_integral_floats_count_as_integers() -> None:
    # Pulumi mocks deliver numbers as floats; the apiserver accepts integral ones for integers.
    assert validate_custom_resource(edit(aws_nodepool(), "spec.weight", 10.0), "aws") == []
    errors = validate_custom_resource(edit(aws_nodepool(), "spec.weight", 10.5), "aws")
    assert errors == ["spec.weight: 10.5 is not of type 'integer'"]


def test_int_or_string_rejects_other_types() -> None:
    errors = validate_custom_resource(edit(aws_nodepool(), "spec.limits.cpu", True), "aws")
    assert len(errors) == 1
    assert errors[0].startswith("spec.limits.cpu: ")


# --- unknown fields (typos) anywhere -----------------------------------------------------------

TYPOS = [
    (aws_nodepool, "aws", "spec.limts", "limits"),
    (aws_nodepool, "aws", "spec.template.spec.requirments", "requirements"),
    (aws_nodepool, "aws", "spec.template.spec.requirements.0.opertor", "operator"),
    (aws_nodepool, "aws", "metadata.lables", "labels"),
    (ec2_nodeclass, "aws", "spec.subnetSelectorTerms.0.tag", "tags"),
    (azure_nodepool, "azure", "spec.disruption.consolidateAftr", "consolidateAfter"),
    (aks_nodeclass, "azure", "spec.imagefamily", "imageFamily"),
    (aws_scaled_object, "aws", "spec.triggers.0.authenticationRef.nmae", "name"),
    (aws_scaled_object, "aws", "spec.scaleTargetRef.kindd", "kind"),
]


@pytest.mark.parametrize(("factory", "provider", "path", "meant"), TYPOS)
def test_misspelt_field_is_rejected_with_its_path(
    factory: Any, provider: Any, path: str, meant: str
) -> None:
    errors = validate_custom_resource(edit(factory(), path, "x"), provider)
    json_path = path.replace(".0.", "[0].")
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{json_path}: unknown field")
    assert f"did you mean {meant!r}" in errors[0]


# --- wrong types, missing fields, enums, CEL ---------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "provider", "path", "value", "expected"),
    [
        (aws_nodepool, "aws", "spec.weight", "10", "spec.weight: '10' is not of type 'integer'"),
        (aws_scaled_object, "aws", "spec.maxReplicaCount", "20", "spec.maxReplicaCount: '20'"),
        (aks_nodeclass, "azure", "spec.osDiskSizeGB", "64", "spec.osDiskSizeGB: '64'"),
        (ec2_nodeclass, "aws", "spec.tags", ["edw"], "spec.tags: ['edw'] is not of type 'object'"),
        (
            aws_nodepool,
            "aws",
            "spec.template.spec.requirements.0.operator",
            "in",
            "spec.template.spec.requirements[0].operator: 'in' is not one of",
        ),
        (aks_nodeclass, "azure", "spec.imageFamily", "Ubuntu2004", "spec.imageFamily: 'Ubuntu20"),
        (aws_nodepool, "aws", "metadata.name", "Edw_Consumers", "metadata.name: 'Edw_Consumers'"),
        (aws_nodepool, "aws", "metadata.labels.team", 7, "metadata.labels.team: 7 is not of type"),
        (aws_nodepool, "aws", "spec.disruption.budgets.0.nodes", "120%", "budgets[0].nodes"),
    ],
)
def test_wrong_value_is_rejected_with_its_path(
    factory: Any, provider: Any, path: str, value: Any, expected: str
) -> None:
    errors = validate_custom_resource(edit(factory(), path, value), provider)
    assert len(errors) == 1, errors
    assert expected in errors[0]


@pytest.mark.parametrize(
    ("factory", "provider", "path"),
    [
        (aws_nodepool, "aws", "spec.template.spec.nodeClassRef"),
        (aws_nodepool, "aws", "spec.template.spec.nodeClassRef.name"),
        (azure_nodepool, "azure", "spec.template.spec.requirements.0.operator"),
        (ec2_nodeclass, "aws", "spec.subnetSelectorTerms"),
        (aws_scaled_object, "aws", "spec.scaleTargetRef"),
        (aws_scaled_object, "aws", "spec.triggers.0.type"),
    ],
)
def test_missing_required_field_is_named(factory: Any, provider: Any, path: str) -> None:
    errors = validate_custom_resource(edit(factory(), path, DELETE), provider)
    assert errors == [f"{path.replace('.0.', '[0].')}: required field is missing"]


def test_ec2_nodeclass_needs_exactly_one_of_role_and_instance_profile() -> None:
    both = edit(ec2_nodeclass(), "spec.instanceProfile", "edw-node")
    neither = edit(ec2_nodeclass(), "spec.role", DELETE)
    message = "spec: must specify exactly one of ['role', 'instanceProfile']"
    assert validate_custom_resource(both, "aws") == [message]
    assert validate_custom_resource(neither, "aws") == [message]


def test_ec2_nodeclass_selector_term_must_select_something() -> None:
    nodeclass = edit(ec2_nodeclass(), "spec.subnetSelectorTerms", [{}])
    errors = validate_custom_resource(nodeclass, "aws")
    assert errors == [
        "spec.subnetSelectorTerms: expected at least one, got none, ['tags', 'id'] (offending: [0])"
    ]


def test_ec2_nodeclass_alias_needs_family_and_version() -> None:
    nodeclass = edit(ec2_nodeclass(), "spec.amiSelectorTerms.0.alias", "al2023")
    errors = validate_custom_resource(nodeclass, "aws")
    assert errors == [
        "spec.amiSelectorTerms[0].alias: 'alias' is improperly formatted,"
        " must match the format 'family@version'"
    ]


# --- restricted label domains differ per provider ----------------------------------------------


def with_template_labels(nodepool: dict[str, Any], **labels: str) -> dict[str, Any]:
    nodepool["spec"]["template"]["metadata"] = {"labels": labels}
    return nodepool


def test_restricted_aws_label_domain_is_rejected_on_aws() -> None:
    labels = {
        "karpenter.k8s.aws/team": "x",
        "karpenter.k8s.aws/instance-family": "c7g",  # on the allow-list
        "edw/workload": "consumer",
    }
    nodepool = with_template_labels(aws_nodepool(), **labels)
    assert validate_custom_resource(nodepool, "aws") == [
        'spec.template.metadata.labels: label domain "karpenter.k8s.aws" is restricted'
        " (offending: karpenter.k8s.aws/team)"
    ]


def test_aws_label_domain_is_not_restricted_by_the_azure_crd() -> None:
    # The Azure copy restricts only Azure domains; an AWS label there is accepted by the
    # apiserver (it would just never match a node), so the validator must accept it too.
    nodepool = with_template_labels(azure_nodepool(), **{"karpenter.k8s.aws/team": "x"})
    assert validate_custom_resource(nodepool, "azure") == []
    assert validate_custom_resource(nodepool, "aws") != []


def test_restricted_azure_label_domains_are_rejected_on_azure() -> None:
    key_path = "spec.template.spec.requirements.1.key"
    nodepool = edit(azure_nodepool(), key_path, "kubernetes.azure.com/agentpool")
    with_template_labels(nodepool, agentpool="edw")
    assert validate_custom_resource(nodepool, "azure") == [
        'spec.template.metadata.labels: label "agentpool" is restricted (offending: agentpool)',
        'spec.template.spec.requirements[1].key: label domain "kubernetes.azure.com" is restricted',
    ]


def test_nodepool_label_is_reserved_on_both_providers() -> None:
    for factory, provider in ((aws_nodepool, "aws"), (azure_nodepool, "azure")):
        nodepool = with_template_labels(factory(), **{"karpenter.sh/nodepool": "x"})
        assert validate_custom_resource(nodepool, provider) == [  # type: ignore[arg-type]
            'spec.template.metadata.labels: label "karpenter.sh/nodepool" is restricted'
            " (offending: karpenter.sh/nodepool)"
        ]


def test_allow_listed_key_in_restricted_domain_passes() -> None:
    key_path = "spec.template.spec.requirements.1.key"
    allowed = edit(aws_nodepool(), key_path, "karpenter.k8s.aws/instance-family")
    assert validate_custom_resource(allowed, "aws") == []


# --- apiVersion / kind / scope -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "provider", "api_version", "expected"),
    [
        (aws_nodepool, "aws", "karpenter.sh/v1beta1", "apiVersion: 'karpenter.sh/v1beta1' is not"),
        (aks_nodeclass, "azure", "karpenter.azure.com/v1", "served: ['v1alpha2', 'v1beta1']"),
        (ec2_nodeclass, "azure", "karpenter.k8s.aws/v1", "no CRD for karpenter.k8s.aws"),
        (aks_nodeclass, "aws", "karpenter.azure.com/v1beta1", "no CRD for karpenter.azure.com"),
        (aws_scaled_object, "aws", "keda.k8s.io/v1alpha1", "no CRD for keda.k8s.io"),
        (aws_scaled_object, "aws", "v1", "apiVersion: expected '<group>/<version>'"),
    ],
)
def test_unknown_or_unserved_api_version_is_rejected(
    factory: Any, provider: Any, api_version: str, expected: str
) -> None:
    errors = validate_custom_resource(edit(factory(), "apiVersion", api_version), provider)
    assert len(errors) == 1
    assert expected in errors[0]


def test_unknown_kind_is_rejected() -> None:
    errors = validate_custom_resource(edit(aws_nodepool(), "kind", "Nodepool"), "aws")
    assert len(errors) == 1
    assert "no CRD for karpenter.sh 'Nodepool' on aws" in errors[0]
    assert "karpenter.sh NodePool" in errors[0]


def test_namespace_on_cluster_scoped_kind_is_flagged() -> None:
    nodepool = edit(aws_nodepool(), "metadata.namespace", "edw")
    assert validate_custom_resource(nodepool, "aws") == [
        "metadata.namespace: NodePool is cluster-scoped; a namespace has no effect"
    ]


def test_unknown_provider_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"provider must be one of \['aws', 'azure'\], got 'gcp'"):
        validate_custom_resource(aws_nodepool(), "gcp")  # type: ignore[arg-type]


# --- KEDA trigger metadata ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "provider"),
    [
        (sqs_trigger(), "aws"),
        (sqs_trigger(), None),
        (azure_queue_trigger(), "azure-workload"),
        ({"type": "azure-queue", "metadata": {"queueName": "q", "connectionFromEnv": "CONN"}}, ""),
    ],
)
def test_valid_triggers(trigger: dict[str, Any], provider: str | None) -> None:
    assert validate_keda_trigger(trigger, provider) == []


def test_misspelt_metadata_key_is_rejected_with_suggestion() -> None:
    trigger = sqs_trigger()
    trigger["metadata"]["queueUrl"] = trigger["metadata"].pop("queueURL")
    errors = validate_keda_trigger(trigger, "aws")
    assert len(errors) == 2, errors
    assert errors[0].startswith("metadata.queueUrl: unknown field")
    assert "did you mean 'queueURL'" in errors[0]
    assert errors[1].startswith("metadata.queueURL: required by aws-sqs-queue")


def test_non_string_metadata_value_is_rejected() -> None:
    trigger = edit(sqs_trigger(), "metadata.queueLength", 5)
    assert validate_keda_trigger(trigger, "aws") == [
        "metadata.queueLength: 5 is not of type 'string'"
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("queueLengthStrategy", "visibleOnly", "metadata.queueLengthStrategy: 'visibleOnly'"),
        ("queueLength", "5.0", "metadata.queueLength: '5.0' is not a plain integer"),
        ("activationQueueLength", "1k", "metadata.activationQueueLength: '1k'"),
        ("cloud", "Mars", "metadata.cloud: 'Mars' not allowed"),
    ],
)
def test_bad_azure_queue_values_are_rejected(key: str, value: str, expected: str) -> None:
    trigger = edit(azure_queue_trigger(), f"metadata.{key}", value)
    errors = validate_keda_trigger(trigger, "azure-workload")
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


@pytest.mark.parametrize("value", ["True", "F", "0", " true "])
def test_go_bools_are_accepted(value: str) -> None:
    trigger = edit(sqs_trigger(), "metadata.scaleOnDelayed", value)
    assert validate_keda_trigger(trigger, "aws") == []


def test_cloud_is_case_insensitive_and_private_needs_endpoint_suffix() -> None:
    trigger = edit(azure_queue_trigger(), "metadata.cloud", "azureusgovernmentcloud")
    assert validate_keda_trigger(trigger, "azure-workload") == []
    private = edit(azure_queue_trigger(), "metadata.cloud", "Private")
    assert validate_keda_trigger(private, "azure-workload") == [
        "metadata.endpointSuffix: required by azure-queue with podIdentity provider"
        " 'azure-workload'"
    ]


def test_bool_must_parse_like_go() -> None:
    trigger = edit(sqs_trigger(), "metadata.scaleOnInFlight", "yes")
    errors = validate_keda_trigger(trigger, "aws")
    assert len(errors) == 1
    assert errors[0].startswith("metadata.scaleOnInFlight: 'yes' is not a Go bool")


def test_aws_region_is_always_required_unless_the_auth_supplies_it() -> None:
    trigger = edit(sqs_trigger(), "metadata.awsRegion", DELETE)
    errors = validate_keda_trigger(trigger, "aws")
    assert len(errors) == 1
    assert errors[0].startswith("metadata.awsRegion: required by aws-sqs-queue")
    assert validate_keda_trigger(trigger, "aws", auth_params={"awsRegion"}) == []
    blank = edit(sqs_trigger(), "metadata.awsRegion", "  ")
    assert validate_keda_trigger(blank, "aws") == errors


def test_azure_queue_requirements_depend_on_pod_identity() -> None:
    no_account = edit(azure_queue_trigger(), "metadata.accountName", DELETE)
    assert validate_keda_trigger(no_account, "azure-workload") == [
        "metadata.accountName: required by azure-queue with podIdentity provider 'azure-workload'"
    ]
    # Without pod identity the account comes from a connection string instead.
    errors = validate_keda_trigger(no_account, None)
    assert len(errors) == 1
    assert errors[0].startswith("metadata.connection: required by azure-queue")
    assert validate_keda_trigger(no_account, "none", auth_params={"connection"}) == []


@pytest.mark.parametrize(
    ("trigger", "provider", "supported"),
    [
        (azure_queue_trigger(), "aws", "['none', 'azure-workload']"),
        (sqs_trigger(), "azure-workload", "['aws', 'aws-eks', 'none']"),
        (sqs_trigger(), "gcp", "['aws', 'aws-eks', 'none']"),
    ],
)
def test_unsupported_pod_identity_provider_is_rejected(
    trigger: dict[str, Any], provider: str, supported: str
) -> None:
    errors = validate_keda_trigger(trigger, provider)
    expected = f"podIdentity.provider: {provider!r} is not supported by {trigger['type']}"
    assert f"{expected} (supported: {supported})" in errors


def test_identity_owner_in_metadata_is_ignored_with_aws_pod_identity() -> None:
    trigger = edit(sqs_trigger(), "metadata.identityOwner", "operator")
    assert validate_keda_trigger(trigger, "aws") == [
        "metadata.identityOwner: ignored with podIdentity provider 'aws'"
    ]
    assert validate_keda_trigger(trigger, None) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("metricType", "Utilization", "metricType: 'Utilization' not allowed"),
        ("type", "aws-sqs", "type: unknown scaler 'aws-sqs'"),
        ("type", ["aws-sqs-queue"], "type: unknown scaler ['aws-sqs-queue']"),
        ("authenticationRef.kind", "Secret", "authenticationRef.kind: 'Secret' is not one of"),
        ("useCachedMetrics", "true", "useCachedMetrics: 'true' is not of type 'boolean'"),
        ("metdata", {}, "metdata: unknown field"),
    ],
)
def test_bad_trigger_level_fields_are_rejected(path: str, value: Any, expected: str) -> None:
    errors = validate_keda_trigger(edit(sqs_trigger(), path, value), "aws")
    assert any(error.startswith(expected) for error in errors), errors


def test_scaled_object_and_its_trigger_agree() -> None:
    auth = trigger_authentication({"provider": "azure-workload"})
    scaled = scaled_object(azure_queue_trigger())
    assert validate_custom_resource(auth, "azure") == []
    assert validate_custom_resource(scaled, "azure") == []
    provider = auth["spec"]["podIdentity"]["provider"]
    assert validate_keda_trigger(scaled["spec"]["triggers"][0], provider) == []


def test_trigger_validation_does_not_mutate_the_input() -> None:
    trigger = sqs_trigger()
    before = copy.deepcopy(trigger)
    validate_keda_trigger(trigger, "aws")
    assert trigger == before
