"""CloudEvents binary-mode envelope carried in Kafka headers (DESIGN §4).

The Kafka value is the serialized protobuf; headers carry `ce_id`, `ce_type` (the proto's full
name), `ce_source`, `ce_time`, `ce_specversion` and `content-type`.
"""

from __future__ import annotations

import time as _time
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
        return envelope_headers(self.id.encode(), self.type.encode(), self.source.encode(), iso_time(self.time))

    @classmethod
    def from_headers(cls, headers: Headers | None) -> Envelope:
        return cls.from_pairs([(k, v) for k, v in (headers or [])])

    @classmethod
    def from_pairs(cls, headers: list[tuple[str, bytes]]) -> Envelope:
        """`from_headers` of headers already in (key, value) pairs (the consumer's decode_record has them):
        the same checks and error texts, without the frozen dataclass's per-field __setattr__ calls."""
        found = dict(headers)   # the last of a repeated header counts, as in from_headers
        if not found.keys() >= _REQUIRED:
            missing = [k for k in ("ce_id", "ce_type", "ce_source", "ce_time") if k not in found]
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        try:
            time = datetime.fromisoformat(found["ce_time"].decode())
            env = object.__new__(cls)
            # the generated __init__ stores exactly these four fields (no __post_init__, no defaults); the
            # order of the decodes is that of the old constructor call, so is the first error reported
            env.__dict__.update(id=found["ce_id"].decode(), type=found["ce_type"].decode(),
                                source=found["ce_source"].decode(), time=time)
            return env
        except (UnicodeDecodeError, ValueError) as exc:
            raise EnvelopeError(f"malformed CloudEvents header: {exc}") from exc


_REQUIRED = frozenset(("ce_id", "ce_type", "ce_source", "ce_time"))
# The constant headers, encoded once (every producer sends them with each record).
_SPEC_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_HEADER = ("content-type", CONTENT_TYPE.encode())


def envelope_headers(id: bytes, type: bytes, source: bytes, time: bytes) -> Headers:
    """`Envelope.to_headers` from the encoded values (the producer keeps type and source encoded)."""
    return [_SPEC_HEADER, ("ce_id", id), ("ce_type", type), ("ce_source", source), ("ce_time", time),
            _CONTENT_HEADER]


_last_time: tuple[datetime | None, bytes] = (None, b"")


def iso_time(time: datetime) -> bytes:
    """`time.isoformat().encode()`, the last answer kept: a producer often stamps a whole poll with one time.
    By identity: equal datetimes of other time zones have other ISO texts."""
    global _last_time
    last, text = _last_time
    if time is not last:
        text = time.isoformat().encode()
        _last_time = (time, text)
    return text


_last_second: tuple[int, bytes] = (-1, b"")


def now_iso() -> bytes:
    """`datetime.now(UTC).isoformat().encode()` at a quarter of its cost: the date and time of day are
    formatted once per second; the microseconds (left out when 0, as isoformat does) and the UTC offset
    ("+00:00", isoformat of UTC) are appended. Microseconds are those of the clock in ns, floored."""
    global _last_second
    second, micros = divmod(_time.time_ns() // 1000, 1_000_000)
    last, prefix = _last_second
    if second != last:
        prefix = datetime.fromtimestamp(second, UTC).isoformat()[:-6].encode()   # "YYYY-MM-DDTHH:MM:SS"
        _last_second = (second, prefix)
    return b"%b.%06d+00:00" % (prefix, micros) if micros else prefix + b"+00:00"


def new_envelope(ce_type: str, source: str, time: datetime | None = None, id: str | None = None) -> Envelope:
    return Envelope(id or str(uuid.uuid4()), ce_type, source, time or datetime.now(UTC))


def header(headers: Headers | None, name: str) -> bytes | None:
    for k, v in headers or []:
        if k == name:
            return v
    return None
