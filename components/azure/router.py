"""The event router on Azure: one Event Grid custom topic (CloudEvents 1.0 input, Entra-only) that
sends each event, by its content, to the workflows' Storage queues and to partners' webhooks."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, eventgrid

from components.azure.roles import (
    EVENTGRID_DATA_SENDER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_QUEUE_DATA_MESSAGE_SENDER,
    grant_name,
    role_definition_id,
)
from components.routing import EventFilter, event_grid_filters
from components.settings import Principal

CLOUD_EVENTS = "CloudEventSchemaV1_0"
# Event Grid's defaults, stated: 30 tries over at most a day, then the dead-letter container.
RETRY = eventgrid.RetryPolicyArgs(max_delivery_attempts=30, event_time_to_live_in_minutes=1440)
TOPIC_IDENTITY = eventgrid.EventSubscriptionIdentityArgs(type="SystemAssigned")
QUEUE_MESSAGES_NEVER_EXPIRE = -1


@dataclass(frozen=True)
class DeadLetterTarget:
    """The blob container the router dead-letters to, in the stack's queue account."""

    account_id: pulumi.Input[str]
    container_name: pulumi.Input[str]
    container_id: pulumi.Input[str]


@dataclass(frozen=True)
class EventGridRouterArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    topic_name: str
    subscription_id: str
    publishers: Sequence[Principal]
    dead_letters: DeadLetterTarget
    public_network: Literal["Enabled", "Disabled"]
    tags: Mapping[str, str]


class EventGridRouter(pulumi.ComponentResource):
    """Custom topic: CloudEvents 1.0 only (the router refuses anything else), local (key) auth
    off, TLS 1.2, a system-assigned identity that delivers and dead-letters (it may write to
    exactly the dead-letter container), and "EventGrid Data Sender" for exactly the publishers
    named."""

    topic_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    dead_letter_grant: authorization.RoleAssignment
    webhook_secrets: dict[str, pulumi.Output[str]]  # partner webhook name -> its secret

    def __init__(
        self, name: str, args: EventGridRouterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:EventGridRouter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = eventgrid.Topic(
            f"{name}-topic",
            topic_name=args.topic_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            input_schema=CLOUD_EVENTS,
            disable_local_auth=True,
            minimum_tls_version_allowed="1.2",
            public_network_access=args.public_network,
            identity=eventgrid.IdentityInfoArgs(type="SystemAssigned"),
            tags=dict(args.tags),
            opts=child,
        )
        for publisher in args.publishers:
            grant, former = grant_name(f"{name}-publisher", publisher, args.publishers)
            authorization.RoleAssignment(
                grant,
                principal_id=publisher.object_id,
                principal_type=publisher.type,
                role_definition_id=role_definition_id(args.subscription_id, EVENTGRID_DATA_SENDER),
                scope=topic.id,
                opts=pulumi.ResourceOptions(parent=self, aliases=former),
            )
        self.principal_id = topic.identity.apply(lambda i: i.principal_id if i else "")
        self.dead_letter_grant = authorization.RoleAssignment(
            f"{name}-dead-letter-writer",
            principal_id=self.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(
                args.subscription_id, STORAGE_BLOB_DATA_CONTRIBUTOR
            ),
            scope=args.dead_letters.container_id,
            opts=child,
        )
        self.webhook_secrets = {}
        self.topic_id = topic.id
        self.endpoint = topic.endpoint
        self.register_outputs(
            {
                "topic_id": self.topic_id,
                "endpoint": self.endpoint,
                "principal_id": self.principal_id,
            }
        )


ADVANCED_FILTERS = {
    "StringIn": eventgrid.StringInAdvancedFilterArgs,
    "StringBeginsWith": eventgrid.StringBeginsWithAdvancedFilterArgs,
    "NumberIn": eventgrid.NumberInAdvancedFilterArgs,
}


def subscription_filter(event_filter: EventFilter) -> eventgrid.EventSubscriptionFilterArgs:
    """The advanced filters of a filter, and arrays on: without
    enableAdvancedFilteringOnArrays an event whose filtered field is an array is dropped
    ("Understand event filtering", Key), where SNS matches it by any element."""
    return eventgrid.EventSubscriptionFilterArgs(
        advanced_filters=[
            ADVANCED_FILTERS[f["operatorType"]](
                key=f["key"], operator_type=f["operatorType"], values=f["values"]
            )
            for f in event_grid_filters(event_filter)
        ]
        or None,
        enable_advanced_filtering_on_arrays=True,
    )


def dead_letter(target: DeadLetterTarget) -> eventgrid.DeadLetterWithResourceIdentityArgs:
    return eventgrid.DeadLetterWithResourceIdentityArgs(
        identity=TOPIC_IDENTITY,
        dead_letter_destination=eventgrid.StorageBlobDeadLetterDestinationArgs(
            endpoint_type="StorageBlob",
            resource_id=target.account_id,
            blob_container_name=target.container_name,
        ),
    )


@dataclass(frozen=True)
class QueueSubscriptionArgs:
    topic_id: pulumi.Input[str]
    topic_principal_id: pulumi.Input[str]
    subscription_id: str
    subscription_name: str
    account_id: pulumi.Input[str]
    queue_name: pulumi.Input[str]
    queue_id: pulumi.Input[str]
    dead_letters: DeadLetterTarget
    filter: EventFilter
    # What must exist before the first delivery: the router's dead-letter grant.
    ready: Sequence[pulumi.Resource] = ()


class EventGridQueueSubscription(pulumi.ComponentResource):
    """A workflow's subscription: its filter, delivery to its queue and dead-lettering to the
    container, both with the topic's identity, which may send to exactly that queue. Event Grid
    writes each event as one Base64-encoded queue message (docs/routing.md); the consumer reads
    both that and plain JSON."""

    def __init__(
        self, name: str, args: QueueSubscriptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:EventGridQueueSubscription", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        grant = authorization.RoleAssignment(
            f"{name}-queue-sender",
            principal_id=args.topic_principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id(
                args.subscription_id, STORAGE_QUEUE_DATA_MESSAGE_SENDER
            ),
            scope=args.queue_id,
            opts=child,
        )
        eventgrid.EventSubscription(
            f"{name}-subscription",
            scope=args.topic_id,
            event_subscription_name=args.subscription_name,
            event_delivery_schema=CLOUD_EVENTS,
            delivery_with_resource_identity=eventgrid.DeliveryWithResourceIdentityArgs(
                identity=TOPIC_IDENTITY,
                destination=eventgrid.StorageQueueEventSubscriptionDestinationArgs(
                    endpoint_type="StorageQueue",
                    resource_id=args.account_id,
                    queue_name=args.queue_name,
                    # Without it each message expires after Put Message's default 7 days, even
                    # while the consumer waits out an outage; -1: never (the subscription API's
                    # queueMessageTimeToLiveInSeconds, "-1 to indicate ... Infinite").
                    queue_message_time_to_live_in_seconds=QUEUE_MESSAGES_NEVER_EXPIRE,
                ),
            ),
            filter=subscription_filter(args.filter),
            retry_policy=RETRY,
            dead_letter_with_resource_identity=dead_letter(args.dead_letters),
            # Event Grid checks its rights on the first delivery: grant them first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grant, *args.ready]),
        )
        self.register_outputs({})


@dataclass(frozen=True)
class WebhookArgs:
    topic_id: pulumi.Input[str]
    subscription_name: str
    url: str
    dead_letters: DeadLetterTarget
    filter: EventFilter
    ready: Sequence[pulumi.Resource] = ()


# Who the router says it is in the Authorization header (HTTP Basic: the same check a partner
# makes on an SNS delivery with credentials in its endpoint URL; docs/routing.md).
WEBHOOK_USER = "edw"
SECRET_LENGTH = 40


def basic_authorization(secret: str) -> str:
    """The Authorization header value for ``secret`` (RFC 7617 Basic, user WEBHOOK_USER)."""
    return "Basic " + base64.b64encode(f"{WEBHOOK_USER}:{secret}".encode()).decode()


class EventGridWebhook(pulumi.ComponentResource):
    """A partner's endpoint: the events its filter selects, one per request, Event Grid's retries
    and dead-lettering with the topic's identity. Every event delivery carries a secret
    Authorization header (a static delivery attribute marked secret; Event Grid "Custom delivery
    properties" shows exactly this use for webhooks) that the partner checks. The endpoint must
    answer Event Grid's validation handshake when the subscription is created, without asking
    for that header: it is documented for deliveries, not for the OPTIONS (docs/routing.md)."""

    secret: pulumi.Output[str]

    def __init__(
        self, name: str, args: WebhookArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:azure:EventGridWebhook", name, None, opts)
        # Generated once and kept (secret) in state; rotate with `pulumi up --replace` on it.
        secret = random.RandomPassword(
            f"{name}-secret",
            length=SECRET_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        header = eventgrid.StaticDeliveryAttributeMappingArgs(
            name="Authorization",
            type="Static",
            is_secret=True,
            value=pulumi.Output.secret(secret.result.apply(basic_authorization)),
        )
        eventgrid.EventSubscription(
            f"{name}-subscription",
            scope=args.topic_id,
            event_subscription_name=args.subscription_name,
            event_delivery_schema=CLOUD_EVENTS,
            destination=eventgrid.WebHookEventSubscriptionDestinationArgs(
                endpoint_type="WebHook",
                endpoint_url=args.url,
                max_events_per_batch=1,
                delivery_attribute_mappings=[header],
            ),
            filter=subscription_filter(args.filter),
            retry_policy=RETRY,
            dead_letter_with_resource_identity=dead_letter(args.dead_letters),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.ready)),
        )
        self.secret = pulumi.Output.secret(secret.result)
        self.register_outputs({"secret": self.secret})
