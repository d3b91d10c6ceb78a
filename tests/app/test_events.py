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
        "time": "2026-01-02T03:04:05+00:00",
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
        (json.dumps({**BASE, "time": "2026-01-02 03:04"}), "has no UTC offset"),
        (json.dumps({**BASE, "time": "soon"}), "is not RFC 3339"),
        (json.dumps({**BASE, "time": 1700000000}), "'time' must be an RFC 3339 string"),
        (json.dumps({**BASE, "datacontenttype": 1}), "'datacontenttype' must be a string"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(body: str | bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse(body)
    assert reason in str(err.value)
