"""CloudEvent parsing: what is accepted, what is rejected and with which reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.events import InvalidEvent, make, parse

BASE = {"specversion": "1.0", "id": "order-1", "source": "urn:shop", "type": "order.created"}


def test_made_events_parse_back_with_their_data() -> None:
    event = parse(make({"n": 1}, source="urn:s", type_="t.x", event_id="abc"))
    assert (event.id, event.source, event.type, event.data) == ("abc", "urn:s", "t.x", {"n": 1})
    assert event.datacontenttype == "application/json"
    assert event.time is not None
    assert abs((datetime.now(UTC) - event.time).total_seconds()) < 5


def test_row_is_keyed_by_id_and_keeps_data_as_json_text() -> None:
    event = parse(json.dumps({**BASE, "time": "2026-01-02T03:04:05Z", "data": {"a": [1, 2.5]}}))
    assert event.row() == {
        "id": "order-1",
        "source": "urn:shop",
        "type": "order.created",
        "time": "2026-01-02T03:04:05Z",  # as sent: exact RFC 3339
        "data": '{"a":[1,2.5]}',
    }


def test_optional_attributes_may_be_absent() -> None:
    event = parse(json.dumps(BASE).encode())
    assert (event.time, event.datacontenttype, event.data) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ('"text"', "JSON str, expected an object"),
        (json.dumps({**BASE, "specversion": "0.3"}), "specversion must be '1.0', got '0.3'"),
        (json.dumps({k: v for k, v in BASE.items() if k != "type"}), "'type' must be a non-empty"),
        (json.dumps({**BASE, "source": ""}), "'source' must be a non-empty string"),
        (json.dumps({**BASE, "id": 7}), "'id' must be a non-empty string"),
        (json.dumps({**BASE, "id": "a#b"}), "'id' contains"),
        (json.dumps({**BASE, "id": "a\tb"}), "'id' contains"),
        (json.dumps({**BASE, "id": "x" * 256}), "longer than 255"),
        (json.dumps({**BASE, "time": "2026-01-02 03:04"}), "is not RFC 3339"),
        (json.dumps({**BASE, "time": "soon"}), "is not RFC 3339"),
        (json.dumps({**BASE, "time": 1700000000}), "'time' must be an RFC 3339 string"),
        (json.dumps({**BASE, "datacontenttype": 1}), "'datacontenttype' must be a string"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(body: str | bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse(body)
    assert reason in str(err.value)


def times(*values: str) -> list[str]:
    return [json.dumps({**BASE, "time": v}) for v in values]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456789+02:00", datetime(2026, 1, 2, 1, 4, 5, 123456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_are_accepted_exactly(value: str, expected: datetime) -> None:
    event = parse(json.dumps({**BASE, "time": value}))
    assert event.time == expected
    assert event.row()["time"] == value  # stored as sent (a leap second is kept)


@pytest.mark.parametrize(
    "value",
    [
        "2026-W01-2T03:04:05Z",  # ISO week date
        "2026-002T03:04:05Z",  # ISO ordinal date
        "20260102T030405Z",  # ISO basic format
        "2026-01-02T03Z",  # hour only
        "2026-01-02T03:04Z",  # no seconds
        "2026-01-02T03:04:05",  # no offset
        "2026-01-02 03:04:05Z",  # space instead of T
        "2026-13-02T03:04:05Z",  # month 13
        "2026-02-30T03:04:05Z",  # no such day
        "2026-01-02T24:00:00Z",  # hour 24
        "2026-01-02T03:04:61Z",  # second 61
        "2026-01-02T03:04:05+01:60",  # offset minute 60
        "2026-01-02T03:04:05+0100",  # offset without colon
    ],
)
def test_iso_forms_rfc3339_does_not_allow_are_refused(value: str) -> None:
    with pytest.raises(InvalidEvent, match="'time' is not RFC 3339"):
        parse(json.dumps({**BASE, "time": value}))


def test_binary_data_is_kept_as_base64() -> None:
    event = parse(json.dumps({**BASE, "datacontenttype": "image/png", "data_base64": "iVBORw0K"}))
    row = event.row()
    assert row["data_base64"] == "iVBORw0K"
    assert "data" not in row


def test_extensions_subject_and_dataschema_are_kept() -> None:
    doc = {
        **BASE,
        "subject": "order/1",
        "dataschema": "https://schemas.example.com/order.json",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "region": "eu",
        "priority": 3,
        "urgent": True,
    }
    row = parse(json.dumps(doc)).row()
    assert (row["subject"], row["dataschema"]) == (doc["subject"], doc["dataschema"])
    assert json.loads(row["extensions"]) == {
        "traceparent": doc["traceparent"],
        "region": "eu",
        "priority": 3,
        "urgent": True,
    }


def test_data_keeps_non_ascii_text_unescaped() -> None:
    row = parse(json.dumps({**BASE, "data": {"name": "Zoë 東京"}})).row()
    assert row["data"] == '{"name":"Zoë 東京"}'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"specversion":"1.0","id":"a","source":"s","type":"t","data":NaN}', "NaN is not JSON"),
        ('{"specversion":"1.0","id":"a","source":"s","type":"t","data":Infinity}', "Infinity"),
        ('{"specversion":"1.0","id":"a","source":"s","type":"t","data":-Infinity}', "Infinity"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            '{"specversion":"1.0","id":"a","source":"s","type":"t","data":'
            + "[" * 100_000
            + "]" * 100_000
            + "}",
            "nested too deeply",
        ),
        ('{"specversion":"1.0","id":"a\ud800","source":"s","type":"t"}', "lone surrogate"),
        ('{"specversion":"1.0","id":"a","source":"\udc00","type":"t"}', "lone surrogate"),
        ('{"specversion":"1.0","id":"a","source":"s","type":"t","data":"\ud83d"}', "surrogate"),
        (json.dumps({**BASE, "data": 1, "data_base64": "AA=="}), "not both"),
        (json.dumps({**BASE, "data_base64": "not base64!"}), "not valid base64"),
        (json.dumps({**BASE, "Bad-Name": 1}), "is not 1-20 lower-case letters or digits"),
        (json.dumps({**BASE, "nested": {"a": 1}}), "must be a scalar"),
        (json.dumps({**BASE, "subject": 5}), "'subject' must be a string"),
    ],
)
def test_hostile_bodies_are_invalid_events_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse(body)
    assert reason in str(err.value)
