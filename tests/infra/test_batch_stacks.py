"""Job workflows and schedules on both stacks: the ScaledJob and CronJob as rendered, validated
strictly against KEDA's CRD and the scaler keys, their pods, identities and config errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from components.azure.roles import EVENTGRID_DATA_SENDER, MONITORING_METRICS_PUBLISHER
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
    job = spec["jobTemplate"]["spec"]
    # Three attempts, each with 90 s to start and publish, and Kubernetes' 10 s + 20 s back-off.
    assert (job["backoffLimit"], job["activeDeadlineSeconds"]) == (2, 3 * 90 + 30)
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "app.schedule"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    router = run.outputs["routerTopicArn" if run.stack == "aws" else "routerEndpoint"]
    assert env["EDW_ROUTER"] == router
    assert env["EDW_SCHEDULE_TYPE"] == "edw.schedule.nightly"
    assert env["EDW_HEARTBEAT_TASK"] == "nightly-schedule"
    # The Job's name (<cronjob>-<scheduled minute>) names the tick: app.schedule's id.
    assert env["EDW_CRONJOB"] == cron.inputs["metadata"]["name"] == "edw-nightly-consumer-schedule"
    assert env["EDW_JOB_NAME"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "edw-nightly-consumer-schedule"


SYSTEM = {
    "aws": ({"edw/pool": "system"}, "CriticalAddonsOnly"),
    "dev": ({"kubernetes.azure.com/mode": "system"}, "CriticalAddonsOnly"),
}


def test_schedule_pods_run_on_the_system_nodes_where_they_start_at_once(run: StackRun) -> None:
    cron = run.one("kubernetes:batch/v1:CronJob", "nightly-schedule-cronjob").inputs
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    selector, taint = SYSTEM[run.stack]
    assert pod["nodeSelector"] == selector
    assert pod["tolerations"] == [{"key": taint, "operator": "Exists", "effect": "NoSchedule"}]
    assert "affinity" not in pod  # never waits for a consumer node


def test_a_first_heartbeat_job_runs_at_deploy_and_the_alarm_comes_after_it(run: StackRun) -> None:
    first = run.one("kubernetes:batch/v1:Job", "nightly-schedule-first-beat")
    pod = first.inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "app.heartbeat"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["EDW_HEARTBEAT_TASK"] == "nightly-schedule"
    assert pod["serviceAccountName"] == "edw-nightly-consumer-schedule"
    assert "ttlSecondsAfterFinished" not in first.inputs["spec"]  # kept: never beats twice
    if run.stack == "aws":
        alarm = run.one("aws:cloudwatch/metricAlarm:MetricAlarm", "nightly-schedule-alarms-missed")
        assert first.urn in alarm.dependencies
        return
    (rule,) = [
        r for r in run.of_type("azure-native:monitor:ScheduledQueryRule")
        if r.name == "heartbeat-alerts-nightly-schedule"
    ]  # fmt: skip
    assert first.urn in rule.dependencies
    assert env["EDW_HEARTBEAT_RULE"].startswith("dcr-")
    assert env["EDW_HEARTBEAT_ENDPOINT"].endswith(".ingest.monitor.azure.com")


def test_a_daily_schedule_alarms_when_no_heartbeat_came_for_a_day_and_ten_minutes(
    run: StackRun,
) -> None:
    window = 86_400 + 300 + 300  # the longest gap, the starting deadline, the run deadline
    if run.stack == "aws":
        alarm = run.one(
            "aws:cloudwatch/metricAlarm:MetricAlarm", "nightly-schedule-alarms-missed"
        ).inputs
        assert (alarm["namespace"], alarm["metricName"]) == ("EDW/Tasks", "Heartbeat")
        assert alarm["dimensions"] == {"Task": "nightly-schedule"}
        assert (alarm["statistic"], alarm["comparisonOperator"]) == ("Sum", "LessThanThreshold")
        assert alarm["threshold"] == 1
        assert alarm["treatMissingData"] == "breaching"  # no beat is the failure itself
        # Over a day: hourly periods (CloudWatch allows a day in all for shorter ones).
        assert (alarm["period"], alarm["evaluationPeriods"]) == (3600, math.ceil(window / 3600))
        return
    (rule,) = [
        r.inputs for r in run.of_type("azure-native:monitor:ScheduledQueryRule")
        if r.name == "heartbeat-alerts-nightly-schedule"
    ]  # fmt: skip
    (condition,) = rule["criteria"]["allOf"]
    assert condition["query"] == 'EdwHeartbeat_CL | where Task == "nightly-schedule"'
    assert (condition["timeAggregation"], condition["operator"]) == ("Count", "LessThan")
    assert condition["threshold"] == 1
    assert rule["windowSize"] == "P2D"  # the smallest alert window over a day and ten minutes
    assert rule["scopes"] == [run.one("azure-native:operationalinsights:Workspace").id]
    assert rule["actions"] == {"actionGroups": [run.one("azure-native:monitor:ActionGroup").id]}


def test_the_schedule_identity_may_only_publish_to_the_router(run: StackRun) -> None:
    if run.stack == "aws":
        topic = run.one("aws:sns/topic:Topic", "router-topic").outputs["arn"]
        key = run.one("aws:kms/key:Key", "router-key").outputs["arn"]
        policy = run.one("aws:iam/rolePolicy:RolePolicy", "nightly-schedule-identity-policy")
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert [(s["Action"], s["Resource"]) for s in statements] == [
            (["sns:Publish"], [topic]),
            (["kms:Decrypt", "kms:GenerateDataKey*"], [key]),
            (["cloudwatch:PutMetricData"], ["*"]),
        ]
        # The heartbeat only, in its namespace: PutMetricData has no resource-level permission.
        assert statements[2]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "EDW/Tasks"}}
        return
    topic = run.one("azure-native:eventgrid:Topic")
    grants = [
        g.inputs
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.name.startswith("nightly-schedule-identity-")
    ]
    rule = run.one("azure-native:monitor:DataCollectionRule", "heartbeats-rule")
    assert [(g["roleDefinitionId"].rsplit("/", 1)[1], g["scope"]) for g in grants] == [
        (EVENTGRID_DATA_SENDER, topic.id),
        (MONITORING_METRICS_PUBLISHER, rule.id),
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


@pytest.mark.parametrize(
    ("cloud", "schedule", "hours"),
    [
        ("aws", "0 2 * * 1", "168"),  # weekly: a week plus the ten minutes a tick may take
        ("azure", "*/15 9-17 * * mon-fri", "63.25"),  # the weekend is over two days
        ("aws", "@monthly", "744"),
    ],
)
def test_a_schedule_whose_missed_tick_could_not_alarm_is_refused(
    cloud: str, schedule: str, hours: str
) -> None:
    provider = {
        "aws": {"aws:region": "us-east-1"},
        "azure": {"azure-native:location": "westeurope"},
    }
    workflows = [{"name": "work", "schedule": schedule}]
    with pytest.raises(ConfigError, match=rf"workflows\[0\].schedule ticks up to {hours} h apart"):
        EdwConfig.parse({"cloud": cloud, "workflows": json.dumps(workflows)}, "s", provider[cloud])


def test_a_schedule_may_use_a_macro_and_an_unfiltered_workflow_takes_it() -> None:
    cfg = parse([{"name": "work", "schedule": "@hourly"}])
    assert cfg.workflows[0].schedule == "@hourly"
    assert cfg.workflows[0].mode == "service"
