"""Every custom resource each stack renders validates against the upstream CRDs (strictly), and
every KEDA trigger against the scaler's metadata keys."""

import pytest

from stacks.offline import StackRun
from tests.k8s_schema import validate_custom_resource, validate_keda_trigger

CLOUD_OF_STACK = {"aws": "aws", "dev": "azure"}
NODE_CLASS_OF_STACK = {"aws": "EC2NodeClass", "dev": "AKSNodeClass"}


def rendered(run: StackRun) -> list[dict]:
    return [
        {k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        for r in run.resources
        if r.type.startswith("kubernetes:")
        and "apiVersion" in r.inputs
        and r.inputs["apiVersion"].split("/")[0].endswith((".sh", ".aws", ".com"))
    ]


@pytest.fixture(params=sorted(CLOUD_OF_STACK))
def run(request: pytest.FixtureRequest) -> StackRun:
    return request.getfixturevalue(f"{request.param}_run")


def test_the_stack_renders_the_expected_kinds(run: StackRun):
    kinds = sorted(o["kind"] for o in rendered(run))
    expected = [NODE_CLASS_OF_STACK[run.stack], "NodePool", "NodePool", "ScaledObject"]
    assert kinds == sorted([*expected, "TriggerAuthentication"])


def test_every_custom_resource_validates_against_its_crd(run: StackRun):
    for obj in rendered(run):
        assert validate_custom_resource(obj, CLOUD_OF_STACK[run.stack]) == [], obj["kind"]


def test_every_keda_trigger_is_valid_for_its_scaler_and_pod_identity(run: StackRun):
    (auth,) = run.custom_resources("TriggerAuthentication")
    provider = auth.inputs["spec"]["podIdentity"]["provider"]
    for scaled in run.custom_resources("ScaledObject"):
        for trigger in scaled.inputs["spec"]["triggers"]:
            assert validate_keda_trigger(trigger, provider) == []


def test_the_validators_catch_a_typo_in_what_we_render(aws_run: StackRun):
    pool = next(o for o in rendered(aws_run) if o["kind"] == "NodePool")
    broken = {**pool, "spec": {**pool["spec"], "limts": pool["spec"]["limits"]}}
    assert any("limts" in e for e in validate_custom_resource(broken, "aws"))
    (scaled,) = aws_run.custom_resources("ScaledObject")
    trigger = scaled.inputs["spec"]["triggers"][0]
    bad = {**trigger, "metadata": {**trigger["metadata"], "queueUrl": "x"}}
    assert any("queueUrl" in e for e in validate_keda_trigger(bad, "aws"))
