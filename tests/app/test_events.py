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


def test_row_keeps_the_raw_id_and_data_as_the_exact_text_sent() -> None:
    body = (
        '{"specversion":"1.0","id":"order-1","source":"urn:shop","type":"order.created",'
        '"time":"2026-01-02T03:04:05Z","data": {"a": [1, 2.50], "b": "\\u00e9"} }'
    )
    assert parse(body).row() == {
        "eventId": "order-1",
        "source": "urn:shop",
        "type": "order.created",
        "time": "2026-01-02T03:04:05Z",  # as sent: exact RFC 3339
        "data": '{"a": [1, 2.50], "b": "\\u00e9"}',  # as sent: spacing, digits, escapes
    }


@pytest.mark.parametrize(
    "data",
    [
        "12345678901234567.25",  # a float would round it to 1.2345678901234568e+16
        "1e400",  # a float would overflow to infinity, which JSON cannot hold
        "-0.0",
        "1E+2",
        "9" * 5000,  # past Python's 4300-digit limit for int()
        '{"n":[12345678901234567.25,1e400]}',
    ],
)
def test_numbers_in_data_are_kept_as_sent(data: str) -> None:
    body = '{"specversion":"1.0","id":"n","source":"s","type":"t","data":' + data + "}"
    assert parse(body).row()["data"] == data


def test_absent_data_is_not_stored_and_an_explicit_null_is() -> None:
    """JSON format 1.0.2 section 3.1.1: "data": null is an explicit null payload, distinct
    from the absence of the member."""
    assert "data" not in parse(json.dumps(BASE)).row()
    assert parse(json.dumps({**BASE, "data": None})).row()["data"] == "null"


def test_null_attributes_are_unset() -> None:
    """JSON format 1.0.2 section 2.2: a null attribute is treated as unset."""
    event = parse(json.dumps({**BASE, "subject": None, "time": None, "region": None, "n": 1}))
    row = event.row()
    assert "subject" not in row
    assert "time" not in row
    assert json.loads(row["extensions"]) == {"n": 1}


@pytest.mark.parametrize(
    "event_id",
    [
        "a/b\\c#d?e",  # what Azure Table keys forbid
        "x" * 300,  # longer than the old 255-character limit
        "é" * 200,  # 200 characters, 400 bytes
        "東" * 90,  # 90 characters, 270 bytes
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
    ],
)
def test_any_id_the_spec_allows_is_accepted_and_kept_raw(event_id: str) -> None:
    event = parse(json.dumps({**BASE, "id": event_id}))
    assert event.id == event.row()["eventId"] == event_id


def test_extension_names_longer_than_20_characters_are_accepted() -> None:
    """The spec's "SHOULD NOT exceed 20 characters" is advice (spec.md, attribute naming); the
    Python cloudevents SDK 2.0 accepts longer names."""
    name = "comexampleextensionattribute"
    row = parse(json.dumps({**BASE, name: "v"})).row()
    assert json.loads(row["extensions"]) == {name: "v"}


def test_extension_values_are_kept_as_sent() -> None:
    body = '{"specversion":"1.0","id":"x","source":"s","type":"t","big":12345678901234567.25}'
    assert parse(body).row()["extensions"] == '{"big":12345678901234567.25}'


def test_optional_attributes_may_be_absent() -> None:
    event = parse(json.dumps(BASE).encode())
    assert (event.time, event.datacontenttype, event.data) == (None, None, None)


def test_events_sharing_an_id_are_distinct_by_source() -> None:
    a = parse(json.dumps({**BASE, "source": "urn:a"}))
    b = parse(json.dumps({**BASE, "source": "urn:b"}))
    assert a.id == b.id
    assert a.identity != b.identity


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
        (json.dumps({**BASE, "id": "a\tb"}), "'id' holds a control character (U+0009 at 1)"),
        (json.dumps({**BASE, "type": "t\x85"}), "'type' holds a control character (U+0085"),
        (json.dumps({**BASE, "subject": "s\ufffe"}), "'subject' holds a Unicode noncharacter"),
        (json.dumps({**BASE, "source": "s\U0010ffff"}), "noncharacter (U+10FFFF at 1)"),
        (json.dumps({**BASE, "region": "eu\x00"}), "'region' holds a control character"),
        (json.dumps({**BASE, "region": "\udfff"}), "'region' is not valid Unicode"),
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
        "2026-01-02T03:04:05Z\n",  # a trailing newline ("$" would allow it)
        "\uff12\uff10\uff12\uff16-01-02T03:04:05Z",  # full-width digits ("\\d" would allow them)
        "2026-01-02T03:04:05.\u0661Z",  # an Arabic-Indic digit in the fraction
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


def test_data_keeps_non_ascii_text_as_sent() -> None:
    row = parse(json.dumps({**BASE, "data": {"name": "Zoë 東京"}}, ensure_ascii=False)).row()
    assert row["data"] == '{"name": "Zoë 東京"}'


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
        (json.dumps({**BASE, "Bad-Name": 1}), "'Bad-Name' is not lower-case ASCII letters"),
        (json.dumps({**BASE, "ext\n": 1}), "is not lower-case ASCII letters or digits"),
        (json.dumps({**BASE, "caf\u00e9": 1}), "is not lower-case ASCII letters or digits"),
        (json.dumps({**BASE, "\uff41": 1}), "is not lower-case ASCII letters or digits"),
        (json.dumps({**BASE, "nested": {"a": 1}}), "must be a scalar"),
        (json.dumps({**BASE, "subject": 5}), "'subject' must be a string"),
        ('{"specversion":"1.0","id":"a","id":"b","source":"s","type":"t"}', "'id' appears twice"),
        ('{"specversion":"1.0","id":"a","source":"s","type":"t","data":{"k":1,"k":2}}', "'k'"),
        ('{"specversion":"1.0","id":"a","source":"s","type":"t","data":[{"k":1,"k":1}]}', "twice"),
        ('{"specversion":"1.0","id":"a","source":"s","type":"t"} {}', "Extra data"),
        ('\ufeff{"specversion":"1.0","id":"a","source":"s","type":"t"}', "BOM"),
    ],
)
def test_hostile_bodies_are_invalid_events_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse(body)
    assert reason in str(err.value)


def test_an_sns_envelope_says_raw_message_delivery_is_off() -> None:
    """What an SQS queue receives from a topic without raw message delivery
    (docs.aws.amazon.com/sns/latest/dg/http-notification-json.html)."""
    envelope = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "Message": json.dumps(BASE),
        "Timestamp": "2026-01-02T03:04:05.000Z",
        "SignatureVersion": "1",
        "Signature": "c2ln",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
    }
    with pytest.raises(InvalidEvent, match=r"SNS notification envelope.*RawMessageDelivery"):
        parse(json.dumps(envelope))
