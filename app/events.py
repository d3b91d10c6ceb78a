"""CloudEvents 1.0 in structured JSON mode: build, validate, and turn into a table row.

The event id is the table key on both clouds, so a redelivered message overwrites its own row.
The id must therefore also be a legal key everywhere: Azure Table forbids ``/ \\ # ?`` and control
characters in keys, so such ids are rejected (dead-lettered) on both clouds alike.

Every way a body can fail to be an event ends in ``InvalidEvent`` with the reason, never another
exception: JSON that is not JSON (``NaN``, bytes that are not UTF-8), nesting deeper than the
parser can follow, text that is not Unicode (lone surrogates), times that are not RFC 3339.
Nothing the event carries is dropped: ``data`` or ``data_base64`` (binary data), ``subject``,
``dataschema`` and every extension attribute reach the row.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

SPEC_VERSION = "1.0"
MAX_ID_LENGTH = 255
FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
REQUIRED = ("id", "source", "type")
OPTIONAL_STRINGS = ("subject", "dataschema", "datacontenttype")
CONTEXT_ATTRIBUTES = frozenset(
    {"specversion", *REQUIRED, *OPTIONAL_STRINGS, "time", "data", "data_base64"}
)
# CloudEvents 1.0: extension names are lower-case letters or digits (20 characters advised).
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# RFC 3339 section 5.6 date-time; "T" and "Z" may be lower case (section 5.6 NOTE), seconds may be
# a leap second (60). Nothing else ISO 8601 allows: no week or ordinal dates, no basic format, no
# reduced precision (hour-only), no missing offset, no space instead of "T".
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


class InvalidEvent(ValueError):  # noqa: N818 - reads as "raise InvalidEvent(reason)"
    """The message is not a CloudEvent this consumer accepts; the text is the dead-letter reason."""


@dataclass(frozen=True)
class Event:
    id: str
    source: str
    type: str
    time: datetime | None
    datacontenttype: str | None
    data: Any
    time_text: str | None = None  # the attribute as sent (exact RFC 3339, leap second kept)
    subject: str | None = None
    dataschema: str | None = None
    data_base64: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, str]:
        """The stored attributes, all strings (each table keeps them without type surprises).

        ``data`` is JSON text (UTF-8, not ASCII-escaped, so it is as small as it was sent);
        binary data stays base64 in ``data_base64``; extensions are one JSON object."""
        row = {"id": self.id, "source": self.source, "type": self.type}
        if self.time is not None:
            row["time"] = self.time_text or self.time.isoformat()
        for name in OPTIONAL_STRINGS:
            value = getattr(self, name)
            if value is not None:
                row[name] = value
        if self.data_base64 is not None:
            row["data_base64"] = self.data_base64
        else:
            row["data"] = _json_text(self.data)
        if self.extensions:
            row["extensions"] = _json_text(dict(self.extensions))
        return row


def parse(body: str | bytes) -> Event:
    """Parse and validate one message body, or raise InvalidEvent with the reason."""
    try:
        doc = json.loads(body, parse_constant=_not_json)
    except RecursionError as exc:
        raise InvalidEvent("not valid JSON: nested too deeply to parse") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidEvent(f"not a CloudEvent: JSON {type(doc).__name__}, expected an object")
    if doc.get("specversion") != SPEC_VERSION:
        raise InvalidEvent(f"specversion must be {SPEC_VERSION!r}, got {doc.get('specversion')!r}")
    for attr in REQUIRED:
        if not isinstance(doc.get(attr), str) or not doc[attr]:
            raise InvalidEvent(f"attribute {attr!r} must be a non-empty string")
    _check_key(doc["id"])
    optional = {}
    for attr in OPTIONAL_STRINGS:
        value = doc.get(attr)
        if value is not None and not isinstance(value, str):
            raise InvalidEvent(f"attribute {attr!r} must be a string")
        optional[attr] = value
    time_text = doc.get("time")
    event = Event(
        id=doc["id"],
        source=doc["source"],
        type=doc["type"],
        time=parse_time(time_text),
        time_text=time_text,
        data=doc.get("data"),
        data_base64=_data_base64(doc),
        extensions=_extensions(doc),
        **optional,
    )
    try:
        row = event.row()
    except RecursionError as exc:
        raise InvalidEvent("attribute 'data' is nested too deeply to store") from exc
    for name, value in row.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEvent(
                f"attribute {name!r} is not valid Unicode (a lone surrogate at {exc.start})"
            ) from exc
    return event


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON (RFC 8259 has no NaN or Infinity)")


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_key(event_id: str) -> None:
    if len(event_id) > MAX_ID_LENGTH:
        raise InvalidEvent(f"attribute 'id' is longer than {MAX_ID_LENGTH} characters")
    if FORBIDDEN_KEY_CHARS.search(event_id):
        raise InvalidEvent("attribute 'id' contains / \\ # ? or control characters (not a key)")


def _data_base64(doc: Mapping[str, Any]) -> str | None:
    value = doc.get("data_base64")
    if value is None:
        return None
    if "data" in doc:
        raise InvalidEvent("an event carries 'data' or 'data_base64', not both")
    if not isinstance(value, str):
        raise InvalidEvent("attribute 'data_base64' must be a base64 string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent(f"attribute 'data_base64' is not valid base64: {exc}") from exc
    return value


def _extensions(doc: Mapping[str, Any]) -> dict[str, Any]:
    extensions = {k: v for k, v in doc.items() if k not in CONTEXT_ATTRIBUTES}
    for name, value in extensions.items():
        if not EXTENSION_NAME.match(name):
            raise InvalidEvent(
                f"extension attribute {name[:40]!r} is not 1-20 lower-case letters or digits"
            )
        if isinstance(value, dict | list):
            raise InvalidEvent(f"extension attribute {name!r} must be a scalar, not JSON {value!r}")
    return extensions


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 ``date-time`` (CloudEvents ``time``) as an aware datetime, or InvalidEvent.

    A leap second (``:60``) is accepted and read as the last instant of its minute: Python's
    datetime has no 61st second, and a latency figure does not need it."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("attribute 'time' must be an RFC 3339 string")
    match = RFC3339.match(value)
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
