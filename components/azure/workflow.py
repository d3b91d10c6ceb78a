"""One workflow on Azure: its Storage queue and poison queue, its Event Grid subscription, its
workload identities and grants (KEDA's read on its queue included), its consumer and its schedule
with the heartbeat the stack's alert watches, as one component (`AzureWorkflow`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import workflow as neutral
from components.azure.heartbeats import Heartbeat, HeartbeatSink
from components.azure.identity import IdentityFactory, WorkloadIdentity, assign_role
from components.azure.results_table import TableRef
from components.azure.roles import (
    EVENTGRID_DATA_SENDER,
    STORAGE_QUEUE_DATA_CONTRIBUTOR,
    STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR,
    STORAGE_QUEUE_DATA_MESSAGE_SENDER,
    STORAGE_QUEUE_DATA_READER,
)
from components.azure.router import (
    DeadLetterTarget,
    EventGridQueueSubscription,
    EventGridRouter,
    QueueSubscriptionArgs,
)
from components.azure.work_queue import QueueAccount, StorageWorkQueue, StorageWorkQueueArgs
from components.k8s.consumer import QueueTrigger
from components.settings import Workflow

WORKLOAD_IDENTITY_USE = {"azure.workload.identity/use": "true"}


def workload_identity(client_id: pulumi.Input[str]) -> neutral.PodIdentity:
    return neutral.PodIdentity(
        {"azure.workload.identity/client-id": client_id}, WORKLOAD_IDENTITY_USE
    )


@dataclass(frozen=True)
class KedaAccess:
    """The KEDA add-on's identity, which reads each workflow's queue length, and the check that
    its operator runs with that identity's token."""

    identity: WorkloadIdentity
    # The identity's component name: each workflow's grant to it is named after it, as it was
    # when the identity held every workflow's grant.
    identity_name: str
    token: pulumi.Resource


@dataclass(frozen=True)
class AzureWorkflowArgs:
    workflow: Workflow
    resource_group_name: pulumi.Input[str]
    subscription_id: str
    queue_account: QueueAccount
    router: EventGridRouter
    dead_letters: DeadLetterTarget
    table: TableRef
    identities: IdentityFactory
    keda: KedaAccess
    heartbeats: HeartbeatSink
    cluster: neutral.WorkflowCluster
    node_pools: pulumi.Resource  # what the consumer's pods are scheduled on
    image_pull: pulumi.Resource  # the kubelet's pull grant on the registry
    # The handler's image (given, or built by the stack); None without a handler.
    handler_image: pulumi.Input[str] | None = None


class AzureWorkflow(pulumi.ComponentResource):
    """A workflow on Azure. Its parts keep the names they had when the stack made them at its top
    level (and KEDA's grant, when KEDA's identity held it), with aliases to those URNs: an
    existing stack updates in place, role assignments keep their GUIDs."""

    queue_name: pulumi.Output[str]
    queue_id: pulumi.Output[str]
    poison_queue_name: pulumi.Output[str]
    poison_queue_id: pulumi.Output[str]
    consumer_client_id: pulumi.Output[str]
    consumer_name: pulumi.Output[str]  # its Deployment's (service) or ScaledJob's (job)
    heartbeat: Heartbeat | None  # the schedule's, for the stack's heartbeat alert

    def __init__(
        self, name: str, args: AzureWorkflowArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:AzureWorkflow", name, None, opts)
        w, ids, keda = args.workflow, args.identities, args.keda
        moved = neutral.moved_under(self)
        queue = StorageWorkQueue(
            w.name,
            StorageWorkQueueArgs(
                resource_group_name=args.resource_group_name,
                account_name=args.queue_account.account_name,
                queue_name=w.name,
            ),
            opts=moved,
        )
        EventGridQueueSubscription(
            w.resource_name("route"),
            QueueSubscriptionArgs(
                topic_id=args.router.topic_id,
                topic_principal_id=args.router.principal_id,
                subscription_id=args.subscription_id,
                subscription_name=w.name,
                account_id=args.queue_account.account_id,
                queue_name=queue.queue_name,
                queue_id=queue.queue_id,
                dead_letters=args.dead_letters,
                filter=w.filter,
                ready=[args.router.dead_letter_grant],
            ),
            opts=moved,
        )
        # KEDA reads this queue's length, nothing else.
        reads = ids.role(w.resource_name("queue-reader"), STORAGE_QUEUE_DATA_READER, queue.queue_id)
        keda_reader = assign_role(
            f"{keda.identity_name}-{reads.name}",
            keda.identity.principal_id,
            reads,
            pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=keda.identity)]),
        )
        identity = ids(
            w.resource_name("consumer-identity"),
            args.cluster.namespace.namespace_name,
            w.k8s_name,
            # Drain its own queue (Get, Update and Delete Message: Queue Data Contributor is the
            # one built-in role with messages/write, which Update Message needs), set aside to
            # its own poison queue and remove what it put there when the envelope fails
            # (Message Sender + Processor). Actions per operation: Azure Storage REST,
            # "Authorize with Microsoft Entra ID", permissions for queue data operations.
            roles=[
                ids.role("queue-contributor", STORAGE_QUEUE_DATA_CONTRIBUTOR, queue.queue_id),
                ids.role("poison-sender", STORAGE_QUEUE_DATA_MESSAGE_SENDER, queue.poison_queue_id),
                ids.role(
                    "poison-processor", STORAGE_QUEUE_DATA_MESSAGE_PROCESSOR, queue.poison_queue_id
                ),
                # Handler: what it emits is published to the router (docs/handlers.md).
                *(
                    [ids.role("router-sender", EVENTGRID_DATA_SENDER, args.router.topic_id)]
                    if w.handler
                    else []
                ),
            ],
            table_roles=[args.table.writer()],
            opts=moved,
        )
        workload = neutral.consumer(
            self,
            w,
            args.cluster,
            backend_env={
                "EDW_QUEUE": queue.queue_name,
                "EDW_DEAD_LETTER_QUEUE": queue.poison_queue_name,
                "EDW_TABLE": args.table.table_name,
                "EDW_STORAGE_ACCOUNT": args.queue_account.account_name,
                "EDW_TABLE_ENDPOINT": args.table.table_endpoint,
            },
            trigger=QueueTrigger(
                type="azure-queue",
                metadata={
                    "accountName": args.queue_account.account_name,
                    "queueName": queue.queue_name,
                    # ApproximateMessagesCount: includes in-flight (invisible) messages.
                    "queueLengthStrategy": "all",
                    "cloud": "AzurePublicCloud",
                },
                # The add-on's operator exchanges its own token for the KEDA identity.
                pod_identity={"provider": "azure-workload", "identityId": keda.identity.client_id},
            ),
            identity=workload_identity(identity.client_id),
            ready=[
                args.node_pools,
                identity,
                keda.identity,
                keda_reader,
                keda.token,
                args.image_pull,
            ],
            handler_image=args.handler_image,
            router_env={"EDW_ROUTER": args.router.endpoint} if w.handler else None,
        )
        self.heartbeat = None
        if w.schedule:
            publisher = ids(
                w.resource_name("schedule-identity"),
                args.cluster.namespace.namespace_name,
                f"{w.k8s_name}-schedule",
                # Publish to the router and its heartbeats, nothing else.
                roles=[
                    ids.role("router-sender", EVENTGRID_DATA_SENDER, args.router.topic_id),
                    args.heartbeats.sender(ids),
                ],
                opts=moved,
            )
            task = neutral.schedule(
                self,
                w,
                args.cluster,
                env={**args.heartbeats.env, "EDW_ROUTER": args.router.endpoint},
                identity=workload_identity(publisher.client_id),
                ready=[publisher, args.image_pull],
            )
            self.heartbeat = Heartbeat(
                neutral.task_name(w), neutral.schedule_window(w), task.first_beat
            )
        self.queue_name, self.queue_id = queue.queue_name, queue.queue_id
        self.poison_queue_name = queue.poison_queue_name
        self.poison_queue_id = queue.poison_queue_id
        self.consumer_client_id = identity.client_id
        self.consumer_name = workload.deployment_name
        self.register_outputs(
            {
                "queue_name": self.queue_name,
                "poison_queue_name": self.poison_queue_name,
                "consumer_client_id": self.consumer_client_id,
                "consumer_name": self.consumer_name,
            }
        )
