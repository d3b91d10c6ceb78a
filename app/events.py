"""CloudEvents 1.0 in structured JSON mode: build, validate, and turn into a table row.

The event id is the table key on both clouds, so a redelivered message overwrites its own row.
The id must therefore also be a legal key everywhere: Azure Table forbids ``/ \\ # ?`` and control
characters in keys, so such ids are rejected (dead-lettered) on both clouds alike.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SPEC_VERSION = "1.0"
MAX_ID_LENGTH = 255
FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
REQUIRED = ("id", "source", "type")


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

    def row(self) -> dict[str, str]:
        """The stored attributes (all strings: each table keeps them without type surprises)."""
        row = {"id": self.id, "source": self.source, "type": self.type}
        if self.time is not None:
            row["time"] = self.time.isoformat()
        if self.datacontenttype is not None:
            row["datacontenttype"] = self.datacontenttype
        row["data"] = json.dumps(self.data, separators=(",", ":"))
        return row


def parse(body: str | bytes) -> Event:
    """Parse and validate one message body, or raise InvalidEvent with the reason."""
    try:
        doc = json.loads(body)
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
    content_type = doc.get("datacontenttype")
    if content_type is not None and not isinstance(content_type, str):
        raise InvalidEvent("attribute 'datacontenttype' must be a string")
    return Event(
        id=doc["id"],
        source=doc["source"],
        type=doc["type"],
        time=_parse_time(doc.get("time")),
        datacontenttype=content_type,
        data=doc.get("data"),
    )


def _check_key(event_id: str) -> None:
    if len(event_id) > MAX_ID_LENGTH:
        raise InvalidEvent(f"attribute 'id' is longer than {MAX_ID_LENGTH} characters")
    if FORBIDDEN_KEY_CHARS.search(event_id):
        raise InvalidEvent("attribute 'id' contains / \\ # ? or control characters (not a key)")


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent("attribute 'time' must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidEvent(f"attribute 'time' is not RFC 3339: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidEvent(f"attribute 'time' has no UTC offset: {value!r}")
    return parsed


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
