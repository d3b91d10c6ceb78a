"""Alarms that reach a person (AWS): the alert topic, its subscribers and key, and each alarm's
metric, dimensions (this stack's own queue and table names), threshold and actions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from stacks.config import ConfigError, EdwConfig
from stacks.offline import ACCOUNT, RecordedResource, StackRun, run_stack

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EMAILS = ["oncall@example.com", "platform@example.org"]


def alarms(run: StackRun) -> dict[str, dict[str, Any]]:
    return {a.name: a.inputs for a in run.of_type(ALARM)}


def queue(run: StackRun, name: str) -> RecordedResource:
    return run.one("aws:sqs/queue:Queue", name)


def test_every_alarm_pages_the_alert_topic_on_the_way_in_and_out(aws_run: StackRun) -> None:
    topic = aws_run.one("aws:sns/topic:Topic", "alerts-topic")
    found = alarms(aws_run)
    assert set(found) == {
        "work-alarms-dead-letters",
        "work-alarms-backlog-age",
        "router-alarms-failed-deliveries",
        "results-alarms-write-throttles",
        "results-alarms-system-errors-putitem",
        "results-alarms-system-errors-batchwriteitem",
    }
    for inputs in found.values():
        assert inputs["alarmActions"] == inputs["okActions"] == [topic.outputs["arn"]]
        assert inputs["treatMissingData"] == "notBreaching"
    assert aws_run.outputs["alertTopicArn"] == topic.outputs["arn"]


def test_queue_alarms_watch_this_stacks_queues(aws_run: StackRun) -> None:
    found = alarms(aws_run)
    dead = found["work-alarms-dead-letters"]
    assert (dead["namespace"], dead["metricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert dead["dimensions"] == {"QueueName": queue(aws_run, "work-dlq").outputs["name"]}
    assert (dead["statistic"], dead["threshold"], dead["comparisonOperator"]) == (
        "Maximum",
        0,
        "GreaterThanThreshold",
    )
    age = found["work-alarms-backlog-age"]
    assert age["metricName"] == "ApproximateAgeOfOldestMessage"
    assert age["dimensions"] == {"QueueName": queue(aws_run, "work-queue").outputs["name"]}
    assert (age["threshold"], age["period"], age["evaluationPeriods"]) == (900, 60, 3)


def test_the_age_threshold_comes_from_the_config() -> None:
    age = alarms(run_stack("aws", {"maxMessageAgeSeconds": "300"}))["work-alarms-backlog-age"]
    assert age["threshold"] == 300


def test_table_alarms_watch_the_consumers_writes_on_this_table(aws_run: StackRun) -> None:
    table = aws_run.one("aws:dynamodb/table:Table").outputs["name"]
    found = alarms(aws_run)
    assert found["results-alarms-write-throttles"]["dimensions"] == {"TableName": table}
    assert found["results-alarms-write-throttles"]["metricName"] == "WriteThrottleEvents"
    granted = set()
    for op in ("PutItem", "BatchWriteItem"):
        errors = found[f"results-alarms-system-errors-{op.lower()}"]
        assert errors["metricName"] == "SystemErrors"
        assert errors["dimensions"] == {"TableName": table, "Operation": op}
        granted.add(f"dynamodb:{op}")
    role = aws_run.one("aws:iam/role:Role", "consumer-identity-role")
    [policy] = [
        p
        for p in aws_run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == role.outputs["name"]
    ]
    writes = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}["WriteResults"]
    assert set(writes["Action"]) == granted  # the alarms watch exactly what the consumer calls


def test_a_recovery_stack_watches_the_replicated_table() -> None:
    run = run_stack("aws", {"existingResultsTable": "results-table-abc"})
    assert alarms(run)["results-alarms-write-throttles"]["dimensions"] == {
        "TableName": "results-table-abc"
    }


def test_a_global_table_alarms_on_replication_lag_to_each_receiving_region() -> None:
    run = run_stack("aws", {"replicaRegions": json.dumps(["us-west-2", "eu-west-1"])})
    table = run.one("aws:dynamodb/table:Table").outputs["name"]
    found = alarms(run)
    for region in ("us-west-2", "eu-west-1"):
        lag = found[f"results-alarms-replication-lag-{region}"]
        assert (lag["namespace"], lag["metricName"]) == ("AWS/DynamoDB", "ReplicationLatency")
        assert lag["dimensions"] == {"TableName": table, "ReceivingRegion": region}
        assert (lag["statistic"], lag["threshold"]) == ("Average", 60_000)  # milliseconds
        assert (lag["period"], lag["evaluationPeriods"]) == (60, 5)
    assert not [a for a in alarms(run_stack("aws")) if "replication-lag" in a]


def test_each_address_gets_a_subscription_named_by_the_address() -> None:
    run = run_stack("aws", {"alertEmails": json.dumps(EMAILS)})
    topic = run.one("aws:sns/topic:Topic", "alerts-topic").outputs["arn"]
    subs = {
        s.name: s.inputs
        for s in run.of_type("aws:sns/topicSubscription:TopicSubscription")
        if s.inputs["topic"] == topic
    }
    expected = {
        f"alerts-email-{hashlib.sha256(e.encode()).hexdigest()[:8]}": e for e in EMAILS
    }  # fmt: skip
    assert {n: s["endpoint"] for n, s in subs.items()} == expected
    assert all(s["protocol"] == "email" and s["topic"] == topic for s in subs.values())
    reordered = run_stack("aws", {"alertEmails": json.dumps(EMAILS[::-1])})
    names = {
        s.name
        for s in reordered.of_type("aws:sns/topicSubscription:TopicSubscription")
        if s.inputs["protocol"] == "email"
    }
    assert names == set(subs)


def test_the_topic_is_encrypted_tls_only_and_published_to_by_this_accounts_alarms(
    aws_run: StackRun,
) -> None:
    key = aws_run.one("aws:kms/key:Key", "alerts-key")
    topic = aws_run.one("aws:sns/topic:Topic", "alerts-topic")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    key_policy = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    cloudwatch = key_policy["CloudWatchAlarmsPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert key.inputs["enableKeyRotation"] is True
    policy = aws_run.one("aws:sns/topicPolicy:TopicPolicy", "alerts-policy")
    assert policy.inputs["arn"] == topic.outputs["arn"]
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    tls = statements["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Action"]) == ("Deny", "sns:*")
    publish = statements["ThisAccountsAlarmsPublish"]
    assert publish["Resource"] == [topic.outputs["arn"]]
    assert publish["Condition"]["ArnLike"] == {
        "aws:SourceArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:*"
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"alertEmails": '["oncall"]'},
            "edw:alertEmails has addresses that are not name@domain.tld: ['oncall']",
        ),
        ({"maxMessageAgeSeconds": "10"}, "edw:maxMessageAgeSeconds must be between 60 and"),
        (
            {"maxMessageAgeSeconds": "7200", "messageRetentionSeconds": "3600"},
            "edw:maxMessageAgeSeconds must be below edw:messageRetentionSeconds (3600)",
        ),
        (
            {"cloud": "azure", "maxMessageAgeSeconds": "700000", "disableLocalAccounts": "false"},
            "edw:maxMessageAgeSeconds must be below a Storage queue message's 7-day lifetime",
        ),
    ],
)
def test_alert_settings_are_checked(values: dict[str, str], expected: str) -> None:
    provider = (
        {"azure-native:location": "westeurope"}
        if values.get("cloud") == "azure"
        else {"aws:region": "us-east-1"}
    )
    with pytest.raises(ConfigError) as info:
        EdwConfig.parse({"cloud": "aws", **values}, stack="t", provider_values=provider)
    assert expected in str(info.value)


def test_the_router_alarms_on_failed_deliveries_of_its_own_topic(aws_run: StackRun) -> None:
    router = aws_run.one("aws:sns/topic:Topic", "router-topic")
    failed = alarms(aws_run)["router-alarms-failed-deliveries"]
    assert (failed["namespace"], failed["metricName"]) == ("AWS/SNS", "NumberOfNotificationsFailed")
    assert failed["dimensions"] == {"TopicName": router.outputs["name"]}
    assert (failed["statistic"], failed["threshold"]) == ("Sum", 0)
    assert failed["comparisonOperator"] == "GreaterThanThreshold"


def test_the_dashboard_shows_each_workflow_the_router_and_the_table() -> None:
    run = run_stack("aws", {"workflows": json.dumps([{"name": "work"}, {"name": "orders"}])})
    names = {q.name: q.outputs["name"] for q in run.of_type("aws:sqs/queue:Queue")}
    dashboard = run.one("aws:cloudwatch/dashboard:Dashboard")
    assert dashboard.inputs["dashboardName"] == "edw-aws"
    widgets = {
        w["properties"]["title"]: w["properties"]
        for w in json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    }
    for workflow in ("work", "orders"):
        depth = widgets[f"{workflow}: depth, in flight, dead letters"]["metrics"]
        assert depth == [
            [
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                names[f"{workflow}-queue"],
            ],
            [
                "AWS/SQS",
                "ApproximateNumberOfMessagesNotVisible",
                "QueueName",
                names[f"{workflow}-queue"],
            ],
            [
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                names[f"{workflow}-dlq"],
            ],
        ]
        age = widgets[f"{workflow}: oldest message (s)"]["metrics"]
        assert age == [
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", names[f"{workflow}-queue"]]
        ]
    topic = run.one("aws:sns/topic:Topic", "router-topic").outputs["name"]
    router = widgets["router: published, delivered, failed"]["metrics"]
    assert {m[1] for m in router} == {
        "NumberOfMessagesPublished", "NumberOfNotificationsDelivered", "NumberOfNotificationsFailed"
    }  # fmt: skip
    assert {m[3] for m in router} == {topic}
    table = run.one("aws:dynamodb/table:Table").outputs["name"]
    assert {m[3] for m in widgets["results table: writes and throttles"]["metrics"]} == {table}
    assert run.outputs["dashboardUrl"] == (
        "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/edw-aws"
    )
