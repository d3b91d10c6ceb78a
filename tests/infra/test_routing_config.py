"""The filter language, its two translations and their limits, and edw:workflows / edw:webhooks
validation: every refusal names the setting and the limit, before any resource."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.routing import FilterError, event_grid_filters, parse_filter, sns_filter_policy
from stacks.config import ConfigError, EdwConfig

AWS = {"aws:region": "us-east-1"}


def test_one_filter_becomes_a_nested_sns_policy_and_flat_event_grid_filters() -> None:
    parsed = parse_filter(
        {
            "type": ["com.example.order.created"],
            "data.customer.tier": ["gold", "platinum"],
            "source": {"prefix": "urn:shop:"},
            "tenant": ["acme"],  # an extension attribute
        }
    )
    assert sns_filter_policy(parsed) == {
        "type": ["com.example.order.created"],
        "data": {"customer": {"tier": ["gold", "platinum"]}},
        "source": [{"prefix": "urn:shop:"}],
        "tenant": ["acme"],
    }
    assert event_grid_filters(parsed) == [
        {"key": "type", "operatorType": "StringIn", "values": ["com.example.order.created"]},
        {"key": "data.customer.tier", "operatorType": "StringIn", "values": ["gold", "platinum"]},
        {"key": "source", "operatorType": "StringBeginsWith", "values": ["urn:shop:"]},
        {"key": "tenant", "operatorType": "StringIn", "values": ["acme"]},
    ]


def test_no_filter_matches_everything() -> None:
    assert parse_filter(None).matches_everything
    assert sns_filter_policy(parse_filter(None)) == {}


def many(n: int) -> list[str]:
    return [f"v{i}" for i in range(n)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({f"x{i}": ["a"] for i in range(6)}, "6 keys; an SNS filter policy allows at most 5"),
        (
            {"type": many(6), "source": many(5), "subject": many(6)},
            "180 combinations .* at most 150",
        ),
        ({"type": many(26)}, "26 values in all; Event Grid allows at most 25"),
        ({"type": ["x" * 513]}, "over 512 characters, the Event Grid limit"),
        ({"type": ["Order", "order"]}, "differ only in case"),
        ({"id": ["a"]}, "'id' cannot be routed on"),
        ({"Type": ["a"]}, "neither a CloudEvents attribute"),
        ({"data.a": ["x"], "data.a.b": ["y"]}, "also the parent of"),
        ({"data.a b": ["x"]}, "data fields must be"),
        ({"type": []}, "non-empty list of strings"),
        ({"type": {"suffix": "x"}}, 'must be {"prefix"'),
        ({"type": [1]}, "values must be non-empty strings"),
        (["type"], "must be an object"),
    ],
)
def test_what_a_router_cannot_express_is_refused_naming_the_limit(raw: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(raw)


def parse(values: dict[str, Any], cloud: str = "aws") -> EdwConfig:
    raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    provider = AWS if cloud == "aws" else {"azure-native:location": "westeurope"}
    extra = {} if cloud == "aws" else {"adminGroupObjectIds": json.dumps(["g"])}
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
            "capacity, schedule, minReplicas",
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
            r"edw:workflows\[0\].filter has 26 values in all; Event Grid allows at most 25",
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
            r"edw:webhooks\[0\].filter is required",
        ),
        ({"routerPublishers": ["checkout"]}, "edw:routerPublishers must be IAM role or user ARNs"),
    ],
)
def test_bad_workflows_and_webhooks_are_refused_with_the_setting_named(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(values)


def test_azure_publishers_are_entra_object_ids() -> None:
    message = errors({"routerPublishers": ["arn:aws:iam::123456789012:role/x"]}, "azure")
    assert "edw:routerPublishers must be Entra object ids (GUIDs) on azure" in message
    ok = parse({"routerPublishers": ["11111111-2222-4333-8444-555555555555"]}, "azure")
    assert ok.router_publishers == ("11111111-2222-4333-8444-555555555555",)
