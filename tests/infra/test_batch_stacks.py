"""Job workflows and schedules on both stacks: the ScaledJob and CronJob as rendered, validated
strictly against KEDA's CRD and the scaler keys, their pods, identities and config errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from components.azure.roles import EVENTGRID_DATA_SENDER
from components.k8s.consumer import DO_NOT_DISRUPT, JOB_EXIT_WHEN_IDLE_SECONDS
from policy.offline import STACK_CONFIG_DIR, PackConfig, evaluate
from stacks.config import ConfigError, EdwConfig
from stacks.offline import StackRun, run_stack
from tests.k8s_schema import validate_custom_resource, validate_keda_trigger

NIGHTLY = {
    "name": "nightly",
    "mode": "job",
    "capacity": "on-demand",
    "schedule": "0 2 * * *",
    "filter": {"type": ["edw.schedule.nightly"]},
    "maxReplicas": 4,
    "queueLengthTarget": 50,
    "processingTimeoutSeconds": 60,
    "visibilityTimeoutSeconds": 300,
}
CLOUD = {"aws": "aws", "dev": "azure"}


@pytest.fixture(scope="module", params=["aws", "dev"])
def run(request: pytest.FixtureRequest) -> StackRun:
    return run_stack(request.param, {"workflows": json.dumps([{"name": "work"}, NIGHTLY])})


def scaled_job(run: StackRun) -> dict[str, Any]:
    (job,) = run.custom_resources("ScaledJob")
    return job.inputs


def test_a_job_workflow_renders_a_scaled_job_that_validates_strictly(run: StackRun) -> None:
    job = scaled_job(run)
    assert job["metadata"]["name"] == "edw-nightly-consumer"
    assert validate_custom_resource(job, CLOUD[run.stack]) == []
    (auth,) = [
        a for a in run.custom_resources("TriggerAuthentication")
        if a.inputs["metadata"]["name"] == "edw-nightly-consumer-queue"
    ]  # fmt: skip
    provider = auth.inputs["spec"]["podIdentity"]["provider"]
    for trigger in job["spec"]["triggers"]:
        assert validate_keda_trigger(trigger, provider) == []
    # The job workflow has no Deployment and no ScaledObject; the service workflow keeps its.
    deployments = {
        d.inputs["metadata"]["name"] for d in run.of_type("kubernetes:apps/v1:Deployment")
    }
    scaled_objects = {s.inputs["metadata"]["name"] for s in run.custom_resources("ScaledObject")}
    assert deployments == scaled_objects == {"edw-consumer"}


def test_the_scaled_job_counts_in_flight_work_and_bounds_each_job(run: StackRun) -> None:
    spec = scaled_job(run)["spec"]
    assert spec["maxReplicaCount"] == 4
    assert spec["scalingStrategy"] == {"strategy": "default"}
    (trigger,) = spec["triggers"]
    in_flight = {"aws": ("scaleOnInFlight", "true"), "dev": ("queueLengthStrategy", "all")}
    key, value = in_flight[run.stack]
    assert trigger["metadata"][key] == value
    assert trigger["metadata"]["queueLength"] == "50"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)
    target = spec["jobTargetRef"]
    # Start-up 120 s + ceil(50 messages / 4 workers) batches x 60 s + idle 30 s + drain 75 s.
    assert target["activeDeadlineSeconds"] == 120 + math.ceil(50 / 4) * 60 + 30 + 75
    assert (target["backoffLimit"], target["ttlSecondsAfterFinished"]) == (1, 3600)
    assert (target["parallelism"], target["completions"]) == (1, 1)


def test_job_pods_are_hardened_undisruptable_and_on_demand(run: StackRun) -> None:
    pod = scaled_job(run)["spec"]["jobTargetRef"]["template"]
    assert pod["metadata"]["annotations"][DO_NOT_DISRUPT] == "true"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["EDW_MAX_MESSAGES"] == "50"
    assert env["EDW_EXIT_WHEN_IDLE_SECONDS"] == str(JOB_EXIT_WHEN_IDLE_SECONDS)
    assert env["EDW_WORKFLOW"] == "nightly"
    required = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = required["nodeSelectorTerms"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]} in (
        term["matchExpressions"]
    )
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["nodeAffinity"]


def test_the_schedule_is_a_utc_cron_job_publishing_to_the_router(run: StackRun) -> None:
    cron = run.one("kubernetes:batch/v1:CronJob", "nightly-schedule-cronjob")
    spec = cron.inputs["spec"]
    assert spec["schedule"] == "0 2 * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 300
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "app.schedule"]
    env = {e["name"]: e["value"] for e in container["env"]}
    router = run.outputs["routerTopicArn" if run.stack == "aws" else "routerEndpoint"]
    assert env["EDW_ROUTER"] == router
    assert env["EDW_SCHEDULE_TYPE"] == "edw.schedule.nightly"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "edw-nightly-consumer-schedule"


def test_the_schedule_identity_may_only_publish_to_the_router(run: StackRun) -> None:
    if run.stack == "aws":
        topic = run.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
        key = run.one("aws:kms/key:Key", "router-key").outputs["arn"]
        policy = run.one("aws:iam/rolePolicy:RolePolicy", "nightly-schedule-identity-policy")
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert [(s["Action"], s["Resource"]) for s in statements] == [
            (["sns:Publish"], [topic]),
            (["kms:Decrypt", "kms:GenerateDataKey*"], [key]),
        ]
        return
    topic = run.one("azure-native:eventgrid:Topic")
    grants = [
        g.inputs
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.name.startswith("nightly-schedule-identity-")
    ]
    assert [(g["roleDefinitionId"].rsplit("/", 1)[1], g["scope"]) for g in grants] == [
        (EVENTGRID_DATA_SENDER, topic.id)
    ]


def test_a_stack_with_job_and_schedule_breaks_no_mandatory_rule(run: StackRun) -> None:
    config = PackConfig.load(STACK_CONFIG_DIR / f"{run.stack}.json")
    assert [v for v in evaluate(run.resources, config) if v.mandatory] == []


def parse(workflows: list[dict[str, Any]]) -> EdwConfig:
    return EdwConfig.parse(
        {
            "cloud": "aws",
            "apiAllowedCidrs": '["198.51.100.0/24"]',
            "workflows": json.dumps(workflows),
        },
        "s",
        {"aws:region": "us-east-1"},
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "batch"}, r"workflows\[1\].mode must be one of service, job"),
        ({"capacity": "spot"}, r"workflows\[1\].capacity must be one of spot-first, on-demand"),
        ({"schedule": "0 2 * *"}, r"workflows\[1\].schedule must be a cron expression in UTC"),
        ({"schedule": "0 0 2 * * *"}, r"schedule must be a cron expression"),  # seconds: no
        ({"schedule": "61 * * * *"}, r"schedule must be a cron expression"),
        (
            {"filter": {"type": ["com.example.order.created"]}},
            r"workflows\[1\] \(nightly\).filter does not let the workflow's own scheduled event in "
            r"\(type 'edw.schedule.nightly'",
        ),
    ],
)
def test_bad_job_or_schedule_settings_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse([{"name": "work"}, {**NIGHTLY, **change}])


def test_a_schedule_may_use_a_macro_and_an_unfiltered_workflow_takes_it() -> None:
    cfg = parse([{"name": "work", "schedule": "@hourly"}])
    assert cfg.workflows[0].schedule == "@hourly"
    assert cfg.workflows[0].mode == "service"
