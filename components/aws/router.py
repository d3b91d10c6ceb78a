"""The event router on AWS: one SNS topic that sends each CloudEvent, by its content, to the
workflows' queues and to partners' HTTPS endpoints (SNS payload-based filtering)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import sns, sqs

from components.aws.iam import allow, deny_insecure_transport, document
from components.aws.topic import encrypted_topic
from components.aws.work_queue import dead_letter_queue, router_sends
from components.routing import EventFilter, sns_filter_policy

# SNS developer guide, "Amazon SNS message delivery retries" (HTTP/S delivery policy): three quick
# tries, then exponential backoff from 5 s to 5 min, 20 tries (about 40 minutes; SNS allows at
# most 100 tries in 3600 s), at most 10 requests a second to the partner.
WEBHOOK_DELIVERY_POLICY = {
    "healthyRetryPolicy": {
        "numRetries": 20,
        "numNoDelayRetries": 2,
        "minDelayTarget": 5,
        "numMinDelayRetries": 1,
        "maxDelayTarget": 300,
        "numMaxDelayRetries": 5,
        "backoffFunction": "exponential",
    },
    "throttlePolicy": {"maxReceivesPerSecond": 10},
    "requestPolicy": {"headerContentType": "application/json"},
}


@dataclass(frozen=True)
class SnsEventRouterArgs:
    publisher_arns: Sequence[str]
    account_id: str
    region: str
    tags: Mapping[str, str]


class SnsEventRouter(pulumi.ComponentResource):
    """Standard SNS topic under a customer managed key, TLS-only, published to by the granted
    IAM principals (and, through their own IAM policies, this account's administrators)."""

    topic_arn: pulumi.Output[str]
    topic_name: pulumi.Output[str]
    key_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: SnsEventRouterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:SnsEventRouter", name, None, opts)
        granted = {"AWS": list(args.publisher_arns)}
        # SNS developer guide, "Encryption at rest" / key management: a publisher to an encrypted
        # topic needs GenerateDataKey* and Decrypt on its key, used through SNS.
        via_sns = {"StringEquals": {"kms:ViaService": f"sns.{args.region}.amazonaws.com"}}
        some = bool(args.publisher_arns)
        encrypted = encrypted_topic(
            name,
            self,
            description="Event router topic encryption",
            account_id=args.account_id,
            key_users=[
                allow(
                    ["kms:Decrypt", "kms:GenerateDataKey*"],
                    ["*"],
                    "PublishersUseTheKeyThroughSns",
                    Principal=granted,
                    Condition=via_sns,
                )
            ]
            if some
            else [],
            publishers=lambda arn: (
                [allow(["sns:Publish"], [arn], "GrantedPublishers", Principal=granted)]
                if some
                else []
            ),
            tags=args.tags,
        )
        topic, key = encrypted.topic, encrypted.key
        self.topic_arn, self.topic_name = topic.arn, topic.name
        self.key_arn = key.arn
        self.register_outputs({"topic_arn": self.topic_arn, "key_arn": self.key_arn})


def filter_args(event_filter: EventFilter) -> dict[str, str]:
    """A subscription's filter, matched against the message body (the CloudEvent as published)."""
    if event_filter.matches_everything:
        return {}
    return {
        "filter_policy": json.dumps(sns_filter_policy(event_filter), sort_keys=True),
        "filter_policy_scope": "MessageBody",
    }


def redrive_to(dlq_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(dlq_arn).apply(
        lambda arn: json.dumps({"deadLetterTargetArn": arn})
    )


@dataclass(frozen=True)
class QueueSubscriptionArgs:
    topic_arn: pulumi.Input[str]
    queue_arn: pulumi.Input[str]
    dlq_arn: pulumi.Input[str]
    filter: EventFilter


class SnsQueueSubscription(pulumi.ComponentResource):
    """A workflow's subscription: raw delivery (the queue receives the CloudEvent JSON as it was
    published, so the consumer is the same whether the producer used the router or the queue),
    its filter, and SNS delivery failures redriven to the workflow's own DLQ."""

    subscription_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: QueueSubscriptionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:SnsQueueSubscription", name, None, opts)
        subscription = sns.TopicSubscription(
            f"{name}-subscription",
            topic=args.topic_arn,
            protocol="sqs",
            endpoint=args.queue_arn,
            raw_message_delivery=True,
            redrive_policy=redrive_to(args.dlq_arn),
            **filter_args(args.filter),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.subscription_arn = subscription.arn
        self.register_outputs({"subscription_arn": self.subscription_arn})


@dataclass(frozen=True)
class WebhookArgs:
    topic_arn: pulumi.Input[str]
    url: str
    filter: EventFilter
    tags: Mapping[str, str]


class SnsWebhook(pulumi.ComponentResource):
    """A partner's HTTPS subscription: raw delivery of the events its filter selects, retries
    with exponential backoff and a throttle, and what never arrives kept in its own DLQ for
    14 days. The partner verifies and confirms the subscription once (docs/routing.md)."""

    subscription_arn: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: WebhookArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:SnsWebhook", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        dlq = dead_letter_queue(f"{name}-dlq", args.tags, child)
        sqs.QueuePolicy(
            f"{name}-dlq-policy",
            queue_url=dlq.url,
            policy=document(
                [deny_insecure_transport(dlq.arn), router_sends(dlq.arn, args.topic_arn)]
            ),
            opts=child,
        )
        subscription = sns.TopicSubscription(
            f"{name}-subscription",
            topic=args.topic_arn,
            protocol="https",
            endpoint=args.url,
            raw_message_delivery=True,
            delivery_policy=json.dumps(WEBHOOK_DELIVERY_POLICY, sort_keys=True),
            redrive_policy=redrive_to(dlq.arn),
            **filter_args(args.filter),
            opts=child,
        )
        self.subscription_arn = subscription.arn
        self.dlq_url, self.dlq_name = dlq.url, dlq.name
        self.register_outputs({"subscription_arn": self.subscription_arn, "dlq_url": self.dlq_url})
