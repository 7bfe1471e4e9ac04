"""Readings, Redfish MetricValue strings and Edm.DateTimeOffset timestamps → checked floats / datetimes."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


class _Bad(Exception):
    pass


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"{what} is not a number: {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise _Bad(f"{what} is not finite: {value!r}")
    return v


def _not_a_string(doc: Mapping[str, Any], *props: str) -> str | None:
    """The reason for the first of `props` present but not a string (Redfish enums and names, which the parsers
    look up in their tables: a list or object there would not even hash), else None."""
    for prop in props:
        value = doc.get(prop)
        if value is not None and not isinstance(value, str):
            return f"{prop} must be a string, got {type(value).__name__}"
    return None


def _reading(doc: Mapping[str, Any], prop: str) -> float | None:
    """``doc[prop].Reading`` as a float; None when the property is absent or has no Reading."""
    obj = doc.get(prop)
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise _Bad(f"{prop} is not an object")
    if obj.get("Reading") is None:
        return None
    return _number(obj["Reading"], f"{prop}.Reading")


_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: Any) -> datetime:
    """ISO 8601 (Redfish Edm.DateTimeOffset) → aware UTC datetime; fractions beyond µs are truncated."""
    if not isinstance(text, str):
        raise _Bad(f"timestamp is not a string: {text!r}")
    m = _TS.fullmatch(text.strip())
    if not m:
        raise _Bad(f"timestamp {text!r} is not ISO 8601 with an offset")
    y, mo, d, h, mi, s, frac, off = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    except ValueError as exc:
        raise _Bad(f"timestamp {text!r}: {exc}") from exc
    if off != "Z":
        hours, minutes = int(off[1:3]), int(off[4:6])
        if hours > 23 or minutes > 59:   # an offset is under a day (ISO 8601; Python's tzinfo bound too)
            raise _Bad(f"timestamp {text!r}: UTC offset {off} out of range")
        try:
            dt -= (1 if off[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes)
        except OverflowError:   # 9999-12-31T23:59:59-01:00 is past what a datetime holds once in UTC
            raise _Bad(f"timestamp {text!r}: outside the datetime range in UTC") from None
    return dt


def _metric_value(value: Any) -> float:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value.strip()):
            raise _Bad(f"MetricValue {value!r} is not a decimal number")
        v = float(value)
        if not math.isfinite(v):
            raise _Bad(f"MetricValue {value!r} is not finite")
        return v
    if value is None:
        raise _Bad("MetricValue is null")
    # The schema types MetricValue as a string; a bare JSON number is unambiguous, so it is accepted.
    return _number(value, "MetricValue")
