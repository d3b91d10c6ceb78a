"""A periodic task in the consumer namespace: a CronJob running one module of the app image.

Two uses: a workflow's schedule (``app.schedule`` publishes one CloudEvent to the router at each
tick, routed like any other) and, on Azure, the per-queue metrics (``app.queue_metrics``). The pod
is as hardened as the consumer's, runs under an identity allowed only its one task, and may only
reach DNS and HTTPS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes import batch, core, meta

from components.k8s.consumer import (
    CONSUMER_TOLERATION,
    CONTAINER_SECURITY,
    PART_OF,
    POD_SECURITY,
    TMP_MOUNT,
    TMP_VOLUME,
    node_affinity,
    workload_network_policy,
)

# A missed tick is not made up after this long (a cluster down at 02:00 does not fire at 09:00).
STARTING_DEADLINE_SECONDS = 300
RUN_DEADLINE_SECONDS = 120  # one publish; anything longer is stuck
HISTORY = 3


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
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Frequent tasks run on the always-on system nodes (a minutely pod on the consumer pools
    # would keep a node from ever being consolidated); None: the consumer pools, spot first.
    system_nodes: SystemPlacement | None = None
    service_account_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    platform: Sequence[pulumi.Resource] = ()


class PeriodicTask(pulumi.ComponentResource):
    """CronJob (UTC, Forbid, a starting deadline, history limits) + its service account and
    network policy."""

    cron_job_name: pulumi.Output[str]

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
        container = core.v1.ContainerArgs(
            name="task",
            image=args.image,
            image_pull_policy="IfNotPresent",
            command=["python", "-m", args.module],
            env=[core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(args.env.items())],
            resources=core.v1.ResourceRequirementsArgs(
                requests={"cpu": "50m", "memory": "96Mi"}, limits={"cpu": "250m", "memory": "192Mi"}
            ),
            security_context=CONTAINER_SECURITY,
            volume_mounts=[TMP_MOUNT],
        )
        pod = core.v1.PodTemplateSpecArgs(
            metadata=meta.v1.ObjectMetaArgs(labels={**labels, **args.pod_labels}),
            spec=core.v1.PodSpecArgs(
                service_account_name=sa.metadata.name,
                automount_service_account_token=False,
                restart_policy="Never",
                security_context=POD_SECURITY,
                containers=[container],
                volumes=[TMP_VOLUME],
                tolerations=[
                    args.system_nodes.toleration if args.system_nodes else CONSUMER_TOLERATION
                ],
                node_selector=dict(args.system_nodes.node_selector) if args.system_nodes else None,
                affinity=None if args.system_nodes else node_affinity("spot-first"),
            ),
        )
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
                        backoff_limit=2,
                        active_deadline_seconds=RUN_DEADLINE_SECONDS,
                        ttl_seconds_after_finished=3600,
                        template=pod,
                    )
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[sa, *args.platform]),
        )
        self.cron_job_name = cron.metadata.name
        self.register_outputs({"cron_job_name": self.cron_job_name})
