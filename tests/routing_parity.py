"""The routing parity matrix: filters x events, decided by SNS (moto's server, real subscriptions
with the policies the stack deploys) and by Event Grid (its documented rules, applied to the
filter the stack renders), plus the refusals. tests/app/test_routing_parity.py asserts it;
docs/routing.md shows it (``python -m tests.routing_parity`` rewrites that table).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pulumi

from app.routing_shape import crossed_array
from bench.emulators import REPO, MotoEmulator
from components.azure.router import subscription_filter
from components.routing import EventFilter, FilterError, matches, parse_filter, sns_filter_policy
from tests.app.sns_leaves import faithful_leaves
from tests.event_grid_filtering import outcomes
from tests.http_replies import RecordingEndpoint

DOC = REPO / "docs" / "routing.md"
BEGIN, END = (
    "<!-- parity matrix: python -m tests.routing_parity -->",
    "<!-- end of parity matrix -->",
)

# name -> (filter as a user writes it, delivered to a webhook rather than a queue)
FILTERS: dict[str, tuple[dict[str, Any], bool]] = {
    "exact": ({"type": ["com.example.order.created"]}, False),
    "values": ({"data.region": ["eu", "us"]}, False),
    "prefix": ({"source": {"prefix": "urn:shop:"}}, False),
    "numbers": ({"data.qty": [5, 7]}, False),
    "nested": ({"data.customer.tier": ["gold"]}, False),
    "keys": (
        {
            "type": ["com.example.order.created"],
            "data.region": ["eu"],
            "data.customer.tier": ["gold"],
        },
        False,
    ),
    "extension": ({"tenant": ["acme"], "priority": [1]}, False),
    "webhook": ({"data.sku": {"prefix": "ab-"}}, True),
}

# Filters the config refuses: each would route some event differently on the two clouds, or
# would not deploy on one of them.
REFUSED: list[dict[str, Any]] = [
    {"type": {"prefix": "com.example.order."}},
    {"data.qty": ["5"]},
    {"data.region": ["eu", "EU"]},
    {"data.gift": [True]},
    {"data.region": {"prefix": "tr"}},
    {"data.$or": ["x"]},
    {
        "type": ["a", "b", "c"],
        "data.region": ["a", "b", "c", "d", "e"],
        "data.tier": ["x", "y", "z"],
    },
]


@dataclass(frozen=True)
class Event:
    name: str
    body: dict[str, Any]
    # A shape on which the clouds differ by design (the consumer counts "object-array" events;
    # "key-case" and "mixed-array" are undocumented on Event Grid): docs/routing.md.
    shape: str = ""


def _event(n: int, name: str, shape: str = "", **fields: Any) -> Event:
    body = {
        "specversion": "1.0",
        "id": f"e{n:02d}",
        "type": "com.example.order.created",
        "source": "urn:shop:eu",
        "datacontenttype": "application/json",
        **fields,
    }
    return Event(name, body, shape)


def _order(
    n: int, name: str, tenant: Any, priority: Any, data: tuple[Any, ...], **fields: Any
) -> Event:
    """An event with both extensions and all four data keys the filters look at, each one
    changed: ``data`` is (region, qty, customer tier, sku)."""
    region, qty, tier, sku = data
    values = {"region": region, "qty": qty, "customer": {"tier": tier}, "sku": sku}
    return _event(n, name, tenant=tenant, priority=priority, data=values, **fields)


MATCHING = {"region": "eu", "qty": 5, "customer": {"tier": "gold"}, "sku": "ab-1"}
EVENTS = [
    _event(1, "every key matches", tenant="acme", priority=1, data=MATCHING),
    _event(2, "keys missing", data={}),
    _event(
        3,
        "nulls",
        tenant=None,
        priority=None,
        data={"region": None, "qty": None, "customer": None, "sku": None},
    ),
    _event(
        4,
        "arrays",
        data={
            "region": ["fr", "eu"],
            "qty": [3, 5],
            "customer": {"tier": ["silver", "gold"]},
            "sku": ["x", "ab-2"],
        },
    ),
    _order(
        5,
        "other case",
        "ACME",
        1,
        ("EU", 7, "Gold", "AB-3"),
        type="COM.Example.Order.CREATED",
        source="URN:Shop:eu",
    ),
    _order(6, "numbers as text, text as numbers", "acme", "1", (5, "5", 1, 5)),
    _event(7, "decimals", priority=1.0, data={"qty": 7.0}),
    _event(
        8,
        "objects where values are expected",
        data={"region": {"eu": "eu"}, "qty": {"5": 5}, "customer": "gold", "sku": {"ab-": 1}},
    ),
    _event(
        9,
        "a path through an array of objects",
        "object-array",
        data={"region": "eu", "customer": [{"tier": "bronze"}, {"tier": "gold"}]},
    ),
    _event(
        10,
        "binary data (data_base64)",
        tenant="acme",
        priority=1,
        datacontenttype="application/octet-stream",
        data_base64="AAEC",
    ),
    _event(11, "data is text", datacontenttype="text/plain", data="eu"),
    _order(
        12,
        "near misses",
        "acme-corp",
        2,
        ("europe", 6, "golden", "ab"),
        type="com.example.order.created.v2",
        source="urn:shopx:eu",
    ),
    _order(13, "booleans", True, True, (True, True, False, False)),
    _event(14, "empty arrays", data={"region": [], "qty": [], "sku": []}),
    _event(
        15,
        "arrays of mixed types",
        "mixed-array",
        data={"region": [5, "eu"], "qty": ["5", 7], "sku": [1, "ab-4"]},
    ),
    _event(16, "no type match", type="com.example.order.shipped", data=MATCHING),
    _event(
        17,
        "field names in other case",
        "key-case",
        data={"Region": "eu", "Qty": 5, "Customer": {"tier": "gold"}, "SKU": "ab-5"},
    ),
]


@dataclass(frozen=True)
class Cell:
    sns: bool  # delivered by moto's SNS
    event_grid: frozenset[bool]  # every decision Event Grid's documentation allows
    language: bool  # components.routing.matches: what the docs promise
    through_array: bool  # the consumer counts it (app.routing_shape)
    shape: str

    @property
    def verdict(self) -> str:
        """yes / no when all agree; the two documented exceptions; otherwise a disagreement."""
        if self.event_grid == {self.sns} and self.sns == self.language:
            return "yes" if self.sns else "no"
        if (
            self.shape == "object-array"
            and self.through_array
            and self.sns
            and self.event_grid == {False}
            and not self.language
        ):
            return "AWS only"
        if self.shape == "key-case" and not self.sns and not self.language:
            return "unspecified"
        if self.shape == "mixed-array" and self.sns == self.language and len(self.event_grid) > 1:
            return "unspecified"
        return "DISAGREE"


def rendered_event_grid_filter(event_filter: EventFilter) -> dict[str, Any]:
    """The subscription filter components/azure/router.py sends, in the ARM shape."""
    args = subscription_filter(event_filter)
    return {
        "advancedFilters": [
            {
                "key": pulumi.get(f, "key"),
                "operatorType": pulumi.get(f, "operator_type"),
                "values": pulumi.get(f, "values"),
            }
            for f in pulumi.get(args, "advanced_filters") or []
        ],
        "enableAdvancedFilteringOnArrays": pulumi.get(args, "enable_advanced_filtering_on_arrays"),
    }


def sns_deliveries(moto: MotoEmulator) -> dict[str, set[str]]:
    """filter name -> ids of the events moto's SNS delivered: one topic, one subscription per
    filter (SQS, raw, MessageBody scope; the webhook over HTTP), every event in PublishBatch."""
    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic = sns.create_topic(Name="parity")["TopicArn"]
    queues, hooks = {}, {}
    with ExitStack() as stack:
        for name, (raw, webhook) in FILTERS.items():
            attributes = {
                "FilterPolicy": json.dumps(sns_filter_policy(parse_filter(raw))),
                "FilterPolicyScope": "MessageBody",
            }
            if webhook:
                hooks[name] = stack.enter_context(RecordingEndpoint("/hook"))
                sns.subscribe(
                    TopicArn=topic, Protocol="http", Endpoint=hooks[name].url, Attributes=attributes
                )
                continue
            queues[name] = sqs.create_queue(QueueName=f"parity-{name}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queues[name], AttributeNames=["QueueArn"])
            sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arn["Attributes"]["QueueArn"],
                Attributes={**attributes, "RawMessageDelivery": "true"},
            )
        for start in range(0, len(EVENTS), 10):
            batch = EVENTS[start : start + 10]
            sent = sns.publish_batch(
                TopicArn=topic,
                PublishBatchRequestEntries=[
                    {"Id": e.body["id"], "Message": json.dumps(e.body)} for e in batch
                ],
            )
            assert not sent.get("Failed"), sent["Failed"]
        # moto delivers while it publishes: everything is in the queues and endpoints by now.
        got = {name: set(_drain(sqs, url)) for name, url in queues.items()}
        for name, hook in hooks.items():
            got[name] = {json.loads(b["Message"])["id"] for b in hook.bodies()}
    return got


def _drain(sqs: Any, url: str) -> Iterator[str]:
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            yield json.loads(m["Body"])["id"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def grid(delivered: Mapping[str, set[str]]) -> dict[tuple[str, str], Cell]:
    """(filter, event) -> what each side decided."""
    cells = {}
    for name, (raw, _) in FILTERS.items():
        event_filter = parse_filter(raw)
        rendered = rendered_event_grid_filter(event_filter)
        for event in EVENTS:
            cells[name, event.name] = Cell(
                sns=event.body["id"] in delivered[name],
                event_grid=outcomes(rendered, event.body),
                language=matches(event_filter, event.body),
                through_array=crossed_array(event.body.get("data"), event_filter.data_paths)
                is not None,
                shape=event.shape,
            )
    return cells


def refusals() -> list[tuple[dict[str, Any], str]]:
    found = []
    for raw in REFUSED:
        try:
            parse_filter(raw)
        except FilterError as exc:
            found.append((raw, str(exc)))
        else:
            found.append((raw, ""))
    return found


MARKS = {"yes": "✓", "no": "·", "AWS only": "AWS only", "unspecified": "?"}


def table(cells: Mapping[tuple[str, str], Cell]) -> str:
    """The docs/routing.md section between BEGIN and END."""
    names = list(FILTERS)
    lines = [
        "| event | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for event in EVENTS:
        row = [MARKS.get(cells[n, event.name].verdict, "**DISAGREE**") for n in names]
        lines.append(f"| {event.name} | " + " | ".join(row) + " |")
    lines += ["", "| filter | as written |", "|---|---|"]
    lines += [
        f"| `{n}`{' (webhook)' if hook else ''} | `{json.dumps(raw)}` |"
        for n, (raw, hook) in FILTERS.items()
    ]
    lines += ["", "| refused filter | why |", "|---|---|"]
    lines += [f"| `{json.dumps(raw)}` | {why} |" for raw, why in refusals()]
    return "\n".join(lines)


def doc_table() -> str:
    text = DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    return match.group(1) if match else ""


def write_doc(section: str) -> None:
    text = DOC.read_text()
    old = doc_table()
    DOC.write_text(text.replace(f"{BEGIN}\n{old}\n{END}", f"{BEGIN}\n{section}\n{END}"))


def main() -> int:
    with faithful_leaves(), MotoEmulator() as moto:
        cells = grid(sns_deliveries(moto))
    write_doc(table(cells))
    bad = [key for key, cell in cells.items() if cell.verdict == "DISAGREE"]
    print(f"{DOC.relative_to(REPO)}: {len(cells)} pairs, {len(bad)} disagreements {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
