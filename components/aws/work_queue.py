"""The SQS work queue and its dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_aws import sqs

from components.aws.iam import Statement, allow, deny_insecure_transport, document
from components.settings import QueueSettings

DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the SQS maximum: time to inspect and redrive
# SQS counts message attributes toward a message's size (MessageAttributeValue, SQS API
# reference), and a dead letter is the body plus the consumer's reason attribute
# (app.aws.DEAD_LETTER_RESERVE_BYTES at most). The work queue keeps 256 KiB, the provider's
# default so far (pulumi-aws 7.51.1 `max_message_size`: "The default for this attribute is
# 262144") and what SNS delivers at most; the DLQ takes the SQS maximum (1 MiB, the same
# docstring's upper bound), so any message the work queue took fits the DLQ with its reason.
WORK_QUEUE_MAX_MESSAGE_BYTES = 262_144
DLQ_MAX_MESSAGE_BYTES = 1_048_576
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class SqsWorkQueueArgs:
    settings: QueueSettings
    tags: Mapping[str, str]
    # The router topic that delivers to the queue, and dead-letters what it cannot deliver.
    router_topic_arn: pulumi.Input[str] | None = None


class SqsWorkQueue(pulumi.ComponentResource):
    """Standard queue with redrive to a DLQ, SSE, long polling and a TLS-only policy."""

    queue_url: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    dlq_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: SqsWorkQueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("edw:aws:SqsWorkQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        dlq = dead_letter_queue(f"{name}-dlq", args.tags, child)
        queue = sqs.Queue(
            f"{name}-queue",
            visibility_timeout_seconds=s.visibility_timeout_seconds,
            message_retention_seconds=s.message_retention_seconds,
            receive_wait_time_seconds=LONG_POLL_SECONDS,
            max_message_size=WORK_QUEUE_MAX_MESSAGE_BYTES,
            sqs_managed_sse_enabled=True,
            redrive_policy=dlq.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": s.max_receive_count}
                )
            ),
            tags={**args.tags, "edw/role": "work"},
            opts=child,
        )
        # Only our work queue may dead-letter into this DLQ.
        sqs.RedriveAllowPolicy(
            f"{name}-dlq-redrive-allow",
            queue_url=dlq.url,
            redrive_allow_policy=queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=child,
        )
        topic = args.router_topic_arn
        for label, q in (("queue", queue), ("dlq", dlq)):
            # The name predates the router statement; renaming would replace the policy, and
            # deleting the old one after creating the new would leave the queue with none.
            sqs.QueuePolicy(
                f"{name}-{label}-tls-only",
                queue_url=q.url,
                policy=document(
                    [
                        deny_insecure_transport(q.arn),
                        *([router_sends(q.arn, topic)] if topic else []),
                    ]
                ),
                opts=child,
            )
        self.queue_url, self.queue_arn = queue.url, queue.arn
        self.dlq_url, self.dlq_arn = dlq.url, dlq.arn
        self.queue_name, self.dlq_name = queue.name, dlq.name
        self.register_outputs(
            {
                "queue_url": self.queue_url,
                "queue_arn": self.queue_arn,
                "dlq_url": self.dlq_url,
                "dlq_arn": self.dlq_arn,
            }
        )


def router_sends(queue_arn: pulumi.Input[str], topic_arn: pulumi.Input[str]) -> Statement:
    """SNS may send to the queue on behalf of exactly one topic (the confused-deputy guard)."""
    return allow(
        ["sqs:SendMessage"],
        [queue_arn],
        "RouterTopicDelivers",
        Principal={"Service": "sns.amazonaws.com"},
        Condition={"ArnEquals": {"aws:SourceArn": topic_arn}},
    )


def dead_letter_queue(
    name: str, tags: Mapping[str, str], opts: pulumi.ResourceOptions
) -> sqs.Queue:
    """A DLQ: kept the SQS maximum (time to inspect and redrive), encrypted, long-polled."""
    return sqs.Queue(
        name,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        max_message_size=DLQ_MAX_MESSAGE_BYTES,
        sqs_managed_sse_enabled=True,
        receive_wait_time_seconds=LONG_POLL_SECONDS,
        tags={**tags, "edw/role": "dead-letter"},
        opts=opts,
    )
