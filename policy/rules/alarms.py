"""Alarms: every queue failure mode watched, every alarm reaching someone (AWS; the Azure alerts
join these rules when the Azure stack has them).

An alarm is tied to its queue by dependency (its dimensions are built from the queue's name),
never by the name itself, which is unknown before the first deploy of an auto-named queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .aws import QUEUE_ROLES
from .common import (
    Config,
    Node,
    StackCheck,
    StackFinding,
    Subject,
    as_list,
    dig,
    each,
    has_items,
    of_kind,
    resource_rule,
    stack_rule,
)
from .stack import dead_letter_queues, work_queues

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
AZURE_METRIC_ALERT = "azure-native:monitor:MetricAlert"
SNS_TOPIC = "aws:sns/topic:Topic"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
DEPTH = "ApproximateNumberOfMessagesVisible"
AGE = "ApproximateAgeOfOldestMessage"
FAILED = "NumberOfNotificationsFailed"


def _alarmed_on(
    metric: str, queues: Callable[[list[Node], Config], list[Node]], what: str, unnoticed: str
) -> StackCheck:
    """A check that each queue ``queues`` selects has an alarm on ``metric`` built from it."""

    def check(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
        alarms = of_kind(nodes, METRIC_ALARM)

        def alarmed(queue: Node) -> Iterator[StackFinding]:
            if not any(
                a.depends_on(queue) and a.subject.props.get("metricName") == metric for a in alarms
            ):
                yield (
                    f"{what} {queue.subject.label!r} has no alarm on {metric}: {unnoticed} "
                    "would go unnoticed",
                    queue.subject.urn,
                )

        yield from each(queues(nodes, config), alarmed)

    return check


def routers(nodes: list[Node], _config: Config) -> list[Node]:
    """Topics that deliver events: a queue or HTTPS subscription depends on them (an alert
    topic's e-mail subscribers do not make it one)."""
    delivering = [
        s
        for s in of_kind(nodes, SNS_SUBSCRIPTION)
        if s.subject.props.get("protocol") in ("sqs", "http", "https")
    ]
    return [t for t in of_kind(nodes, SNS_TOPIC) if any(s.depends_on(t) for s in delivering)]


def _has_action(alarm: Subject, _config: Config) -> Iterator[str]:
    if not has_items(alarm.props.get("alarmActions")):
        yield f"alarm {alarm.label!r} has no alarm action: it would notify nobody"
    if not has_items(alarm.props.get("okActions")):
        yield f"alarm {alarm.label!r} has no OK action: nobody would hear that it recovered"


STORAGE_QUEUE = "azure-native:storage:Queue"
# What the Azure stack's per-queue metrics are called (app.queue_metrics).
QUEUE_METRICS = {"poison": "QueueDepth", "work": "OldestMessageAgeSeconds"}


def _watched_queues(nodes: list[Node], metric: str) -> set[str]:
    """Queue names an Azure metric alert on ``metric`` includes in its Queue dimension."""
    names: set[str] = set()
    for alert in of_kind(nodes, AZURE_METRIC_ALERT):
        for criterion in as_list(dig(alert.subject.props, "criteria", "allOf")):
            if dig(criterion, "metricName") == metric:
                for dimension in as_list(dig(criterion, "dimensions")):
                    if dig(dimension, "name") == "Queue":
                        names.update(as_list(dig(dimension, "values")))
    return names


def _azure_queues_alerted(nodes: list[Node], _config: Config) -> Iterator[StackFinding]:
    """Storage has no per-queue metric: the stack sends its own; each queue must be in an
    alert on it (poison queues on their depth, work queues on their oldest age)."""

    def alerted(queue: Node) -> Iterator[StackFinding]:
        role = dig(queue.subject.props, "metadata", "edw_role")
        metric = QUEUE_METRICS.get(str(role))
        name = queue.subject.props.get("queueName")
        if metric and name not in _watched_queues(nodes, metric):
            yield (
                f"{role} queue {name!r} is in no alert on {metric}: what lands there would go "
                "unnoticed",
                queue.subject.urn,
            )

    yield from each(of_kind(nodes, STORAGE_QUEUE), alerted)


def _azure_alert_notifies(alert: Subject, _config: Config) -> Iterator[str]:
    if not has_items(alert.props.get("actions")):
        yield f"alert {alert.label!r} has no action group: it would notify nobody"
    if alert.props.get("autoMitigate") is not True:
        yield (
            f"alert {alert.label!r} does not auto-mitigate: it would never resolve by itself, "
            "and nobody would hear that it recovered"
        )


POLICIES = [
    stack_rule(
        "dead-letter-queue-alarmed",
        f"Every dead-letter queue must have a CloudWatch alarm on {DEPTH} built from it.",
        _alarmed_on(DEPTH, dead_letter_queues, "dead-letter queue", "messages set aside there"),
        config=QUEUE_ROLES,
    ),
    stack_rule(
        "work-queue-age-alarmed",
        f"Every work queue must have a CloudWatch alarm on {AGE} built from it.",
        _alarmed_on(AGE, work_queues, "work queue", "a backlog that stops draining"),
        config=QUEUE_ROLES,
    ),
    stack_rule(
        "router-delivery-failures-alarmed",
        f"Every SNS topic that delivers to queues or partners must have an alarm on {FAILED} "
        "built from it.",
        _alarmed_on(FAILED, routers, "router topic", "deliveries SNS gave up on"),
    ),
    stack_rule(
        "azure-queues-alerted",
        "Every Azure poison queue must be in an alert on its depth and every work queue in one "
        "on its oldest message's age (the stack's per-queue custom metrics).",
        _azure_queues_alerted,
    ),
    resource_rule(
        "azure-alert-has-actions",
        "Every Azure Monitor metric alert must notify an action group and resolve by itself "
        "(auto-mitigate), so recoveries are heard too.",
        [AZURE_METRIC_ALERT],
        _azure_alert_notifies,
    ),
    resource_rule(
        "alarm-has-actions",
        "Every CloudWatch alarm must notify someone when it fires and when it recovers.",
        [METRIC_ALARM],
        _has_action,
    ),
]
