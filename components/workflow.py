"""What a workflow is on either cloud, apart from the cloud.

`AwsWorkflow` (components/aws/workflow.py) and `AzureWorkflow` (components/azure/workflow.py)
each own one workflow's queue, router subscription, identities, consumer, schedule and alarms.
What they share lives here: the names, and the two workloads on the cluster (the consumer and the
schedule's CronJob), each put together in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.k8s.consumer import (
    ConsumerDeployment,
    ConsumerDeploymentArgs,
    ConsumerNamespace,
    QueueTrigger,
)
from components.k8s.schedule import PeriodicTask, PeriodicTaskArgs, SystemPlacement
from components.settings import SCHEDULE_SOURCE, Cloud, Workflow
from components.ticks import missed_tick_window_seconds


def task_name(workflow: Workflow) -> str:
    """What a workflow's schedule heartbeats are named (the alarm's Task)."""
    return f"{workflow.name}-schedule"


def schedule_window(workflow: Workflow) -> int:
    """No heartbeat from the schedule for this long: a tick failed or was missed."""
    return missed_tick_window_seconds(workflow.schedule)


def moved_under(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    """Options of a part the stack made at its top level before workflows were components: the
    alias to that URN updates it in place, and the engine carries the alias on to its children
    (inherited child aliases), so their URNs need none of their own."""
    return pulumi.ResourceOptions(parent=parent, aliases=[pulumi.Alias(parent=None)])


@dataclass(frozen=True)
class PodIdentity:
    """How a workload's pods run as their cloud identity: IRSA annotates the service account
    with the role; Azure workload identity annotates it with the client id and labels both the
    service account and the pods."""

    annotations: Mapping[str, pulumi.Input[str]]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkflowCluster:
    """The stack-wide Kubernetes pieces every workflow's pods run with."""

    cloud: Cloud
    prefix: str  # the stack's prefix: the schedule's event type carries it
    namespace: ConsumerNamespace
    image: pulumi.Input[str]
    system_nodes: SystemPlacement  # where periodic tasks run


def consumer(
    parent: pulumi.Resource,
    workflow: Workflow,
    cluster: WorkflowCluster,
    *,
    backend_env: Mapping[str, pulumi.Input[str]],
    trigger: QueueTrigger,
    identity: PodIdentity,
    ready: Sequence[pulumi.Resource],
    handler_image: pulumi.Input[str] | None = None,
    router_env: Mapping[str, pulumi.Input[str]] | None = None,
) -> ConsumerDeployment:
    """The workflow's consumer pods (Deployment + ScaledObject, or ScaledJob): the one place
    both clouds put them together. ``ready``: what must exist first and go last (KEDA, the node
    pools, the identities). With a handler: its image, and the router the consumer publishes
    what it emits to (docs/handlers.md)."""
    return ConsumerDeployment(
        workflow.resource_name("consumer"),
        ConsumerDeploymentArgs(
            cloud=cluster.cloud,
            workflow=workflow,
            namespace=cluster.namespace.namespace,
            image=cluster.image,
            backend_env=backend_env,
            trigger=trigger,
            service_account_annotations=identity.annotations,
            service_account_labels=identity.labels,
            pod_labels=identity.labels,
            platform=ready,
            handler_image=handler_image,
            router_env=router_env or {},
        ),
        opts=moved_under(parent),
    )


def schedule(
    parent: pulumi.Resource,
    workflow: Workflow,
    cluster: WorkflowCluster,
    *,
    env: Mapping[str, pulumi.Input[str]],
    identity: PodIdentity,
    ready: Sequence[pulumi.Resource],
) -> PeriodicTask:
    """The CronJob that publishes the workflow's scheduled event to the router, with its
    heartbeats. ``env``: how the cloud's app.schedule reaches the router (after the common
    settings)."""
    return PeriodicTask(
        workflow.resource_name("schedule"),
        PeriodicTaskArgs(
            k8s_name=f"{workflow.k8s_name}-schedule",
            schedule=workflow.schedule,
            module="app.schedule",
            heartbeat_task=task_name(workflow),
            # The Job's name in the pod names the tick's scheduled minute (the tick's id).
            job_name_env=True,
            namespace=cluster.namespace.namespace,
            image=cluster.image,
            env={
                "EDW_CLOUD": cluster.cloud,
                "EDW_WORKFLOW": workflow.name,
                "EDW_SCHEDULE_TYPE": workflow.scheduled_event_type(cluster.prefix),
                "EDW_SCHEDULE_SOURCE": SCHEDULE_SOURCE,
                **env,
            },
            system_nodes=cluster.system_nodes,
            service_account_annotations=identity.annotations,
            service_account_labels=identity.labels,
            pod_labels=identity.labels,
            platform=ready,
        ),
        opts=moved_under(parent),
    )
