"""The filter language, its two translations and their limits, and edw:workflows / edw:webhooks
validation: every refusal names the setting and the limit, before any resource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.routing import (
    FilterError,
    event_grid_filters,
    parse_filter,
    sns_combinations,
    sns_filter_policy,
)
from components.settings import Principal
from stacks.config import ConfigError, EdwConfig

AWS = {"aws:region": "us-east-1"}


def test_one_filter_becomes_a_nested_sns_policy_and_flat_event_grid_filters() -> None:
    parsed = parse_filter(
        {
            "type": ["com.example.order.created"],
            "data.customer.tier": ["Gold", "platinum"],
            "source": {"prefix": "u:"},
            "tenant": ["acme"],  # an extension attribute
            "data.qty": [5, 2.5],
        }
    )
    # Exact strings ignore case (as Event Grid's do), a prefix is written in each case of its
    # letters, numbers match numbers.
    assert sns_filter_policy(parsed) == {
        "type": [{"equals-ignore-case": "com.example.order.created"}],
        "data": {
            "customer": {
                "tier": [{"equals-ignore-case": "Gold"}, {"equals-ignore-case": "platinum"}]
            },
            "qty": [{"numeric": ["=", 5]}, {"numeric": ["=", 2.5]}],
        },
        "source": [{"prefix": "u:"}, {"prefix": "U:"}],
        "tenant": [{"equals-ignore-case": "acme"}],
    }
    assert event_grid_filters(parsed) == [
        {"key": "type", "operatorType": "StringIn", "values": ["com.example.order.created"]},
        {"key": "data.customer.tier", "operatorType": "StringIn", "values": ["Gold", "platinum"]},
        {"key": "source", "operatorType": "StringBeginsWith", "values": ["u:"]},
        {"key": "tenant", "operatorType": "StringIn", "values": ["acme"]},
        {"key": "data.qty", "operatorType": "NumberIn", "values": [5, 2.5]},
    ]
    assert parsed.data_paths == ("data.customer.tier", "data.qty")


def test_no_filter_matches_everything() -> None:
    assert parse_filter(None).matches_everything
    assert sns_filter_policy(parse_filter(None)) == {}


def many(n: int) -> list[str]:
    return [f"v{i}" for i in range(n)]


def test_sns_weighs_each_key_by_its_depth() -> None:
    """The issue's example: 3 x 5 x 3 values is 45 flat, but SNS counts (3x1)(5x2)(3x2) = 180
    in a MessageBody policy and refuses it; the guide's own example counts 72."""
    flat = parse_filter({"type": many(3), "source": many(5), "subject": many(3)})
    assert sns_combinations(flat) == 45
    guide = {"data.b.c": many(4), "data.e": many(3)}
    assert sns_combinations(parse_filter(guide)) == 3 * 4 * 2 * 3
    with pytest.raises(FilterError, match=r"180 combinations .*type 3x1, data.region 5x2"):
        parse_filter({"type": many(3), "data.region": many(5), "data.tier": many(3)})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {f"x{i}": ["a"] for i in range(6)},
            r"6 keys \(x0, x1, x2, x3, x4, x5\); an SNS filter policy allows at most 5",
        ),
        (
            {"type": many(6), "source": many(5), "subject": many(6)},
            "180 combinations .* at most 150",
        ),
        ({"type": many(26)}, r"26 values in all \(type 26\); Event Grid allows at most 25"),
        ({"type": ["x" * 513]}, "key 'type' has a value over 512 characters"),
        ({"type": ["Order", "order"]}, "key 'type' repeats a value .*ignoring case"),
        ({"data.q": [1, 1.0]}, "key 'data.q' repeats a value"),
        ({"id": ["a"]}, "'id' cannot be routed on"),
        ({"Type": ["a"]}, "neither a CloudEvents attribute"),
        ({"data.a": ["x"], "data.a.b": ["y"]}, "also the parent of"),
        ({"data.a b": ["x"]}, "data fields must be"),
        ({"data.$or": ["x"]}, r"key 'data.\$or': a field name starting with '\$'"),
        ({"data.a.$in": ["x"]}, "reads as an SNS filter operator"),
        ({"type": []}, "non-empty list of strings or of numbers"),
        ({"type": {"suffix": "x"}}, 'must be {"prefix"'),
        ({"type": [1]}, "key 'type' is a string on every CloudEvent"),
        ({"data.x": ["a", 1]}, "all non-empty strings or all numbers"),
        ({"data.x": [True]}, "booleans cannot be routed on"),
        ({"data.x": ["5"]}, "the string '5' reads as a JSON number"),
        ({"data.x": ["-1.5e3"]}, "reads as a JSON number"),
        ({"data.x": ["TRUE"]}, "reads as a JSON number, true, false or null"),
        ({"data.x": ["null"]}, "reads as a JSON number, true, false or null"),
        ({"data.x": {"prefix": "7"}}, "the prefix '7' could begin the text of a JSON number;"),
        ({"data.x": {"prefix": "-"}}, "could begin the text of a JSON number;"),
        ({"data.x": {"prefix": "-4x"}}, "could begin the text of a JSON number;"),
        ({"data.x": {"prefix": "+"}}, "could begin the text of a JSON number;"),
        ({"data.x": {"prefix": ".5"}}, "could begin the text of a JSON number;"),
        ({"data.x": {"prefix": "-.5"}}, "could begin the text of a JSON number;"),
        ({"data.x": {"prefix": "Fa"}}, "the prefix 'Fa' could begin the text of false;"),
        ({"data.x": {"prefix": "n"}}, "could begin the text of null;"),
        ({"data.x": {"prefix": "Öl"}}, r"letters outside ASCII \['Ö'\]"),
        ({"data.x": [1e9]}, "outside -1e9..1e9"),
        ({"data.x": [0.123456]}, "more than 5 decimals"),
        (
            {"type": {"prefix": "com.example.order."}},
            "32768 combinations .* ASCII case variants \\(type\\): list exact values instead",
        ),
        (["type"], "must be an object"),
    ],
)
def test_what_a_router_cannot_express_is_refused_naming_the_limit(raw: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(raw)


def test_strings_that_only_look_alike_are_still_strings() -> None:
    """Refused are the texts a number, boolean or null could be read as, nothing more."""
    ok = parse_filter({"data.x": ["v1", "1a", "nul", "falsey", "e5"], "source": {"prefix": "n1"}})
    assert len(ok.conditions) == 2
    # A sign or a point begins a number's text only before a digit (or alone).
    for prefix in (".net", "-x", "+a", "-_", ".Net"):
        assert parse_filter({"data.x": {"prefix": prefix}}).conditions[0].prefix == prefix


def parse(values: dict[str, Any], cloud: str = "aws") -> EdwConfig:
    raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    provider = AWS if cloud == "aws" else {"azure-native:location": "westeurope"}
    extra = {"apiAllowedCidrs": json.dumps(["198.51.100.0/24"])}
    return EdwConfig.parse({"cloud": cloud, **extra, **raw}, "s", provider)


def errors(values: dict[str, Any], cloud: str = "aws") -> str:
    with pytest.raises(ConfigError) as caught:
        parse(values, cloud)
    return str(caught.value)


def test_the_default_is_one_workflow_named_work_that_takes_every_event() -> None:
    (only,) = parse({}).workflows
    assert (only.name, only.filter.matches_everything) == ("work", True)
    assert parse({}).webhooks == ()


def test_a_workflow_overrides_only_its_own_consumer_and_queue_settings() -> None:
    cfg = parse(
        {
            "maxReplicas": 30,
            "workflows": [
                {"name": "work"},
                {"name": "orders", "maxReplicas": 5, "visibilityTimeoutSeconds": 300},
            ],
        }
    )
    work, orders = cfg.workflows
    assert (work.consumer.max_replicas, orders.consumer.max_replicas) == (30, 5)
    assert orders.queue.visibility_timeout_seconds == 300
    assert orders.queue.max_receive_count == work.queue.max_receive_count


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workflows": []}, "edw:workflows must list at least one workflow"),
        (
            {"workflows": [{"name": "a-b"}, {"name": "a-b"}]},
            r"edw:workflows\[1\] repeats the name 'a-b'",
        ),
        ({"workflows": [{"name": "Orders"}]}, r"edw:workflows\[0\].name must be 3-20 of a-z"),
        ({"workflows": [{"name": "or--ders"}]}, r"edw:workflows\[0\].name must be"),
        (
            {"workflows": [{"name": "orders", "image": "x"}]},
            r"edw:workflows\[0\] has unknown keys \['image'\]; allowed: name, filter, mode, "
            "capacity, schedule, handler, minReplicas",
        ),
        (
            {"workflows": [{"name": "orders", "shedule": "0 * * * *"}]},
            r"edw:workflows\[0\] has unknown keys \['shedule'\] \(did you mean schedule\?\); "
            "allowed: name",
        ),
        (
            {"webhooks": [{"name": "crm", "uri": "https://crm.example.com/hook"}]},
            r"edw:webhooks\[0\] has unknown keys \['uri'\] \(did you mean url\?\)",
        ),
        (
            {"workflows": [{"name": "orders", "maxReplicas": "5"}]},
            r"edw:workflows\[0\] \(orders\).maxReplicas must be an integer",
        ),
        (
            {"workflows": [{"name": "orders", "minReplicas": 9, "maxReplicas": 3}]},
            r"edw:workflows\[0\] \(orders\).maxReplicas must be >= edw:minReplicas \(9\)",
        ),
        (
            {"workflows": [{"name": "orders", "filter": {"type": many(26)}}]},
            r"edw:workflows\[0\] \(orders\).filter has 26 values in all \(type 26\); Event Grid "
            "allows at most 25",
        ),
        (
            {"workflows": [{"name": "work"}, {"name": "orders", "filter": {"data.$or": ["x"]}}]},
            r"edw:workflows\[1\] \(orders\).filter key 'data.\$or': a field name starting",
        ),
        (
            {
                "webhooks": [
                    {"name": "partner", "url": "https://p.example", "filter": {"data.x": ["5"]}}
                ]
            },
            r"edw:webhooks\[0\] \(partner\).filter key 'data.x': the string '5' reads as",
        ),
        ({"workflows": ["orders"]}, "edw:workflows must be a list of objects"),
        (
            {
                "webhooks": [
                    {"name": "partner", "url": "http://p.example", "filter": {"type": ["t"]}}
                ]
            },
            r"edw:webhooks\[0\].url must be an https:// URL",
        ),
        (
            {
                "webhooks": [
                    {"name": "partner", "url": "https://u:p@p.example", "filter": {"type": ["t"]}}
                ]
            },
            r"edw:webhooks\[0\].url must not carry credentials",
        ),
        (
            {"webhooks": [{"name": "partner", "url": "https://p.example"}]},
            r"edw:webhooks\[0\] \(partner\).filter is required",
        ),
        ({"routerPublishers": ["checkout"]}, "edw:routerPublishers must be IAM role or user ARNs"),
    ],
)
def test_bad_workflows_and_webhooks_are_refused_with_the_setting_named(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(values)


def test_azure_publishers_are_entra_principals_with_their_type() -> None:
    """A role assignment must say the principal's type (the SDK sends User otherwise, which
    ARM refuses for an app, a managed identity or a group): a bare object id is refused."""
    for bad in ("arn:aws:iam::123456789012:role/x", "11111111-2222-4333-8444-555555555555"):
        message = errors({"routerPublishers": [bad]}, "azure")
        assert "edw:routerPublishers must list Entra principals as <type>:<object id>" in message
    ok = parse({"routerPublishers": ["Group:11111111-2222-4333-8444-555555555555"]}, "azure")
    assert ok.azure is not None
    assert ok.azure.router_publishers == (
        Principal("Group", "11111111-2222-4333-8444-555555555555"),
    )


def test_a_refused_webhook_filter_is_reported_once_with_its_reason() -> None:
    hook = {"name": "partner", "url": "https://p.example", "filter": {"data.x": [True]}}
    message = errors({"webhooks": [hook]})
    assert "booleans cannot be routed on" in message
    assert "is required" not in message
