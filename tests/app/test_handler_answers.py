"""How the consumer reads a handler's answer (app/handler.py), without a network."""

from __future__ import annotations

import json

import pytest

from app import events
from app.handler import DEFECT, FAILED, REJECTED, emitted_id, read_answer

TRIGGER = events.parse(events.make({"n": 1}, source="urn:shop", type_="t", event_id="e1"))
CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def answer(status: int, content_type: str = "", body: str | bytes = b"") -> object:
    data = body.encode() if isinstance(body, str) else body
    return read_answer(status, content_type, data, "orders", TRIGGER)


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
    null_id = answer(200, CE, '{"specversion":"1.0","type":"x","id":null}')
    assert "attribute 'id' must be a non-empty string" in null_id.reason  # null is not absent
    big = json.dumps({"specversion": "1.0", "type": "x", "data": "x" * 50_000})
    assert "is too large to publish" in answer(200, CE, big).reason
    assert answer(200, BATCH, "[]").emitted == []
    assert answer(200, BATCH, "[] []").outcome == DEFECT
