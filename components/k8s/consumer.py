"""The consumer workloads, cloud-neutral: the namespace they share and, per workflow, a service
account, Deployment, PDB, network policy and the KEDA ScaledObject + TriggerAuthentication that
scale it on its queue's depth.

Each cloud stack supplies what differs: the image, the backend env, the identity annotations and
labels, and the KEDA trigger (type, metadata, pod identity).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes import apiextensions, apps, core, meta, networking, policy

from components.k8s.nodepools import CONSUMER_NODE_LABEL, CONSUMER_TAINT
from components.settings import CONSUMER_HTTP_PORT, ConsumerSettings, Handler, Workflow
from components.versions import KEDA_API

# The consumer's health and metrics port; 8080 is left to handlers (docs/handlers.md).
HTTP_PORT = CONSUMER_HTTP_PORT
HANDLER_CONTAINER = "handler"
# The pod annotation each identity webhook reads to leave containers out of its injection
# (no token volume mount, no credential env): the handler never holds the workflow's identity.
# EKS: aws/amazon-eks-pod-identity-webhook pkg/handler/handler.go getContainersToSkip, a
# comma-separated list, applied to initContainers and containers alike. Azure:
# Azure/azure-workload-identity pkg/webhook/webhook.go getSkipContainers, a semicolon-separated
# list, applied to both lists too (docs: topics/service-account-labels-and-annotations.md).
SKIP_CONTAINERS_ANNOTATION = {
    "aws": "eks.amazonaws.com/skip-containers",
    "azure": "azure.workload.identity/skip-containers",
}
# Karpenter's pod annotation that blocks voluntary disruption (consolidation, drift, expiry) of
# the node while the pod runs; AKS NAP is Karpenter and honours it too.
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
# Job workflows (KEDA ScaledJob): the pod exits after this long idle; deadlines add up from it.
JOB_EXIT_WHEN_IDLE_SECONDS = 30
JOB_STARTUP_SECONDS = 120  # image pull and node start on a fresh Karpenter/NAP node
HANDLER_STARTUP_SECONDS = 60  # how long a handler may take to listen (its startup probe)
JOB_BACKOFF_LIMIT = 1  # a failed pod is retried once; its messages are back in the queue anyway
JOB_TTL_SECONDS = 3600  # finished Jobs are garbage-collected after an hour
JOB_HISTORY = {"succeeded": 3, "failed": 5}
RUN_AS = 10001


@dataclass(frozen=True)
class QueueTrigger:
    """A KEDA scaler on the work queue and the pod identity KEDA uses to read it."""

    type: str  # "aws-sqs-queue" | "azure-queue"
    metadata: Mapping[str, pulumi.Input[str]]
    pod_identity: Mapping[str, pulumi.Input[str]]


PART_OF = {"app.kubernetes.io/part-of": "edw"}
# What the namespace carried when it belonged to the single consumer (kept: no label churn).
NAMESPACE_LABELS = {"app.kubernetes.io/name": "edw-consumer", **PART_OF}
# Pod Security Admission: the API server refuses any pod in the namespace that breaks the
# "restricted" profile (Kubernetes docs, "Enforce Pod Security Standards with Namespace Labels").
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")
}
# The namespace and its default-deny policy once belonged to the ConsumerDeployment "consumer".
LEGACY_OWNER = ("consumer", "edw:k8s:ConsumerDeployment")


class ConsumerNamespace(pulumi.ComponentResource):
    """The namespace every workflow's consumer runs in, closed by default (deny all traffic;
    each consumer opens exactly what it needs)."""

    namespace: pulumi.Output[str]
    namespace_name: str

    def __init__(
        self, name: str, namespace: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:ConsumerNamespace", name, None, opts)
        # Aliases to the URNs these had as the single consumer's children: updated in place,
        # never deleted (deleting a namespace deletes everything in it).
        moved = pulumi.ResourceOptions(
            parent=self,
            aliases=[pulumi.Alias(parent=pulumi.create_urn(*LEGACY_OWNER))],
        )
        ns = core.v1.Namespace(
            f"{name}-ns",
            metadata=meta.v1.ObjectMetaArgs(
                name=namespace, labels={**NAMESPACE_LABELS, **POD_SECURITY_LABELS}
            ),
            opts=moved,
        )
        networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=meta.v1.ObjectMetaArgs(
                name="default-deny", namespace=ns.metadata.name, labels=NAMESPACE_LABELS
            ),
            spec=networking.v1.NetworkPolicySpecArgs(
                pod_selector=meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]
            ),
            opts=pulumi.ResourceOptions.merge(moved, pulumi.ResourceOptions(depends_on=[ns])),
        )
        self.namespace = ns.metadata.name
        self.namespace_name = namespace  # known before any resource (identities' trust)
        self.register_outputs({"namespace": self.namespace})


@dataclass(frozen=True)
class ConsumerDeploymentArgs:
    cloud: str
    workflow: Workflow
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    backend_env: Mapping[str, pulumi.Input[str]]
    trigger: QueueTrigger
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    service_account_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    # What must exist before the workload and be deleted after it: KEDA, the NodePools.
    platform: Sequence[pulumi.Resource] = ()
    # The workflow's handler image (built or given), when the workflow has a handler.
    handler_image: pulumi.Input[str] | None = None
    # Where the consumer publishes what a handler emits (the router's address, the env the
    # schedule's producer reads); given to the consumer only when it has a handler.
    router_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


class ConsumerDeployment(pulumi.ComponentResource):
    """Consumer pods on Karpenter/NAP nodes, scaled 0..N by KEDA on queue depth."""

    namespace: pulumi.Output[str]
    deployment_name: pulumi.Output[str]
    service_account_name: pulumi.Output[str]
    scaled_object_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ConsumerDeploymentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:k8s:ConsumerDeployment", name, None, opts)
        workflow = args.workflow
        settings = workflow.consumer
        k8s_name = workflow.k8s_name
        labels = {"app.kubernetes.io/name": k8s_name, **PART_OF}
        namespace = args.namespace
        in_ns = pulumi.ResourceOptions(parent=self)

        sa = core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta.v1.ObjectMetaArgs(
                name=k8s_name,
                namespace=namespace,
                labels={**labels, **args.service_account_labels},
                annotations=dict(args.service_account_annotations),
            ),
            automount_service_account_token=False,
            opts=in_ns,
        )
        workload_network_policy(name, k8s_name, namespace, labels, in_ns)

        auth = apiextensions.CustomResource(
            f"{name}-trigger-auth",
            api_version=KEDA_API,
            kind="TriggerAuthentication",
            metadata=meta.v1.ObjectMetaArgs(name=f"{k8s_name}-queue", namespace=namespace),
            spec={"podIdentity": dict(args.trigger.pod_identity)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.platform]),
        )
        template = _pod_template(args, labels, sa.metadata.name)
        # Deleted before KEDA itself, so its finalizer is served.
        scaler_opts = pulumi.ResourceOptions(parent=self, depends_on=[sa, auth, *args.platform])
        if workflow.mode == "job":
            scaled = apiextensions.CustomResource(
                f"{name}-scaled-job",
                api_version=KEDA_API,
                kind="ScaledJob",
                metadata=meta.v1.ObjectMetaArgs(name=k8s_name, namespace=namespace, labels=labels),
                spec=_scaled_job_spec(workflow, args.trigger, template, auth.metadata["name"]),
                opts=scaler_opts,
            )
            workload_name = scaled.metadata["name"]
        else:
            deployment = apps.v1.Deployment(
                f"{name}-deployment",
                metadata=meta.v1.ObjectMetaArgs(name=k8s_name, namespace=namespace, labels=labels),
                spec=_deployment_spec(labels, template),
                # The HPA that KEDA creates owns spec.replicas; never fight it on `up`.
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[sa, *args.platform], ignore_changes=["spec.replicas"]
                ),
            )
            policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=meta.v1.ObjectMetaArgs(name=k8s_name, namespace=namespace, labels=labels),
                # Consolidation and spot rebalancing drain nodes; keep most consumers working.
                spec=policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable="25%",
                    selector=meta.v1.LabelSelectorArgs(match_labels=labels),
                    # A pod that is not Ready (crash-looping, stuck) never holds a drain up.
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
                opts=in_ns,
            )
            scaled = apiextensions.CustomResource(
                f"{name}-scaled-object",
                api_version=KEDA_API,
                kind="ScaledObject",
                metadata=meta.v1.ObjectMetaArgs(name=k8s_name, namespace=namespace, labels=labels),
                spec=_scaled_object_spec(
                    settings, args.trigger, deployment.metadata.name, auth.metadata["name"]
                ),
                opts=pulumi.ResourceOptions.merge(
                    scaler_opts, pulumi.ResourceOptions(depends_on=[deployment])
                ),
            )
            workload_name = deployment.metadata.name

        self.namespace = namespace
        self.deployment_name = workload_name
        self.service_account_name = sa.metadata.name
        self.scaled_object_name = scaled.metadata["name"]
        self.register_outputs(
            {
                "namespace": self.namespace,
                "deployment_name": self.deployment_name,
                "service_account_name": self.service_account_name,
                "scaled_object_name": self.scaled_object_name,
            }
        )


# The hardening every pod of ours carries: non-root, read-only root, no privilege, no
# capabilities, the runtime's seccomp profile, a small writable /tmp.
CONTAINER_SECURITY = core.v1.SecurityContextArgs(
    run_as_non_root=True,
    run_as_user=RUN_AS,
    run_as_group=RUN_AS,
    read_only_root_filesystem=True,
    allow_privilege_escalation=False,
    capabilities=core.v1.CapabilitiesArgs(drop=["ALL"]),
)
POD_SECURITY = core.v1.PodSecurityContextArgs(
    run_as_non_root=True,
    fs_group=RUN_AS,
    seccomp_profile=core.v1.SeccompProfileArgs(type="RuntimeDefault"),
)
TMP_MOUNT = core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")
TMP_VOLUME = core.v1.VolumeArgs(
    name="tmp", empty_dir=core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi")
)
# The handler's own writable /tmp: it shares nothing on disk with the consumer.
HANDLER_TMP_MOUNT = core.v1.VolumeMountArgs(name="handler-tmp", mount_path="/tmp")
HANDLER_TMP_VOLUME = core.v1.VolumeArgs(
    name="handler-tmp", empty_dir=core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi")
)
CONSUMER_TOLERATION = core.v1.TolerationArgs(
    key=CONSUMER_TAINT["key"],
    operator="Equal",
    value=CONSUMER_TAINT["value"],
    effect=CONSUMER_TAINT["effect"],
)

DNS_PORTS = [
    networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=53) for protocol in ("UDP", "TCP")
]


def workload_network_policy(
    name: str,
    k8s_name: str,
    namespace: pulumi.Input[str],
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    *,
    ingress_port: int | None = HTTP_PORT,
) -> None:
    """Open the namespace's default deny for one kind of our pods: probes and scrapes on their
    HTTP port in (none for a pod that serves nothing), only cluster DNS and HTTPS (the queue,
    router, table and identity APIs) out. Enforced by the VPC CNI's network policy agent on EKS
    and by Cilium on AKS."""
    networking.v1.NetworkPolicy(
        f"{name}-network-policy",
        metadata=meta.v1.ObjectMetaArgs(name=k8s_name, namespace=namespace, labels=labels),
        spec=networking.v1.NetworkPolicySpecArgs(
            pod_selector=meta.v1.LabelSelectorArgs(match_labels=dict(labels)),
            policy_types=["Ingress", "Egress"],
            ingress=[
                networking.v1.NetworkPolicyIngressRuleArgs(
                    ports=[networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=ingress_port)]
                )
            ]
            if ingress_port
            else [],
            egress=[
                networking.v1.NetworkPolicyEgressRuleArgs(
                    to=[
                        networking.v1.NetworkPolicyPeerArgs(
                            namespace_selector=meta.v1.LabelSelectorArgs(
                                match_labels={"kubernetes.io/metadata.name": "kube-system"}
                            ),
                            pod_selector=meta.v1.LabelSelectorArgs(
                                match_labels={"k8s-app": "kube-dns"}
                            ),
                        )
                    ],
                    ports=DNS_PORTS,
                ),
                networking.v1.NetworkPolicyEgressRuleArgs(
                    ports=[networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=443)]
                ),
            ],
        ),
        opts=opts,
    )


def max_deliveries(cloud: str, max_receive_count: int) -> int:
    """The consumer's delivery limit (EDW_MAX_DELIVERIES). SQS moves a message to the DLQ itself,
    without a reason, once its receive count exceeds maxReceiveCount (SQS API reference,
    SetQueueAttributes RedrivePolicy: "moves messages after the value of maxReceiveCount is
    exceeded"), so a consumer limit of maxReceiveCount would never fire: it sets the message aside
    one delivery earlier, with its reason (the config refuses maxReceiveCount < 2 on aws). Azure
    queues have no redrive: there the consumer's limit is the only one."""
    return max_receive_count - 1 if cloud == "aws" else max_receive_count


def _consumer_env(
    args: ConsumerDeploymentArgs,
) -> list[core.v1.EnvVarArgs]:
    """The settings app/ reads (see app/settings.py), common part first, then the backend's."""
    c, queue = args.workflow.consumer, args.workflow.queue
    common: dict[str, pulumi.Input[str]] = {
        "EDW_CLOUD": args.cloud,
        "EDW_WORKFLOW": args.workflow.name,
        "EDW_CONCURRENCY": str(c.concurrency),
        "EDW_VISIBILITY_TIMEOUT_SECONDS": str(queue.visibility_timeout_seconds),
        "EDW_PROCESSING_TIMEOUT_SECONDS": str(c.processing_timeout_seconds),
        "EDW_MAX_DELIVERIES": str(max_deliveries(args.cloud, queue.max_receive_count)),
        "EDW_SIMULATED_WORK_MS": str(c.simulated_work_ms),
        "EDW_HTTP_PORT": str(HTTP_PORT),
        # Leave the kubelet a few seconds between our exit and its SIGKILL.
        "EDW_SHUTDOWN_TIMEOUT_SECONDS": str(c.termination_grace_seconds - 5),
    }
    if args.workflow.filter.data_paths:
        # Counted when one crosses an array of objects: SNS routes by it, Event Grid never.
        common["EDW_FILTER_PATHS"] = ",".join(args.workflow.filter.data_paths)
    if args.workflow.handler:
        common["EDW_HANDLER_URL"] = args.workflow.handler.url
        common.update(args.router_env)
    if args.workflow.mode == "job":
        # Each job settles at most one slice of the backlog (the scaler's target), then exits.
        common["EDW_MAX_MESSAGES"] = str(c.queue_length_target)
        common["EDW_EXIT_WHEN_IDLE_SECONDS"] = str(JOB_EXIT_WHEN_IDLE_SECONDS)
    merged = {**common, **args.backend_env}
    return [core.v1.EnvVarArgs(name=k, value=v) for k, v in sorted(merged.items())]


def _pod_template(
    args: ConsumerDeploymentArgs, labels: Mapping[str, str], service_account: pulumi.Input[str]
) -> core.v1.PodTemplateSpecArgs:
    """The consumer pod, the same hardened pod for a service's Deployment and a job's Jobs."""
    workflow = args.workflow
    c = workflow.consumer
    job = workflow.mode == "job"
    probe: dict[str, Any] = {"port": "http"}
    container = core.v1.ContainerArgs(
        name="consumer",
        image=args.image,
        image_pull_policy="IfNotPresent",
        env=_consumer_env(args),
        ports=[core.v1.ContainerPortArgs(name="http", container_port=HTTP_PORT)],
        resources=core.v1.ResourceRequirementsArgs(
            requests={"cpu": c.cpu_request, "memory": c.memory_request},
            limits={"cpu": c.cpu_limit, "memory": c.memory_limit},
        ),
        readiness_probe=core.v1.ProbeArgs(
            http_get=core.v1.HTTPGetActionArgs(path="/readyz", **probe),
            period_seconds=5,
            failure_threshold=2,
        ),
        liveness_probe=core.v1.ProbeArgs(
            http_get=core.v1.HTTPGetActionArgs(path="/healthz", **probe),
            initial_delay_seconds=10,
            period_seconds=10,
            failure_threshold=3,
        ),
        security_context=CONTAINER_SECURITY,
        volume_mounts=[TMP_MOUNT],
    )
    # The workflow label is on the pods only: a Deployment's selector cannot change in place.
    pod_labels = {**labels, **args.pod_labels, "edw/workflow": workflow.name}
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT)}
    sidecars = []
    if workflow.handler:
        if args.handler_image is None:
            raise ValueError(f"workflow {workflow.name!r} has a handler but no handler image")
        sidecars.append(_handler_container(workflow.handler, args.handler_image))
        annotations[SKIP_CONTAINERS_ANNOTATION[args.cloud]] = HANDLER_CONTAINER
    if job:
        # Karpenter (and NAP, which is Karpenter) never consolidates or drifts a node away
        # from under a running job; a spot interruption still can (docs/batch.md).
        annotations[DO_NOT_DISRUPT] = "true"
    return core.v1.PodTemplateSpecArgs(
        metadata=meta.v1.ObjectMetaArgs(labels=pod_labels, annotations=annotations),
        spec=core.v1.PodSpecArgs(
            service_account_name=service_account,
            # A job's pod runs once: its messages come back to the queue if it fails.
            restart_policy="Never" if job else None,
            # The consumer never calls the Kubernetes API. The identity webhooks (EKS pod
            # identity for IRSA, Azure workload identity) project their own audience-bound
            # token volume whatever this says, so the API token stays out of the pod.
            automount_service_account_token=False,
            termination_grace_period_seconds=c.termination_grace_seconds,
            security_context=POD_SECURITY,
            init_containers=sidecars or None,
            containers=[container],
            volumes=[TMP_VOLUME, *([HANDLER_TMP_VOLUME] if sidecars else [])],
            tolerations=[CONSUMER_TOLERATION],
            affinity=node_affinity(workflow.capacity),
            topology_spread_constraints=[
                core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="topology.kubernetes.io/zone",
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=meta.v1.LabelSelectorArgs(match_labels=dict(labels)),
                    # Spread each rollout's pods on their own, not old and new together.
                    match_label_keys=["pod-template-hash"],
                )
            ],
        ),
    )


def _handler_container(handler: Handler, image: pulumi.Input[str]) -> core.v1.ContainerArgs:
    """The workflow's handler as a native sidecar (an init container that keeps running,
    Kubernetes 1.29+, GA in 1.33: "Sidecar Containers" in the Kubernetes docs): it starts, and
    passes its startup probe, before the consumer starts, and is stopped after the consumer
    exits, so no event is ever sent to a handler that is not there. Hardened like the consumer,
    and its own /tmp."""
    port: dict[str, Any] = {"tcp_socket": core.v1.TCPSocketActionArgs(port="handler")}
    return core.v1.ContainerArgs(
        name=HANDLER_CONTAINER,
        image=image,
        image_pull_policy="IfNotPresent",
        restart_policy="Always",
        # The Knative convention: the port to serve on. Nothing else: no queue, table or
        # router address, no credentials (the webhooks skip it, see SKIP_CONTAINERS_ANNOTATION).
        env=[core.v1.EnvVarArgs(name="PORT", value=str(handler.port))],
        # Not opened by the network policy: the consumer calls it over loopback and the
        # kubelet's probes come from the node. The VPC CNI's agent always lets the node IP in
        # (aws/aws-network-policy-agent issue 56, maintainer's answer); Cilium's agent defaults
        # allow-localhost to "auto", which in Kubernetes mode is "always" (cilium/cilium daemon:
        # "Kubernetes demands that the localhost can always reach local pods"). AKS's managed
        # Cilium settings are not visible here: the upstream default, not observed on AKS.
        ports=[core.v1.ContainerPortArgs(name="handler", container_port=handler.port)],
        resources=core.v1.ResourceRequirementsArgs(
            requests={"cpu": handler.cpu_request, "memory": handler.memory_request},
            limits={"cpu": handler.cpu_limit, "memory": handler.memory_limit},
        ),
        # Up to a minute to start listening before the kubelet restarts it.
        startup_probe=core.v1.ProbeArgs(
            **port, period_seconds=2, failure_threshold=HANDLER_STARTUP_SECONDS // 2
        ),
        readiness_probe=core.v1.ProbeArgs(**port, period_seconds=5, failure_threshold=2),
        # A handler that stops accepting connections is restarted; the consumer holds its
        # events meanwhile (retried, never dead-lettered: docs/handlers.md).
        liveness_probe=core.v1.ProbeArgs(**port, period_seconds=10, failure_threshold=3),
        security_context=CONTAINER_SECURITY,
        volume_mounts=[HANDLER_TMP_MOUNT],
    )


def _deployment_spec(
    labels: Mapping[str, str], template: core.v1.PodTemplateSpecArgs
) -> apps.v1.DeploymentSpecArgs:
    return apps.v1.DeploymentSpecArgs(
        selector=meta.v1.LabelSelectorArgs(match_labels=dict(labels)),
        strategy=apps.v1.DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge="25%"),
        ),
        template=template,
    )


def job_deadline_seconds(workflow: Workflow) -> int:
    """How long one job may run: start-up, then at worst one message per batch (each batch at
    most the processing timeout) for its share of EDW_MAX_MESSAGES per worker, the idle exit
    and the drain. The job takes no more than that, so it ends before the deadline kills it."""
    c = workflow.consumer
    batches = math.ceil(c.queue_length_target / c.concurrency)
    # A handler starts first (native sidecar): its own image pull and its startup probe.
    handler = JOB_STARTUP_SECONDS + HANDLER_STARTUP_SECONDS if workflow.handler else 0
    return (
        JOB_STARTUP_SECONDS
        + handler
        + batches * c.processing_timeout_seconds
        + JOB_EXIT_WHEN_IDLE_SECONDS
        + c.termination_grace_seconds
    )


def _scaled_job_spec(
    workflow: Workflow,
    trigger: QueueTrigger,
    template: core.v1.PodTemplateSpecArgs,
    auth: pulumi.Input[str],
) -> dict[str, Any]:
    c = workflow.consumer
    return {
        "jobTargetRef": {
            "parallelism": 1,
            "completions": 1,
            "activeDeadlineSeconds": job_deadline_seconds(workflow),
            "backoffLimit": JOB_BACKOFF_LIMIT,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": template,
        },
        "pollingInterval": c.polling_interval_seconds,
        "minReplicaCount": 0,
        "maxReplicaCount": c.max_replicas,
        "successfulJobsHistoryLimit": JOB_HISTORY["succeeded"],
        "failedJobsHistoryLimit": JOB_HISTORY["failed"],
        # The trigger counts in-flight messages (SQS scaleOnInFlight, Azure's approximate count
        # includes invisible ones), so "default" (jobs = ceil(length/target) - running jobs)
        # starts jobs only for what no running job holds (docs/batch.md).
        "scalingStrategy": {"strategy": "default"},
        "triggers": [_trigger(c, trigger, auth)],
    }


def node_affinity(capacity: str) -> core.v1.AffinityArgs:
    """Only on the consumer NodePools (never system nodes); spot preferred, or on-demand only
    when the workflow asks (a long job that a spot interruption must not cut)."""
    key, value = next(iter(CONSUMER_NODE_LABEL.items()))
    required = [core.v1.NodeSelectorRequirementArgs(key=key, operator="In", values=[value])]
    preferred = []
    capacity_type = "karpenter.sh/capacity-type"
    if capacity == "on-demand":
        required.append(
            core.v1.NodeSelectorRequirementArgs(
                key=capacity_type, operator="In", values=["on-demand"]
            )
        )
    else:
        preferred.append(
            core.v1.PreferredSchedulingTermArgs(
                weight=100,
                preference=core.v1.NodeSelectorTermArgs(
                    match_expressions=[
                        core.v1.NodeSelectorRequirementArgs(
                            key=capacity_type, operator="In", values=["spot"]
                        )
                    ]
                ),
            )
        )
    return core.v1.AffinityArgs(
        node_affinity=core.v1.NodeAffinityArgs(
            required_during_scheduling_ignored_during_execution=core.v1.NodeSelectorArgs(
                node_selector_terms=[core.v1.NodeSelectorTermArgs(match_expressions=required)]
            ),
            preferred_during_scheduling_ignored_during_execution=preferred or None,
        )
    )


def _scaled_object_spec(
    c: ConsumerSettings,
    trigger: QueueTrigger,
    deployment: pulumi.Input[str],
    auth: pulumi.Input[str],
) -> dict[str, Any]:
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": c.min_replicas,
        "maxReplicaCount": c.max_replicas,
        "pollingInterval": c.polling_interval_seconds,
        "cooldownPeriod": c.cooldown_seconds,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    # Scale up at once; scale down slowly so a dip between bursts does not
                    # churn pods (and the nodes under them).
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Max",
                        "policies": [
                            {"type": "Percent", "value": 100, "periodSeconds": 15},
                            {"type": "Pods", "value": 4, "periodSeconds": 15},
                        ],
                    },
                    "scaleDown": {
                        "stabilizationWindowSeconds": 120,
                        "selectPolicy": "Min",
                        "policies": [{"type": "Percent", "value": 25, "periodSeconds": 60}],
                    },
                }
            }
        },
        "triggers": [_trigger(c, trigger, auth)],
    }


def _trigger(c: ConsumerSettings, trigger: QueueTrigger, auth: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "type": trigger.type,
        "name": "work-queue",
        # Active while anything is queued or in flight (> 0): scaling to zero can never strand
        # a message, and in-flight work keeps its pod.
        "metadata": {
            **trigger.metadata,
            "queueLength": str(c.queue_length_target),
            "activationQueueLength": "0",
        },
        "authenticationRef": {"name": auth, "kind": "TriggerAuthentication"},
    }
