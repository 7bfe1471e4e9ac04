"""CloudEvents binary-mode envelope carried in Kafka headers (DESIGN §4).

The Kafka value is the serialized protobuf; headers carry `ce_id`, `ce_type` (the proto's full
name), `ce_source`, `ce_time`, `ce_specversion` and `content-type`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

CONTENT_TYPE = "application/protobuf"
SPEC_VERSION = "1.0"

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """Headers do not form a valid CloudEvents binary-mode envelope."""


@dataclass(frozen=True)
class Envelope:
    id: str
    type: str
    source: str
    time: datetime

    def to_headers(self) -> Headers:
        return [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]

    @classmethod
    def from_headers(cls, headers: Headers | None) -> Envelope:
        found = {k: v for k, v in (headers or [])}
        missing = [k for k in ("ce_id", "ce_type", "ce_source", "ce_time") if k not in found]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        try:
            time = datetime.fromisoformat(found["ce_time"].decode())
            return cls(found["ce_id"].decode(), found["ce_type"].decode(), found["ce_source"].decode(), time)
        except (UnicodeDecodeError, ValueError) as exc:
            raise EnvelopeError(f"malformed CloudEvents header: {exc}") from exc


def new_envelope(ce_type: str, source: str, time: datetime | None = None, id: str | None = None) -> Envelope:
    return Envelope(id or str(uuid.uuid4()), ce_type, source, time or datetime.now(UTC))


def header(headers: Headers | None, name: str) -> bytes | None:
    for k, v in headers or []:
        if k == name:
            return v
    return None
