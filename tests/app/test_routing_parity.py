"""Routing parity: one filter routes the same events on AWS and on Azure, and every filter the
config accepts deploys.

The matrix (tests/routing_parity.py: filters x events) is decided by moto's SNS, with real
subscriptions carrying the policies the stack deploys (leaf comparisons corrected to the SNS docs
where moto raises: tests/app/sns_leaves.py), and by an evaluator of Event Grid's documented rules
applied to the filter components/azure/router.py renders (tests/event_grid_filtering.py). One moto
server for the module; every event goes out in PublishBatch calls.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from bench.emulators import AWS_TEST_ENV, MotoEmulator
from components.routing import (
    SNS_MAX_COMBINATIONS,
    EventFilter,
    FilterError,
    _sns_values,
    matches,
    parse_filter,
    sns_combinations,
    sns_filter_policy,
)
from tests.app.sns_leaves import faithful_leaves
from tests.event_grid_filtering import outcomes
from tests.routing_parity import (
    EVENTS,
    FILTERS,
    REFUSED,
    Cell,
    doc_table,
    grid,
    refusals,
    rendered_event_grid_filter,
    sns_deliveries,
    table,
)

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoEmulator]:
    with MotoEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def cells(moto: MotoEmulator) -> dict[tuple[str, str], Cell]:
    with faithful_leaves():
        delivered = sns_deliveries(moto)
    return grid(delivered)


def sns_client(moto: MotoEmulator) -> Any:
    """No retries: a 500 from moto is an answer here, not a hiccup."""
    return boto3.client(
        "sns",
        endpoint_url=moto.endpoint,
        region_name=AWS_TEST_ENV["AWS_REGION"],
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )


def test_every_pair_the_config_accepts_is_routed_alike_on_both_clouds(
    cells: dict[tuple[str, str], Cell],
) -> None:
    verdicts = {key: cell.verdict for key, cell in cells.items()}
    assert [key for key, v in verdicts.items() if v == "DISAGREE"] == []
    assert len(cells) == len(FILTERS) * len(EVENTS)
    # The two exceptions are confined to their event shapes, and each really is one: SNS
    # delivers through the array of objects, Event Grid cannot (the consumer counts it).
    by_event = {e.name: e.shape for e in EVENTS}
    aws_only = {key for key, v in verdicts.items() if v == "AWS only"}
    assert aws_only == {("nested", "a path through an array of objects")} | {
        ("keys", "a path through an array of objects")
    }
    unspecified = {key for key, v in verdicts.items() if v == "unspecified"}
    assert unspecified
    assert {by_event[event] for _, event in unspecified} == {"key-case", "mixed-array"}
    # A mixed array is unspecified only where a filter looks at it: the type filter is not.
    assert cells["exact", "arrays of mixed types"].verdict == "yes"
    # Both sides deliver something and hold something back: the matrix is not vacuous.
    assert set(verdicts.values()) >= {"yes", "no"}


def test_each_filter_kind_delivers_on_both_clouds_what_it_names(
    cells: dict[tuple[str, str], Cell],
) -> None:
    """A few cells worked out by hand, so the matrix cannot agree on nothing."""
    expected = {
        ("values", "other case"): "yes",  # EU vs eu: equals-ignore-case / StringIn
        ("prefix", "other case"): "yes",  # URN:Shop: vs urn:shop:: case variants / BeginsWith
        ("values", "arrays"): "yes",  # ["fr", "eu"]: any element, arrays on for Event Grid
        ("numbers", "arrays"): "yes",
        ("numbers", "decimals"): "yes",  # 7.0 is 7
        ("numbers", "numbers as text, text as numbers"): "no",  # "5" is no number
        ("values", "numbers as text, text as numbers"): "no",
        ("extension", "numbers as text, text as numbers"): "no",  # priority "1" vs [1]
        ("values", "nulls"): "no",
        ("nested", "objects where values are expected"): "no",
        ("extension", "binary data (data_base64)"): "yes",
        ("values", "binary data (data_base64)"): "no",
        ("webhook", "arrays of mixed types"): "unspecified",  # [1, "ab-4"]: not same-typed
        ("keys", "no type match"): "no",
        ("exact", "near misses"): "no",
    }
    assert {key: cells[key].verdict for key in expected} == expected


def test_event_grid_leaves_an_array_of_mixed_types_open() -> None:
    """Only "Array of the same types" ("Understand event filtering", Key): a mixed array may go
    either way; a same-typed one is decided."""
    rendered = rendered_event_grid_filter(parse_filter({"data.region": ["eu"]}))

    def decide(region: Any) -> frozenset[bool]:
        return outcomes(rendered, {"data": {"region": region}})

    assert decide([5, "eu"]) == {True, False}
    assert decide(["x", True]) == {True, False}
    assert decide(["x", None]) == {True, False}
    assert decide(["fr", "eu"]) == {True}
    assert decide(["fr", "de"]) == {False}
    assert decide([1, 2.5]) == {False}


def test_the_docs_show_the_matrix_as_the_suite_found_it(
    cells: dict[tuple[str, str], Cell],
) -> None:
    assert doc_table() == table(cells), "refresh it: python -m tests.routing_parity"


def test_every_refused_filter_names_its_key_and_the_reason() -> None:
    for raw, why in refusals():
        assert why, f"{raw} is accepted"
        keys = [k for k in raw if repr(k) in why or f"{k} " in why]
        assert keys, f"{why!r} names none of {list(raw)}"
    assert len(refusals()) == len(REFUSED)


def random_filter(rng: random.Random) -> dict[str, Any]:
    """Up to five keys at depths 1-4, each with strings, numbers or a short prefix."""
    keys = ["type", "source", "tenant", "priority", "data.a", "data.b.c", "data.d.e.f", "data.g"]
    raw: dict[str, Any] = {}
    for key in rng.sample(keys, rng.randint(1, 5)):
        kind = rng.choice(["strings", "numbers", "prefix"])
        if kind == "numbers" and key not in ("type", "source"):
            raw[key] = rng.sample(range(-50, 50), rng.randint(1, 8))
        elif kind == "prefix":
            raw[key] = {"prefix": "".join(rng.choices("abc", k=rng.randint(1, 4))) + ":"}
        else:
            raw[key] = [f"v{i}-{rng.randint(0, 9)}" for i in range(rng.randint(1, 8))]
    return raw


def test_seeded_random_filters_the_config_accepts_deploy_and_sns_counts_their_complexity_alike(
    moto: MotoEmulator,
) -> None:
    """SNS (moto) refuses a policy as "too complex" exactly when our count passes 150, and
    accepts every filter the config accepts."""
    rng = random.Random(25)
    sns, sqs = sns_client(moto), moto.client("sqs")
    topic = sns.create_topic(Name="random-filters")["TopicArn"]
    queue = sqs.create_queue(QueueName="random-filters")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    subscription = sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["QueueArn"],
        Attributes={"FilterPolicyScope": "MessageBody"},
    )["SubscriptionArn"]
    seen = {"accepted": 0, "too complex": 0}
    for _ in range(300):
        raw = random_filter(rng)
        # Each key on its own is valid; the policy is built without our limits to ask SNS.
        event_filter = EventFilter(
            tuple(parse_filter({k: v}).conditions[0] for k, v in raw.items())
        )
        policy: dict[str, Any] = {}
        for c in event_filter.conditions:
            node = policy
            for part in c.path[:-1]:
                node = node.setdefault(part, {})
            node[c.path[-1]] = _sns_values(c)
        try:
            sns.set_subscription_attributes(
                SubscriptionArn=subscription,
                AttributeName="FilterPolicy",
                AttributeValue=json.dumps(policy),
            )
            refused = ""
        except ClientError as exc:
            refused = exc.response["Error"]["Message"]
        ours = sns_combinations(event_filter)
        assert ("too complex" in refused) == (ours > SNS_MAX_COMBINATIONS), (raw, ours, refused)
        try:
            accepted = sns_filter_policy(parse_filter(raw))
        except FilterError:
            continue
        assert accepted == policy
        assert refused == "", (raw, refused)
        seen["accepted"] += 1
    seen["too complex"] = 300 - seen["accepted"]
    # The seed exercises both sides of the limit.
    assert min(seen.values()) > 20, seen


def test_moto_leaf_defects_the_suite_corrects_are_still_there(moto: MotoEmulator) -> None:
    """When this fails, moto decides these leaves itself: drop tests/app/sns_leaves.py."""
    sns, sqs = sns_client(moto), moto.client("sqs")

    def route(name: str, policy: dict[str, Any]) -> Any:
        """A topic with one filtered subscription; publish(body) says if it was delivered."""
        topic = sns.create_topic(Name=f"moto-{name}")["TopicArn"]
        url = sqs.create_queue(QueueName=f"moto-{name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn["QueueArn"],
            Attributes={
                "FilterPolicy": json.dumps(policy),
                "FilterPolicyScope": "MessageBody",
                "RawMessageDelivery": "true",
            },
        )

        def publish(body: dict[str, Any]) -> bool:
            sns.publish(TopicArn=topic, Message=json.dumps(body))
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return bool(got)

        return publish

    folded = route("folded", {"r": [{"equals-ignore-case": "EU"}]})
    assert not folded({"r": "EU"})  # the rule's own case is not folded
    with pytest.raises(ResponseParserError):  # HTTP 500: str.lower() on a number
        folded({"r": 5})
    prefixed = route("prefixed", {"r": [{"prefix": "e"}]})
    with pytest.raises(ResponseParserError):  # HTTP 500: str.startswith() on a number
        prefixed({"r": 5})
    numeric = route("numeric", {"r": [{"numeric": ["=", 5]}]})
    assert numeric({"r": 5})
    assert not numeric({"r": [5, 6]})  # no element of an array


def test_the_language_matches_as_both_clouds_agree() -> None:
    """components.routing.matches, used by the config (a schedule's own event), ignores case,
    types numbers and looks into arrays, like the matrix."""
    orders = parse_filter({"type": ["com.example.order.created"], "data.qty": [5]})
    assert matches(orders, {"type": "COM.example.order.created", "data": {"qty": [1, 5.0]}})
    assert not matches(orders, {"type": "com.example.order.created", "data": {"qty": "5"}})
    assert not matches(orders, {"type": "com.example.order.created", "data": {"qty": True}})
