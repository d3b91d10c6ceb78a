"""A periodic task in the consumer namespace: a CronJob running one module of the app image.

Two uses: a workflow's schedule (``app.schedule`` publishes one CloudEvent to the router at each
tick, routed like any other) and, on Azure, the per-queue metrics (``app.queue_metrics``). The pod
is as hardened as the consumer's, runs under an identity allowed only its one task, and may only
reach DNS and HTTPS. It runs on the always-on system nodes, where it starts at once: on the
scale-to-zero consumer pools a tick would first wait for a node, inside its own deadline, and a
minutely task would keep a consumer node from ever being consolidated.

With a heartbeat task name, each successful run sends a heartbeat (``app.heartbeat``) that the
stack's alarm watches, and a one-off Job sends the first one at deploy time: the alarm, made
after it, starts from a beat instead of paging until the first tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes import batch, core, meta

from components.k8s.consumer import (
    CONTAINER_SECURITY,
    PART_OF,
    POD_SECURITY,
    TMP_MOUNT,
    TMP_VOLUME,
    workload_network_policy,
)
from components.ticks import ATTEMPTS, RUN_DEADLINE_SECONDS, STARTING_DEADLINE_SECONDS

HISTORY = 3
HEARTBEAT_MODULE = "app.heartbeat"
# Every pod of a Job carries its name in this label: the API server sets it on the Job's pod
# template and validation requires it there, equal to the Job's name (k8s.io/api batch/v1
# JobNameLabel; kubernetes/kubernetes pkg/apis/batch/validation, ValidateHasLabel(...,
# batch.JobNameLabel, obj.Name)). The downward API passes one label's value as an env var
# (EnvVarSource.fieldRef: "metadata.labels['<KEY>']").
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclass(frozen=True)
class SystemPlacement:
    node_selector: Mapping[str, str]
    toleration: core.v1.TolerationArgs


@dataclass(frozen=True)
class PeriodicTaskArgs:
    k8s_name: str  # the CronJob's and its service account's name
    schedule: str  # cron, UTC
    module: str  # what the pod runs: python -m <module>
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    env: Mapping[str, pulumi.Input[str]]
    system_nodes: SystemPlacement
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # The name its heartbeats carry ("" = no heartbeat, no alarm).
    heartbeat_task: str = ""
    service_account_labels: Mapping[str, str] = field(default_factory=dict)
    # Tell the pod its Job's name (EDW_JOB_NAME) and the CronJob's (EDW_CRONJOB): the Job's name
    # ends in the scheduled minute, which app.schedule makes the tick's id from.
    job_name_env: bool = False
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    platform: Sequence[pulumi.Resource] = ()


class PeriodicTask(pulumi.ComponentResource):
    """CronJob (UTC, Forbid, a starting deadline, history limits) + its service account and
    network policy."""

    cron_job_name: pulumi.Output[str]
    first_beat: pulumi.Resource | None  # the deploy-time heartbeat Job, when there is one

    def __init__(
        self, name: str, args: PeriodicTaskArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:PeriodicTask", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        k8s_name = args.k8s_name
        labels = {"app.kubernetes.io/name": k8s_name, **PART_OF}
        sa = core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta.v1.ObjectMetaArgs(
                name=k8s_name,
                namespace=args.namespace,
                labels={**labels, **args.service_account_labels},
                annotations=dict(args.service_account_annotations),
            ),
            automount_service_account_token=False,
            opts=child,
        )
        workload_network_policy(name, k8s_name, args.namespace, labels, child, ingress_port=None)
        env = {
            **args.env,
            **({"EDW_HEARTBEAT_TASK": args.heartbeat_task} if args.heartbeat_task else {}),
        }

        def pod(module: str, job_name_env: bool = False) -> core.v1.PodTemplateSpecArgs:
            values = {**env, **({"EDW_CRONJOB": k8s_name} if job_name_env else {})}
            from_job = (
                [
                    core.v1.EnvVarArgs(
                        name="EDW_JOB_NAME",
                        value_from=core.v1.EnvVarSourceArgs(
                            field_ref=core.v1.ObjectFieldSelectorArgs(
                                field_path=f"metadata.labels['{JOB_NAME_LABEL}']"
                            )
                        ),
                    )
                ]
                if job_name_env
                else []
            )
            container = core.v1.ContainerArgs(
                name="task",
                image=args.image,
                image_pull_policy="IfNotPresent",
                command=["python", "-m", module],
                env=[core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(values.items())]
                + from_job,
                resources=core.v1.ResourceRequirementsArgs(
                    requests={"cpu": "50m", "memory": "96Mi"},
                    limits={"cpu": "250m", "memory": "192Mi"},
                ),
                security_context=CONTAINER_SECURITY,
                volume_mounts=[TMP_MOUNT],
            )
            return core.v1.PodTemplateSpecArgs(
                metadata=meta.v1.ObjectMetaArgs(labels={**labels, **args.pod_labels}),
                spec=core.v1.PodSpecArgs(
                    service_account_name=sa.metadata.name,
                    automount_service_account_token=False,
                    restart_policy="Never",
                    security_context=POD_SECURITY,
                    containers=[container],
                    volumes=[TMP_VOLUME],
                    tolerations=[args.system_nodes.toleration],
                    node_selector=dict(args.system_nodes.node_selector),
                ),
            )

        run = {
            "backoff_limit": ATTEMPTS - 1,
            # Covers every attempt, each with a minute to start (docs/batch.md).
            "active_deadline_seconds": RUN_DEADLINE_SECONDS,
        }
        after = pulumi.ResourceOptions(parent=self, depends_on=[sa, *args.platform])
        cron = batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=meta.v1.ObjectMetaArgs(name=k8s_name, namespace=args.namespace, labels=labels),
            spec=batch.v1.CronJobSpecArgs(
                schedule=args.schedule,
                time_zone="Etc/UTC",
                concurrency_policy="Forbid",
                starting_deadline_seconds=STARTING_DEADLINE_SECONDS,
                successful_jobs_history_limit=HISTORY,
                failed_jobs_history_limit=HISTORY,
                job_template=batch.v1.JobTemplateSpecArgs(
                    spec=batch.v1.JobSpecArgs(
                        **run,
                        ttl_seconds_after_finished=3600,
                        template=pod(args.module, args.job_name_env),
                    )
                ),
            ),
            opts=after,
        )
        # Kept after it completes (no TTL): a deleted Job would be made again, and beat again,
        # by a later `pulumi up` after a refresh, hiding a missed tick.
        self.first_beat = (
            batch.v1.Job(
                f"{name}-first-beat",
                metadata=meta.v1.ObjectMetaArgs(
                    name=f"{k8s_name}-first-beat", namespace=args.namespace, labels=labels
                ),
                spec=batch.v1.JobSpecArgs(**run, template=pod(HEARTBEAT_MODULE)),
                opts=after,
            )
            if args.heartbeat_task
            else None
        )
        self.cron_job_name = cron.metadata.name
        self.register_outputs({"cron_job_name": self.cron_job_name})
