"""OpenADR 3 event objects (JSON) -> the twin's GridEvent (twin.power.domain.grid).

Accepted shape (OpenADR 3.0 ``event`` schema, the fields the twin uses; others are ignored)::

    {"id": "evt-1",                                   optional; else "<programID>/<eventName>"
     "objectType": "EVENT",                           optional; if present must be "EVENT"
     "programID": "ercot-ers-10",                     required, non-empty string
     "eventName": "shed-20MW",                        optional string
     "createdDateTime": "...", "modificationDateTime": "...",   optional ISO 8601
     "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],   optional
     "intervalPeriod": {"start": "2026-11-29T14:00:00Z", "duration": "PT30M"},
     "intervals": [{"id": 0, "intervalPeriod": {...}?, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT",
                    "values": [80000]}]}]}

* Times are ISO 8601 with a UTC offset (``Z`` or ``+hh:mm``); durations ISO 8601 (``PT30M``,
  ``P1DT2H``; ``P9999Y`` is OpenADR's "until further notice" and maps to infinity).
* An interval without its own ``intervalPeriod`` follows the previous one (the first starts at the
  event's ``start``) and lasts the event's ``duration``.
* ``IMPORT_CAPACITY_LIMIT``: one number >= 0, a site import cap in the descriptor's units (``KW``
  default; ``W`` and ``MW`` are converted to kW). ``SIMPLE``: one integer level 0..3. Other payload
  types are ignored, but an event must carry at least one of these two.

Any input that is not such an event raises ``OpenAdrRejected`` (a ValueError) whose ``field`` names
the offending JSON path and ``reason`` says why; no other exception escapes ``parse_event`` for any
input (size and nesting are bounded before and after decoding).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from twin.power.domain.grid import IMPORT_CAPACITY_LIMIT, SIMPLE, GridEvent, GridInterval

MAX_BYTES = 1 << 20          # 1 MiB of JSON per event
MAX_DEPTH = 32               # nesting of arrays/objects
MAX_INTERVALS = 1000
MAX_PAYLOADS = 32            # per interval
MAX_VALUES = 64              # per payload
MAX_ID_CHARS = 256
SIMPLE_LEVELS = range(0, 4)
UNITS_TO_KW = {"KW": 1.0, "W": 1e-3, "MW": 1e3}
INFINITE_DURATION = "P9999Y"  # OpenADR 3: "infinity"

_DURATION = re.compile(
    r"^P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
#: calendar units as fixed lengths (years 365 d, months 30 d: OpenADR events are hours long)
_DURATION_S = (365 * 86400.0, 30 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0)


class OpenAdrRejected(ValueError):
    """The input is not an acceptable OpenADR 3 event. ``field`` is the JSON path ("" = the whole
    document), ``reason`` what is wrong with it."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field or 'event'}: {reason}")


def _reject_constant(name: str) -> float:
    raise OpenAdrRejected("", f"{name} is not valid JSON")


def _check_depth(obj: Any) -> None:
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise OpenAdrRejected("", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]


def _decode(data: bytes | str | dict) -> dict:
    if isinstance(data, dict):
        obj: Any = data
    elif isinstance(data, bytes | bytearray | str):
        if len(data) > MAX_BYTES:
            raise OpenAdrRejected("", f"larger than {MAX_BYTES} bytes")
        if isinstance(data, str):
            text = data
        else:
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise OpenAdrRejected("", f"not UTF-8: {exc.reason}") from None
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except OpenAdrRejected:
            raise
        except (ValueError, RecursionError) as exc:
            raise OpenAdrRejected("", f"not JSON: {exc}") from None
    else:
        raise OpenAdrRejected("", f"expected JSON text or an object, got {type(data).__name__}")
    _check_depth(obj)
    if not isinstance(obj, dict):
        raise OpenAdrRejected("", f"an event is a JSON object, got {type(obj).__name__}")
    return obj


def _string(obj: dict, key: str, path: str, *, required: bool, max_chars: int = MAX_ID_CHARS) -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            raise OpenAdrRejected(f"{path}{key}", "required")
        return None
    v = obj[key]
    if not isinstance(v, str):
        raise OpenAdrRejected(f"{path}{key}", f"must be a string, got {type(v).__name__}")
    if required and not v.strip():
        raise OpenAdrRejected(f"{path}{key}", "must not be empty")
    if len(v) > max_chars:
        raise OpenAdrRejected(f"{path}{key}", f"longer than {max_chars} characters")
    return v


def parse_datetime(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise OpenAdrRejected(field, "must be an ISO 8601 date-time string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise OpenAdrRejected(field, f"not an ISO 8601 date-time: {value[:64]!r}") from None
    if dt.tzinfo is None:
        raise OpenAdrRejected(field, "must include a UTC offset (Z or +hh:mm)")
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise OpenAdrRejected(field, "date-time out of range") from None


def parse_duration_s(value: Any, field: str) -> float:
    """ISO 8601 duration in seconds (P9999Y = infinity)."""
    if not isinstance(value, str):
        raise OpenAdrRejected(field, "must be an ISO 8601 duration string such as PT30M")
    text = value.strip().upper()
    if text == INFINITE_DURATION:
        return math.inf
    m = _DURATION.match(text)
    if m is None:
        raise OpenAdrRejected(field, f"not an ISO 8601 duration: {value[:64]!r}")
    total = sum(float(g) * unit for g, unit in zip(m.groups(), _DURATION_S, strict=True) if g)
    if not math.isfinite(total):
        raise OpenAdrRejected(field, "duration out of range")
    return total


def _period(obj: Any, field: str) -> tuple[datetime | None, float | None]:
    if not isinstance(obj, dict):
        raise OpenAdrRejected(field, "must be an object with start and duration")
    start = parse_datetime(obj["start"], f"{field}.start") if obj.get("start") is not None else None
    dur = parse_duration_s(obj["duration"], f"{field}.duration") if obj.get("duration") is not None else None
    return start, dur


def _number(v: Any, field: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise OpenAdrRejected(field, f"must be a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:
        raise OpenAdrRejected(field, "number out of range") from None
    if not math.isfinite(f):
        raise OpenAdrRejected(field, "must be finite")
    return f


def _units(obj: dict) -> float:
    descs = obj.get("payloadDescriptors")
    if descs is None:
        return 1.0
    if not isinstance(descs, list):
        raise OpenAdrRejected("payloadDescriptors", "must be an array")
    for i, d in enumerate(descs):
        if not isinstance(d, dict):
            raise OpenAdrRejected(f"payloadDescriptors[{i}]", "must be an object")
        if d.get("payloadType") == IMPORT_CAPACITY_LIMIT and d.get("units") is not None:
            units = d["units"]
            if not isinstance(units, str) or units.upper() not in UNITS_TO_KW:
                raise OpenAdrRejected(f"payloadDescriptors[{i}].units",
                                      f"IMPORT_CAPACITY_LIMIT units must be one of {', '.join(UNITS_TO_KW)}")
            return UNITS_TO_KW[units.upper()]
    return 1.0


def parse_event(data: bytes | str | dict) -> GridEvent:
    """Decode one OpenADR 3 event. Raises OpenAdrRejected (only) when it is not acceptable."""
    try:
        return _parse(_decode(data))
    except OpenAdrRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract: nothing but OpenAdrRejected escapes
        raise OpenAdrRejected("", f"unreadable event ({type(exc).__name__})") from None


def _parse(obj: dict) -> GridEvent:
    object_type = _string(obj, "objectType", "", required=False)
    if object_type is not None and object_type != "EVENT":
        raise OpenAdrRejected("objectType", f"must be EVENT, got {object_type[:32]!r}")
    program = _string(obj, "programID", "", required=True)
    name = _string(obj, "eventName", "", required=False) or ""
    event_id = _string(obj, "id", "", required=False) or f"{program}/{name}"
    created = parse_datetime(obj["createdDateTime"], "createdDateTime") if obj.get("createdDateTime") else None
    modified = (parse_datetime(obj["modificationDateTime"], "modificationDateTime")
                if obj.get("modificationDateTime") else None)
    ev_start, ev_dur = (None, None)
    if obj.get("intervalPeriod") is not None:
        ev_start, ev_dur = _period(obj["intervalPeriod"], "intervalPeriod")
    to_kw = _units(obj)
    ivs = obj.get("intervals")
    if not isinstance(ivs, list) or not ivs:
        raise OpenAdrRejected("intervals", "required: a non-empty array")
    if len(ivs) > MAX_INTERVALS:
        raise OpenAdrRejected("intervals", f"more than {MAX_INTERVALS} intervals")
    out: list[GridInterval] = []
    next_start = ev_start
    seen_ids: set[int] = set()
    for i, iv in enumerate(ivs):
        path = f"intervals[{i}]"
        if not isinstance(iv, dict):
            raise OpenAdrRejected(path, "must be an object")
        iid = iv.get("id")
        if isinstance(iid, bool) or not isinstance(iid, int):
            raise OpenAdrRejected(f"{path}.id", "required: an integer")
        if not -(2**31) <= iid < 2**31:
            raise OpenAdrRejected(f"{path}.id", "out of the 32-bit range")
        if iid in seen_ids:
            raise OpenAdrRejected(f"{path}.id", f"duplicate interval id {iid}")
        seen_ids.add(iid)
        start, dur = (None, None)
        if iv.get("intervalPeriod") is not None:
            start, dur = _period(iv["intervalPeriod"], f"{path}.intervalPeriod")
        start = start or next_start
        dur = dur if dur is not None else ev_dur
        if start is None:
            raise OpenAdrRejected(f"{path}.intervalPeriod.start", "no start here or in the event's intervalPeriod")
        if dur is None:
            raise OpenAdrRejected(f"{path}.intervalPeriod.duration",
                                  "no duration here or in the event's intervalPeriod")
        if dur <= 0:
            raise OpenAdrRejected(f"{path}.intervalPeriod.duration", "must be positive")
        try:
            next_start = start + timedelta(seconds=dur) if math.isfinite(dur) else None
        except OverflowError:
            next_start = None
        payloads = iv.get("payloads")
        if not isinstance(payloads, list) or not payloads:
            raise OpenAdrRejected(f"{path}.payloads", "required: a non-empty array")
        if len(payloads) > MAX_PAYLOADS:
            raise OpenAdrRejected(f"{path}.payloads", f"more than {MAX_PAYLOADS} payloads")
        limit_kw: float | None = None
        level: int | None = None
        for k, pl in enumerate(payloads):
            ppath = f"{path}.payloads[{k}]"
            if not isinstance(pl, dict):
                raise OpenAdrRejected(ppath, "must be an object")
            ptype = pl.get("type")
            if not isinstance(ptype, str) or not ptype:
                raise OpenAdrRejected(f"{ppath}.type", "required: a string")
            values = pl.get("values")
            if not isinstance(values, list) or not values:
                raise OpenAdrRejected(f"{ppath}.values", "required: a non-empty array")
            if len(values) > MAX_VALUES:
                raise OpenAdrRejected(f"{ppath}.values", f"more than {MAX_VALUES} values")
            if ptype == IMPORT_CAPACITY_LIMIT:
                if len(values) != 1:
                    raise OpenAdrRejected(f"{ppath}.values", "IMPORT_CAPACITY_LIMIT takes exactly one value")
                v = _number(values[0], f"{ppath}.values[0]") * to_kw
                if v < 0:
                    raise OpenAdrRejected(f"{ppath}.values[0]", "an import limit cannot be negative")
                limit_kw = v
            elif ptype == SIMPLE:
                if len(values) != 1:
                    raise OpenAdrRejected(f"{ppath}.values", "SIMPLE takes exactly one value")
                v = values[0]
                if isinstance(v, bool) or not isinstance(v, int) or v not in SIMPLE_LEVELS:
                    raise OpenAdrRejected(f"{ppath}.values[0]", "SIMPLE level must be an integer 0..3")
                level = int(v)
        out.append(GridInterval(interval_id=iid, start=start, duration_s=dur, import_limit_kw=limit_kw,
                                simple_level=level))
    if all(iv.import_limit_kw is None and iv.simple_level is None for iv in out):
        raise OpenAdrRejected("intervals", "no IMPORT_CAPACITY_LIMIT or SIMPLE payload: nothing for the twin to act on")
    return GridEvent(event_id=event_id, program_id=program, event_name=name, intervals=tuple(out),
                     created=created, modified=modified)
