"""CloudEvents 1.0 in structured JSON mode: build, validate, and turn into a table row.

References: CloudEvents 1.0.2 (github.com/cloudevents/spec, tag v1.0.2): ``cloudevents/spec.md``
(attribute naming, type system, context attributes) and ``cloudevents/formats/json-format.md``
(JSON format: ``null`` attributes, ``data`` and ``data_base64``).

Every way a body can fail to be an event ends in ``InvalidEvent`` with the reason, never another
exception: JSON that is not JSON (``NaN``, bytes that are not UTF-8), a member name twice in one
object, nesting deeper than the parser can follow, text that is not Unicode (lone surrogates),
characters the spec's String type forbids, times that are not RFC 3339, an Amazon SNS envelope.

Nothing the event carries is dropped or rewritten: ``data`` is kept as the exact JSON text it
arrived as (``12345678901234567.25`` and ``1e400`` stay as sent), ``data_base64`` as sent, and the
extension attributes as one JSON object of their values as sent. The row's key is not the event
id: the backends derive it from (workflow, source, id) (``app.backend.row_key``), so any id the
spec allows is stored, whatever its length or characters.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from json.decoder import scanstring
from typing import Any

SPEC_VERSION = "1.0"
REQUIRED = ("id", "source", "type")
OPTIONAL_STRINGS = ("subject", "dataschema", "datacontenttype")
CONTEXT_ATTRIBUTES = frozenset(
    {"specversion", *REQUIRED, *OPTIONAL_STRINGS, "time", "data", "data_base64"}
)
# Attribute names: lower-case ASCII letters or digits (a MUST); "SHOULD NOT exceed 20
# characters" is advice (the Python cloudevents SDK 2.0 accepts longer ones, src/cloudevents/core/
# v1/event.py), so any length is accepted.
EXTENSION_NAME = re.compile(r"[a-z0-9]+")
# The String type disallows control characters (U+0000-U+001F, U+007F-U+009F), Unicode
# noncharacters (U+FDD0-U+FDEF and the last two code points of every plane) and unpaired
# surrogates (spec.md, "Type System").
_NONCHARACTERS = "".join(
    chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)
)
NOT_STRING = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef{_NONCHARACTERS}]")
# RFC 3339 section 5.6 date-time, ASCII digits only; "T" and "Z" may be lower case (section 5.6
# NOTE), seconds may be a leap second (60). Nothing else ISO 8601 allows: no week or ordinal
# dates, no basic format, no reduced precision (hour-only), no missing offset, no space for "T".
RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Insignificant white space between JSON tokens (RFC 8259 section 2).
WHITESPACE = re.compile(r"[ \t\n\r]*")
# A surrogate in JSON text, escaped or not: only then can a decoded string hold a lone one.
SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
# Amazon SNS wraps a message in this envelope unless the subscription has raw message delivery
# (docs.aws.amazon.com/sns/latest/dg/http-notification-json.html).
SNS_ENVELOPE = frozenset({"Type", "MessageId", "TopicArn", "Message"})


class InvalidEvent(ValueError):  # noqa: N818 - reads as "raise InvalidEvent(reason)"
    """The message is not a CloudEvent this consumer accepts; the text is the dead-letter reason."""


class DuplicateMemberError(ValueError):
    """One JSON object names a member twice; the text is the name."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateMemberError(name)
            seen.add(name)
    return obj


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON (RFC 8259 has no NaN or Infinity)")


# Attribute values: Python values. ``data``: only validated (its text is what is kept), so its
# numbers are not converted (no float rounding, no int digit limit, no overflow to inf).
_ATTRIBUTES = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_not_json)
_DATA = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_constant=_not_json, parse_float=str, parse_int=str
)


@dataclass(frozen=True)
class Event:
    id: str
    source: str
    type: str
    time: datetime | None = None
    time_text: str | None = None  # the attribute as sent (exact RFC 3339, leap second kept)
    datacontenttype: str | None = None
    subject: str | None = None
    dataschema: str | None = None
    data_json: str | None = None  # the ``data`` member exactly as sent; None when absent
    data_base64: str | None = None
    extensions_json: str | None = None  # {"name": value as sent, ...}; None without extensions
    # ``data`` as the parser read it, numbers as their JSON text: its shape, for the consumer to
    # look at after the batch is settled without parsing the text again (json.loads raises for an
    # integer of more than 4300 digits, Python's int_max_str_digits).
    data_tree: Any = field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> tuple[str, str]:
        """What makes an event distinct (spec.md, ``id``: "source + id is unique")."""
        return self.source, self.id

    @property
    def data(self) -> Any:
        """``data`` decoded with Python numbers (None when absent or null), for tools and tests:
        it raises ValueError for an integer of more than 4300 digits, so the consumer never
        calls it (it uses ``data_tree``)."""
        return None if self.data_json is None else json.loads(self.data_json)

    def row(self) -> dict[str, str]:
        """The stored attributes, all strings (each table keeps them without type surprises):
        ``eventId`` and ``source`` raw, the optional attributes when present, ``data`` as the
        JSON text sent (an explicit ``null`` is kept; an absent ``data`` stores nothing)."""
        row = {"eventId": self.id, "source": self.source, "type": self.type}
        if self.time_text is not None:
            row["time"] = self.time_text
        for name in OPTIONAL_STRINGS:
            value = getattr(self, name)
            if value is not None:
                row[name] = value
        if self.data_base64 is not None:
            row["data_base64"] = self.data_base64
        elif self.data_json is not None:
            row["data"] = self.data_json
        if self.extensions_json is not None:
            row["extensions"] = self.extensions_json
        return row


def parse(body: str | bytes) -> Event:
    """Parse and validate one message body, or raise InvalidEvent with the reason."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        members = top_members(text)
    except InvalidEvent:
        raise
    except DuplicateMemberError as exc:
        raise InvalidEvent(
            f"member {str(exc)[:64]!r} appears twice in one JSON object (RFC 8259 section 4: "
            "names SHOULD be unique; readers disagree on which value counts)"
        ) from exc
    except RecursionError as exc:
        raise InvalidEvent("not valid JSON: nested too deeply to parse") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from exc
    doc = {name: value for name, (value, _) in members.items()}
    if "specversion" not in doc and doc.keys() >= SNS_ENVELOPE and doc["Type"] == "Notification":
        raise InvalidEvent(
            "an Amazon SNS notification envelope, not a CloudEvent: the queue's subscription "
            "delivers with raw message delivery off (set RawMessageDelivery to true)"
        )
    # JSON format 1.0.2 section 2.2: an attribute set to null is unset. ``data`` is no
    # attribute: "data": null is an explicit null payload, kept as such (section 3.1.1).
    attributes = {k: v for k, v in doc.items() if v is not None and k != "data"}
    if attributes.get("specversion") != SPEC_VERSION:
        raise InvalidEvent(
            f"specversion must be {SPEC_VERSION!r}, got {attributes.get('specversion')!r}"
        )
    for attr in REQUIRED:
        if not isinstance(attributes.get(attr), str) or not attributes[attr]:
            raise InvalidEvent(f"attribute {attr!r} must be a non-empty string")
    optional = {}
    for attr in OPTIONAL_STRINGS:
        value = attributes.get(attr)
        if value is not None and not isinstance(value, str):
            raise InvalidEvent(f"attribute {attr!r} must be a string")
        optional[attr] = value
    for attr in (*REQUIRED, *OPTIONAL_STRINGS):
        _check_string(attr, attributes.get(attr))
    time_text = attributes.get("time")
    return Event(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        time=parse_time(time_text),
        time_text=time_text,
        data_json=_data(members),
        data_tree=members["data"][0] if "data" in members else None,
        data_base64=_data_base64(attributes, "data" in doc),
        extensions_json=_extensions(members),
        **optional,
    )


def top_members(text: str) -> dict[str, tuple[Any, str]]:
    """The top-level JSON object's members: name -> (value, the value's exact text).

    The standard library's scanner does the work (strings, values, nesting); only the top
    level is walked here, because no JSON library hands back the text a value was parsed from.
    """
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM", text, 0)
    i = _skip(text, 0)
    if not text.startswith("{", i):
        doc = _ATTRIBUTES.decode(text)  # raises for what is not JSON
        raise InvalidEvent(f"not a CloudEvent: JSON {type(doc).__name__}, expected an object")
    members: dict[str, tuple[Any, str]] = {}
    i = _skip(text, i + 1)
    if text.startswith("}", i):
        return _end(text, i + 1, members)
    while True:
        if not text.startswith('"', i):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        name, i = scanstring(text, i + 1)
        i = _skip(text, i)
        if not text.startswith(":", i):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
        start = _skip(text, i + 1)
        value, end = (_DATA if name == "data" else _ATTRIBUTES).raw_decode(text, start)
        if name in members:
            raise DuplicateMemberError(name)
        members[name] = (value, text[start:end])
        i = _skip(text, end)
        if text.startswith("}", i):
            return _end(text, i + 1, members)
        if not text.startswith(",", i):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
        i = _skip(text, i + 1)


def _skip(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not white space."""
    return WHITESPACE.match(text, i).end()  # type: ignore[union-attr] - matches the empty string


def _end(text: str, i: int, members: dict[str, tuple[Any, str]]) -> dict[str, tuple[Any, str]]:
    i = _skip(text, i)
    if i != len(text):
        raise json.JSONDecodeError("Extra data", text, i)
    return members


def _check_string(name: str, value: str | None) -> None:
    """The characters the String type disallows (spec.md, "Type System")."""
    if value is None:
        return
    bad = NOT_STRING.search(value)
    if bad is None:
        return
    char, at = bad.group(), bad.start()
    if "\ud800" <= char <= "\udfff":
        raise InvalidEvent(f"attribute {name!r} is not valid Unicode (a lone surrogate at {at})")
    kind = "a control character" if char <= "\x9f" else "a Unicode noncharacter"
    raise InvalidEvent(
        f"attribute {name!r} holds {kind} (U+{ord(char):04X} at {at}), which the CloudEvents "
        "String type disallows"
    )


def _data(members: dict[str, tuple[Any, str]]) -> str | None:
    """The exact text of ``data``; a lone surrogate in it is refused like one in any attribute
    (the decoded value is encoded again to look only when the text holds a surrogate, escaped
    or not)."""
    if "data" not in members:
        return None
    value, text = members["data"]
    if SURROGATE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEvent(
                "attribute 'data' is not valid Unicode (it holds a lone surrogate)"
            ) from exc
        except RecursionError as exc:
            raise InvalidEvent("attribute 'data' is nested too deeply to store") from exc
    return text


def _data_base64(attributes: dict[str, Any], has_data: bool) -> str | None:
    value = attributes.get("data_base64")
    if value is None:
        return None
    if has_data:
        raise InvalidEvent("an event carries 'data' or 'data_base64', not both")
    if not isinstance(value, str):
        raise InvalidEvent("attribute 'data_base64' must be a base64 string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent(f"attribute 'data_base64' is not valid base64: {exc}") from exc
    return value


def _extensions(members: dict[str, tuple[Any, str]]) -> str | None:
    """The extension attributes as one JSON object, each value as sent (unset ones omitted)."""
    kept = []
    for name, (value, text) in members.items():
        if name in CONTEXT_ATTRIBUTES or value is None:
            continue
        if not EXTENSION_NAME.fullmatch(name):
            raise InvalidEvent(
                f"extension attribute {name[:40]!r} is not lower-case ASCII letters or digits"
            )
        if isinstance(value, dict | list):
            raise InvalidEvent(
                f"extension attribute {name!r} must be a scalar, not JSON {text[:40]}"
            )
        if isinstance(value, str):
            _check_string(name, value)
        kept.append(f'"{name}":{text}')
    return "{" + ",".join(kept) + "}" if kept else None


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 ``date-time`` (CloudEvents ``time``) as an aware datetime, or InvalidEvent.

    A leap second (``:60``) is accepted and read as the last instant of its minute: Python's
    datetime has no 61st second, and a latency figure does not need it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("attribute 'time' must be an RFC 3339 string")
    match = RFC3339.fullmatch(value)
    if not match:
        raise InvalidEvent(f"attribute 'time' is not RFC 3339: {value[:64]!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    if second > 60:
        raise InvalidEvent(f"attribute 'time' is not RFC 3339: {value[:64]!r}")
    try:
        if offset in ("Z", "z"):
            tz = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if minutes > 59:
                raise ValueError("offset minutes out of range")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        micros = int((fraction or ".0")[1:7].ljust(6, "0"))
        if second == 60:
            second, micros = 59, 999_999
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError as exc:
        raise InvalidEvent(f"attribute 'time' is not RFC 3339: {value[:64]!r} ({exc})") from exc


def make(data: Any, *, source: str, type_: str, event_id: str | None = None) -> str:
    """One structured-mode CloudEvent as JSON text (what the producer sends)."""
    return json.dumps(
        {
            "specversion": SPEC_VERSION,
            "id": event_id or str(uuid.uuid4()),
            "source": source,
            "type": type_,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        },
        separators=(",", ":"),
    )
