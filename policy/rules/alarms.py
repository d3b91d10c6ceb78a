"""Alarms: every queue failure mode watched, every alarm reaching someone (AWS; the Azure alerts
join these rules when the Azure stack has them).

An alarm is tied to its queue by dependency (its dimensions are built from the queue's name),
never by the name itself, which is unknown before the first deploy of an auto-named queue.
"""

from __future__ import annotations

from collections.abc import Iterator

from .aws import QUEUE_ROLES
from .common import Config, Node, StackFinding, Subject, as_list, known, of_kind, resource_rule
from .common import stack_rule as rule
from .stack import dead_letter_queues, work_queues

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DEPTH = "ApproximateNumberOfMessagesVisible"
AGE = "ApproximateAgeOfOldestMessage"


def _watched(queue: Node, nodes: list[Node], metric: str) -> bool:
    return any(
        a.depends_on(queue) and known(a.subject.props, "metricName") == metric
        for a in of_kind(nodes, METRIC_ALARM)
    )


def _dead_letters_alarmed(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    for queue in dead_letter_queues(nodes, config):
        if not _watched(queue, nodes, DEPTH):
            yield (
                f"dead-letter queue {queue.subject.label!r} has no alarm on {DEPTH}: messages "
                "set aside there would go unnoticed",
                queue.subject.urn,
            )


def _backlog_age_alarmed(nodes: list[Node], config: Config) -> Iterator[StackFinding]:
    for queue in work_queues(nodes, config):
        if not _watched(queue, nodes, AGE):
            yield (
                f"work queue {queue.subject.label!r} has no alarm on {AGE}: a backlog that stops "
                "draining would go unnoticed",
                queue.subject.urn,
            )


def _has_action(alarm: Subject, _config: Config) -> Iterator[str]:
    if not as_list(alarm.props.get("alarmActions")):
        yield f"alarm {alarm.label!r} has no alarm action: it would notify nobody"
    if not as_list(alarm.props.get("okActions")):
        yield f"alarm {alarm.label!r} has no OK action: nobody would hear that it recovered"


POLICIES = [
    rule(
        "dead-letter-queue-alarmed",
        f"Every dead-letter queue must have a CloudWatch alarm on {DEPTH} built from it.",
        _dead_letters_alarmed,
        config=QUEUE_ROLES,
    ),
    rule(
        "work-queue-age-alarmed",
        f"Every work queue must have a CloudWatch alarm on {AGE} built from it.",
        _backlog_age_alarmed,
        config=QUEUE_ROLES,
    ),
    resource_rule(
        "alarm-has-actions",
        "Every CloudWatch alarm must notify someone when it fires and when it recovers.",
        [METRIC_ALARM],
        _has_action,
    ),
]
