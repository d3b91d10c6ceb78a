"""How the consumer reads a handler's answer (app/handler.py), without a network."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import events
from app.handler import DEFECT, FAILED, OK, REJECTED, Reply, emitted_id, read_answer

TRIGGER = events.parse(events.make({"n": 1}, source="urn:shop", type_="t", event_id="e1"))
CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def answer(status: int, content_type: str = "", body: str | bytes = b"", **binary: str) -> Any:
    """The answer to a reply; ``binary`` holds ce- headers (``ce_id="x"`` for ``ce-id: x``)."""
    data = body.encode() if isinstance(body, str) else body
    headers = {name.removeprefix("ce_"): value for name, value in binary.items()}
    return read_answer(Reply(status, content_type, data, headers), "orders", TRIGGER)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 599])
def test_retryable_statuses_say_the_handler_is_failing(status: int) -> None:
    assert answer(status, "text/plain", "busy").outcome == FAILED


@pytest.mark.parametrize("status", [400, 404, 409, 422, 499])
def test_other_4xx_reject_the_event_with_the_status_and_the_body(status: int) -> None:
    got = answer(status, "text/plain", "no " + "y" * 2000)
    assert got.outcome == REJECTED
    assert got.reason == f"handler answered {status}: " + ("no " + "y" * 2000)[:1024]


@pytest.mark.parametrize("status", [301, 302, 304, 100])
def test_statuses_outside_the_contract_are_defects(status: int) -> None:
    assert answer(status).reason == f"handler answered {status}, which the contract does not allow"


def test_an_empty_or_blank_2xx_stores_the_event_as_is() -> None:
    assert answer(204) == answer(200, "application/json", " \r\n") == answer(200)
    assert answer(200, "application/json").result is None


def test_a_json_object_is_kept_as_written_and_anything_else_is_a_defect() -> None:
    assert answer(200, "application/json; charset=utf-8", ' {"a": 1.50} ').result == '{"a": 1.50}'
    assert answer(200, "application/json", "[1]").outcome == DEFECT
    assert answer(200, "application/json", "{nope").reason.startswith(
        "handler answered 200 with application/json: the body is not JSON"
    )
    assert answer(200, "", "text").reason == (
        "handler answered 200 with a body: a body of content type 'no content type'; the "
        "contract allows no body, application/json, application/cloudevents+json or "
        "application/cloudevents-batch+json"
    )
    assert answer(200, "application/json", b"\xff{}").reason.endswith("the body is not UTF-8")


def test_emitted_events_get_a_source_and_a_stable_id_and_keep_their_text() -> None:
    body = '[{"specversion":"1.0","type":"x","data":{"total":12345678901234567.25}}]'
    got = answer(200, BATCH, body)
    (text,) = got.emitted
    assert text.endswith('"data":{"total":12345678901234567.25}}')  # not rounded
    event = json.loads(text)
    assert event["source"] == "urn:edw:workflow:orders"
    assert event["id"] == emitted_id("orders", TRIGGER, 0)
    # Stable across calls, distinct per position, trigger and workflow.
    assert answer(200, BATCH, body).emitted == answer(200, BATCH, body).emitted  # a retry
    other = events.parse(events.make({}, source="urn:shop", type_="t", event_id="e2"))
    ids = {emitted_id(w, t, n) for w in ("a", "b") for t in (TRIGGER, other) for n in (0, 1)}
    assert len(ids) == 8


def test_an_emitted_event_that_is_not_a_cloud_event_or_too_large_is_a_defect() -> None:
    assert (
        "emitted event 0 is not a CloudEvent: attribute 'type'"
        in answer(200, CE, '{"specversion":"1.0"}').reason
    )
    assert (
        "emitted event 1 is not a JSON object"
        in answer(200, BATCH, '[{"specversion":"1.0","type":"x"}, 3]').reason
    )
    big = json.dumps({"specversion": "1.0", "type": "x", "data": "x" * 50_000})
    assert "is too large to publish" in answer(200, CE, big).reason
    assert answer(200, BATCH, "[]").emitted == []
    assert answer(200, BATCH, "[] []").outcome == DEFECT


def test_null_id_and_source_are_unset_and_get_the_defaults() -> None:
    """JSON format 1.0.2 section 2.2: an attribute set to null MUST be treated as unset."""
    got = answer(200, CE, '{"specversion":"1.0", "id":null, "type":"x", "source": null, "n": 1.50}')
    assert got.outcome == OK
    (text,) = got.emitted
    assert json.loads(text) == {
        "source": "urn:edw:workflow:orders",
        "id": emitted_id("orders", TRIGGER, 0),
        "specversion": "1.0",
        "type": "x",
        "n": 1.50,
    }
    assert text.endswith('"n":1.50}')  # the other members exactly as written
    twice = answer(200, CE, '{"specversion":"1.0","type":"x","type":"y"}')
    assert "appears twice in one JSON object" in twice.reason


def test_media_types_are_case_insensitive_and_parameters_ignored() -> None:
    assert answer(200, "Application/JSON; Charset=UTF-8", '{"a":1}').result == '{"a":1}'
    event = '{"specversion":"1.0","type":"x"}'
    assert len(answer(200, "APPLICATION/CLOUDEVENTS+JSON", event).emitted) == 1


def test_a_binary_mode_answer_is_one_emitted_event() -> None:
    """HTTP binding 1.0.2 section 3.1: attributes in ce- headers, percent-encoded (3.1.3.2),
    the data as the body, its type in Content-Type (3.1.1)."""
    got = answer(
        200,
        "application/json",
        '{"total": 10.10}',
        ce_specversion="1.0",
        ce_type="com.example.order.accepted",
        ce_subject="Euro%20%E2%82%AC%20%f0%9f%98%80",  # lower-case hex is accepted
        ce_note='"a\\\\b\\"c"',  # an older sender's quoted string (RFC 7230 quoted-pairs)
    )
    (text,) = got.emitted
    event = json.loads(text)
    assert event["subject"] == "Euro \u20ac \U0001f600"
    assert event["note"] == 'a\\b"c'
    assert event["datacontenttype"] == "application/json"
    assert event["id"] == emitted_id("orders", TRIGGER, 0)
    assert text.endswith('"data":{"total": 10.10}}')  # the data as written
    text_data = answer(200, "text/plain", "hi", ce_specversion="1.0", ce_type="t")
    assert json.loads(text_data.emitted[0])["data"] == "hi"
    raw = answer(200, "application/octet-stream", b"\x00\xff", ce_specversion="1.0", ce_type="t")
    assert json.loads(raw.emitted[0])["data_base64"] == "AP8="
    no_data = answer(204, "", "", ce_specversion="1.0", ce_type="t")
    assert "data" not in json.loads(no_data.emitted[0])
    # Without ce-specversion it is no binary-mode event: other ce- headers change nothing.
    assert answer(200, "application/json", "{}", ce_type="t").result == "{}"
    # A CloudEvents media type means structured mode, whatever ce- headers come along.
    structured = answer(200, CE, '{"specversion":"1.0","type":"s"}', ce_specversion="1.0")
    assert json.loads(structured.emitted[0])["type"] == "s"


def test_a_binary_mode_answer_that_breaks_the_binding_is_a_defect() -> None:
    overlong = answer(200, "", "", ce_specversion="1.0", ce_type="t", ce_subject="%C0%A0")
    assert overlong.reason == (
        "handler answered 200 with a binary-mode event: header ce-subject is not "
        "percent-encoded UTF-8"
    )
    bad_json = answer(200, "application/json", "{", ce_specversion="1.0", ce_type="t")
    assert "the body is not JSON although its type is application/json" in bad_json.reason
    no_type = answer(200, "", "", ce_specversion="1.0")
    assert "is not a CloudEvent: attribute 'type'" in no_type.reason
    both = answer(200, "text/plain", "x", ce_specversion="1.0", ce_type="t", ce_datacontenttype="y")
    assert both.reason.endswith(
        "a ce-datacontenttype header: Content-Type carries it (section 3.1.1)"
    )
    raw = answer(200, "", "", ce_specversion="1.0", ce_type="t", ce_subject="caf\u00c3\u00a9")
    assert raw.reason.endswith("header ce-subject holds characters outside printable ASCII")
    headers = {"specversion": "1.0", "type": "t", "id": "b"}
    twice = read_answer(Reply(200, "", b"", headers, repeated=frozenset({"id"})), "orders", TRIGGER)
    assert twice.reason.endswith("a binary-mode event: headers sent twice: ce-id")


def test_a_2xx_longer_than_the_consumer_reads_is_a_defect() -> None:
    cut = read_answer(Reply(200, "application/json", b"{", whole=False), "orders", TRIGGER)
    assert cut.outcome == DEFECT
    assert cut.reason == (
        "handler answered 200 with application/json: a body over the 1048576 bytes the "
        "consumer reads"
    )
    rejected = read_answer(Reply(422, "text/plain", b"no", whole=False), "orders", TRIGGER)
    assert (rejected.outcome, rejected.reason) == (REJECTED, "handler answered 422: no")


def test_a_compressed_2xx_is_a_defect_the_consumer_asked_for_identity() -> None:
    """http.client sends Accept-Encoding: identity; a gzip answer is not read (nor inflated)."""
    got = read_answer(Reply(200, "application/json", b"\x1f\x8b", encoding="gzip"), "w", TRIGGER)
    assert got.reason == (
        "handler answered 200 with application/json: Content-Encoding gzip: the consumer asks "
        "for none (Accept-Encoding: identity)"
    )
    plain = read_answer(Reply(200, "application/json", b"{}", encoding="identity"), "w", TRIGGER)
    assert plain.result == "{}"
