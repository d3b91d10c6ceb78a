"""The event router: topics encrypted and TLS-only, every subscription raw and redriven, queues
that accept only their topic, Event Grid keyless with identity delivery and dead-lettering, and
no partner endpoint on plain HTTP.

A subscription is tied to its queues, and a topic or queue to its policy, by dependency (the
ARNs are unknown before the first deploy), never by name. A topic's key and a subscription's
redrive policy are built from resources a first preview creates: unknown then, but set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .aws import SQS_QUEUE, statements
from .common import (
    Config,
    Node,
    StackFinding,
    Subject,
    as_list,
    dig,
    each,
    is_set,
    json_document,
    of_kind,
    resource_rule,
    stack_rule,
)

SNS_TOPIC = "aws:sns/topic:Topic"
SNS_TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
SQS_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
EVENT_GRID_TOPIC = "azure-native:eventgrid:Topic"
EVENT_GRID_SUBSCRIPTION = "azure-native:eventgrid:EventSubscription"
SNS_SERVICE = "sns.amazonaws.com"


def _topic_encrypted(topic: Subject, _: Config) -> Iterator[str]:
    if not is_set(topic.props, "kmsMasterKeyId"):
        yield f"topic {topic.label!r} is not encrypted at rest: set kmsMasterKeyId"


def _denies_plain_transport(document: Mapping[str, Any] | None) -> bool:
    return any(
        s.get("Effect") == "Deny"
        and str(dig(s, "Condition", "Bool", "aws:SecureTransport")).lower() == "false"
        for s in statements(document)
    )


def _policies_of(nodes: list[Node], target: Node, kind: str, key: str) -> list[Mapping[str, Any]]:
    return [
        doc
        for p in of_kind(nodes, kind)
        if p.depends_on(target) and (doc := json_document(p.subject.props.get(key))) is not None
    ]


def _topic_tls_only(nodes: list[Node], _: Config) -> Iterator[StackFinding]:
    def check(topic: Node) -> Iterator[StackFinding]:
        documents = _policies_of(nodes, topic, SNS_TOPIC_POLICY, "policy")
        if not any(_denies_plain_transport(d) for d in documents):
            yield (
                f"topic {topic.subject.label!r} has no topic policy denying requests without "
                "TLS (aws:SecureTransport false)",
                topic.subject.urn,
            )

    yield from each(of_kind(nodes, SNS_TOPIC), check)


def _subscription_delivery(subscription: Subject, _: Config) -> Iterator[str]:
    props = subscription.props
    protocol = props.get("protocol")
    if protocol == "http":
        yield f"subscription {subscription.label!r} delivers over plain http: use https"
    if protocol not in ("sqs", "http", "https"):
        return  # e-mail, SMS, Lambda: no payload contract and no redrive to judge here
    if props.get("rawMessageDelivery") is not True:
        yield (
            f"subscription {subscription.label!r} does not use raw message delivery: the "
            "receiver would get the SNS envelope instead of the CloudEvent"
        )
    if not is_set(props, "redrivePolicy"):
        yield (
            f"subscription {subscription.label!r} has no redrive policy: what SNS cannot "
            "deliver would be lost instead of kept in a dead-letter queue"
        )


def _allows_only_the_topic(statement: Mapping[str, Any]) -> bool:
    """An Allow to SNS (or anyone) is safe only when pinned to a topic by aws:SourceArn."""
    principal = statement.get("Principal")
    services = as_list(dig(principal, "Service")) if isinstance(principal, Mapping) else []
    if principal != "*" and SNS_SERVICE not in services:
        return True
    conditions = statement.get("Condition") or {}
    return any(
        "aws:SourceArn" in (values or {})
        for operator, values in conditions.items()
        if operator in ("ArnEquals", "ArnLike", "StringEquals")
    )


def _queue_accepts_only_its_topic(nodes: list[Node], _: Config) -> Iterator[StackFinding]:
    queues = of_kind(nodes, SQS_QUEUE)

    def check(subscription: Node) -> Iterator[StackFinding]:
        if subscription.subject.props.get("protocol") != "sqs":
            return
        # The queue it delivers to and the DLQ it redrives to: SNS sends to both.
        for queue in (q for q in queues if subscription.depends_on(q)):
            documents = _policies_of(nodes, queue, SQS_QUEUE_POLICY, "policy")
            allows = [s for d in documents for s in statements(d) if s.get("Effect") == "Allow"]
            if not any(SNS_SERVICE in as_list(dig(s, "Principal", "Service")) for s in allows):
                yield (
                    f"queue {queue.subject.label!r} is subscribed to a topic but its queue "
                    "policy does not let SNS send to it: deliveries would fail",
                    queue.subject.urn,
                )
            elif not all(_allows_only_the_topic(s) for s in allows):
                yield (
                    f"queue {queue.subject.label!r} lets SNS or anyone send without an "
                    "aws:SourceArn condition naming its topic: any topic could write to it",
                    queue.subject.urn,
                )

    yield from each(of_kind(nodes, SNS_SUBSCRIPTION), check)


def _event_grid_topic(topic: Subject, _: Config) -> Iterator[str]:
    if topic.props.get("disableLocalAuth") is not True:
        yield (
            f"Event Grid topic {topic.label!r} accepts access keys: set disableLocalAuth "
            "true so publishers authenticate with Entra"
        )
    if topic.props.get("minimumTlsVersionAllowed") not in ("1.2", "1.3"):
        yield f"Event Grid topic {topic.label!r} allows TLS below 1.2"


def _event_grid_subscription(subscription: Subject, _: Config) -> Iterator[str]:
    props = subscription.props
    label = subscription.label
    dead = props.get("deadLetterWithResourceIdentity")
    if not dig(dead, "deadLetterDestination") or not dig(dead, "identity", "type"):
        yield (
            f"Event Grid subscription {label!r} does not dead-letter with the topic's "
            "identity: undeliverable events would be dropped after the retries"
        )
    plain = props.get("destination")
    endpoint = dig(plain, "endpointType")
    if endpoint == "StorageQueue":
        yield (
            f"Event Grid subscription {label!r} delivers to a queue without the topic's "
            "identity: use deliveryWithResourceIdentity (no keys)"
        )
    if endpoint == "WebHook" and not str(dig(plain, "endpointUrl") or "").startswith("https://"):
        yield f"Event Grid subscription {label!r} delivers to a webhook over plain http: use https"


POLICIES = [
    resource_rule(
        "aws-sns-topic-encrypted",
        "SNS topics must be encrypted with a KMS key: the events carry business data.",
        [SNS_TOPIC],
        _topic_encrypted,
    ),
    stack_rule(
        "aws-sns-topic-tls-only",
        "Every SNS topic must have a topic policy that denies requests without TLS.",
        _topic_tls_only,
    ),
    resource_rule(
        "aws-sns-subscription-raw-and-redriven",
        "Every queue or HTTPS subscription must use raw delivery (the receiver gets the "
        "CloudEvent as published) and a redrive policy; plain http is refused.",
        [SNS_SUBSCRIPTION],
        _subscription_delivery,
    ),
    stack_rule(
        "aws-sqs-subscribed-queue-accepts-only-its-topic",
        "A queue subscribed to a topic must let SNS send only on behalf of a named topic "
        "(aws:SourceArn), and must let it send at all.",
        _queue_accepts_only_its_topic,
    ),
    resource_rule(
        "azure-eventgrid-topic-entra-only",
        "Event Grid topics must have local (key) auth off and TLS 1.2 or newer.",
        [EVENT_GRID_TOPIC],
        _event_grid_topic,
    ),
    resource_rule(
        "azure-eventgrid-subscription-identity-and-dead-letter",
        "Every Event Grid subscription must dead-letter with the topic's identity, deliver to "
        "queues with it, and reach webhooks only over https.",
        [EVENT_GRID_SUBSCRIPTION],
        _event_grid_subscription,
    ),
]
