"""A strict parser of the Prometheus text exposition format, version 0.0.4.

Pure: text (or UTF-8 bytes) in, samples out; no I/O, no dependency on prometheus_client.

Grammar accepted (one item per line, lines end with '\\n'; '\\r\\n' is tolerated):

    # HELP <metric_name> <docstring>        docstring escapes: \\\\ and \\n
    # TYPE <metric_name> counter|gauge|histogram|summary|untyped
    # <anything else>                       a comment, ignored
    <metric_name>[{<label>="<value>"[,<label>="<value>"]*[,]}] <value> [<timestamp_ms>]
    <empty line>                            ignored

* metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names ``[a-zA-Z_][a-zA-Z0-9_]*`` and must
  not start with ``__`` (reserved) nor repeat inside one label set;
* label values are double-quoted; the only escapes are ``\\\\``, ``\\"`` and ``\\n``, anything else
  is a "bad escape";
* values are decimal/exponent floats or ``NaN`` / ``+Inf`` / ``-Inf`` / ``Inf`` (case-insensitive,
  as Go's ``ParseFloat``); Python-only spellings such as ``1_000`` or ``infinity`` are rejected;
* the optional timestamp is an integer number of milliseconds since the epoch;
* blanks (spaces and tabs) separate tokens; leading/trailing blanks are tolerated.

Strictness beyond the grammar:

* the same series (metric name + label set) twice is an error ("duplicate series");
* at most one HELP and one TYPE per metric name, and a TYPE must come before the name's samples;
* samples of one metric name need NOT be contiguous: real exporters emit that (the DCGM MIG
  scrape in shared/validation/feeds/dcgm/a100-mig-profiling.prom repeats names after a blank line),
  and Prometheus itself accepts it.

Every malformed line is reported with its 1-based line number. ``parse_exposition`` raises
``ExpositionError`` (holding every ``LineError``) unless called with ``collect_errors=True``, in
which case the good lines are returned with the errors beside them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Exposition",
    "ExpositionError",
    "LineError",
    "Sample",
    "parse_exposition",
]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESTAMP = re.compile(r"-?\d+")
_BLANKS = " \t"
_META = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]+([^ \t]+)(?:[ \t]+(.*))?$")
_META_KEYWORD = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]*$")
_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
# Sample-name suffixes that belong to a histogram/summary family declared under the base name.
_FAMILY_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None = None
    line: int = 0  # 1-based line number in the exposition

    @property
    def series_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.labels.items()))


@dataclass(frozen=True, slots=True)
class LineError:
    line: int  # 1-based
    message: str
    text: str  # the offending line (truncated to 200 characters)

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}: {self.text!r}"


class ExpositionError(ValueError):
    """The exposition has malformed lines; ``errors`` lists every one of them."""

    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"invalid Prometheus exposition: {errors[0]}{more}")


@dataclass
class Exposition:
    samples: list[Sample] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)  # metric name -> TYPE
    helps: dict[str, str] = field(default_factory=dict)  # metric name -> HELP docstring
    errors: list[LineError] = field(default_factory=list)  # only with collect_errors=True

    def by_name(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]

    def names(self) -> list[str]:
        return list(dict.fromkeys(s.name for s in self.samples))


class _LineFault(Exception):
    pass


def parse_exposition(data: str | bytes, *, collect_errors: bool = False) -> Exposition:
    """Parse a whole exposition. Raises ExpositionError unless ``collect_errors``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            line = bytes(data)[: exc.start].count(b"\n") + 1
            err = LineError(line, f"not valid UTF-8 ({exc.reason})", "")
            if collect_errors:
                return Exposition(errors=[err])
            raise ExpositionError([err]) from exc
    else:
        text = data
    out = Exposition()
    seen_series: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    sampled_families: set[str] = set()
    for lineno, raw in _lines(text):
        line = raw.strip(_BLANKS)
        if not line:
            continue
        try:
            if line.startswith("#"):
                _parse_comment(line, out, sampled_families)
                continue
            sample = _parse_sample(line, lineno)
        except _LineFault as fault:
            out.errors.append(LineError(lineno, str(fault), raw[:200]))
            continue
        key = sample.series_key
        if key in seen_series:
            out.errors.append(LineError(lineno, f"duplicate series (first seen on line {seen_series[key]})", raw[:200]))
            continue
        seen_series[key] = lineno
        sampled_families.add(sample.name)
        base = _family_base(sample.name, out.types)
        if base != sample.name:
            sampled_families.add(base)
        out.samples.append(sample)
    if out.errors and not collect_errors:
        raise ExpositionError(out.errors)
    return out


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for i, line in enumerate(text.split("\n"), start=1):
        yield i, line[:-1] if line.endswith("\r") else line


def _family_base(name: str, types: dict[str, str]) -> str:
    for suffix in _FAMILY_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if types.get(base) in ("histogram", "summary"):
                return base
    return name


def _parse_comment(line: str, out: Exposition, sampled: set[str]) -> None:
    m = _META.match(line)
    if not m:
        if _META_KEYWORD.match(line):
            raise _LineFault("# HELP/# TYPE without a metric name")
        return  # an ordinary comment
    keyword, name, tail = m.group(1), m.group(2), m.group(3) or ""
    if not _METRIC_NAME.fullmatch(name):
        raise _LineFault(f"invalid metric name {name!r} in # {keyword}")
    if keyword == "HELP":
        if name in out.helps:
            raise _LineFault(f"second HELP for {name}")
        out.helps[name] = _unescape_help(tail)
        return
    kind = tail.strip(_BLANKS)
    if kind not in _TYPES:
        raise _LineFault(f"unknown metric type {kind!r} for {name} (expected one of {sorted(_TYPES)})")
    if name in out.types:
        raise _LineFault(f"second TYPE for {name}")
    if name in sampled or (kind in ("histogram", "summary") and any(name + x in sampled for x in _FAMILY_SUFFIXES)):
        raise _LineFault(f"TYPE for {name} after its samples")
    out.types[name] = kind


def _unescape_help(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "\\n":
            out.append("\\" if text[i + 1] == "\\" else "\n")
            i += 2
            continue
        out.append(ch)  # HELP is lenient: an unknown escape stays as written (as in Prometheus)
        i += 1
    return "".join(out)


def _parse_sample(line: str, lineno: int) -> Sample:
    m = _METRIC_NAME.match(line)
    if not m:
        raise _LineFault("expected a metric name")
    name = m.group(0)
    pos = m.end()
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos + 1)
    elif pos < len(line) and line[pos] not in _BLANKS:
        raise _LineFault(f"invalid character {line[pos]!r} in metric name")
    tokens = line[pos:].split()
    if not tokens:
        raise _LineFault("missing value (truncated line?)")
    if len(tokens) > 2:
        raise _LineFault(f"unexpected text after the timestamp: {' '.join(tokens[2:])!r}")
    if line[pos] not in _BLANKS:
        raise _LineFault("expected a blank between the series and its value")
    value = _parse_value(tokens[0])
    ts: int | None = None
    if len(tokens) == 2:
        if not _TIMESTAMP.fullmatch(tokens[1]):
            raise _LineFault(f"invalid timestamp {tokens[1]!r} (expected integer milliseconds)")
        ts = int(tokens[1])
    return Sample(name, labels, value, ts, lineno)


def _parse_labels(line: str, pos: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    n = len(line)
    while True:
        while pos < n and line[pos] in _BLANKS:
            pos += 1
        if pos >= n:
            raise _LineFault("unterminated label set (truncated line?)")
        if line[pos] == "}":
            return labels, pos + 1
        m = _LABEL_NAME.match(line, pos)
        if not m:
            raise _LineFault(f"invalid label name at column {pos + 1}")
        lname = m.group(0)
        if lname.startswith("__"):
            raise _LineFault(f"label name {lname!r} uses the reserved '__' prefix")
        if lname in labels:
            raise _LineFault(f"label {lname!r} appears twice")
        pos = m.end()
        while pos < n and line[pos] in _BLANKS:
            pos += 1
        if pos >= n or line[pos] != "=":
            raise _LineFault(f"expected '=' after label {lname!r}")
        pos += 1
        while pos < n and line[pos] in _BLANKS:
            pos += 1
        if pos >= n or line[pos] != '"':
            raise _LineFault(f"expected '\"' to open the value of label {lname!r}")
        value, pos = _parse_label_value(line, pos + 1, lname)
        labels[lname] = value
        while pos < n and line[pos] in _BLANKS:
            pos += 1
        if pos < n and line[pos] == ",":
            pos += 1
            continue
        if pos < n and line[pos] == "}":
            return labels, pos + 1
        if pos >= n:
            raise _LineFault("unterminated label set (truncated line?)")
        raise _LineFault(f"expected ',' or '}}' after label {lname!r}, got {line[pos]!r}")


def _parse_label_value(line: str, pos: int, lname: str) -> tuple[str, int]:
    out: list[str] = []
    n = len(line)
    while pos < n:
        ch = line[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\":
            if pos + 1 >= n:
                raise _LineFault(f"unterminated value of label {lname!r} (truncated line?)")
            esc = line[pos + 1]
            if esc == "\\":
                out.append("\\")
            elif esc == '"':
                out.append('"')
            elif esc == "n":
                out.append("\n")
            else:
                raise _LineFault(f"bad escape '\\{esc}' in value of label {lname!r} (only \\\\, \\\" and \\n)")
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise _LineFault(f"unterminated value of label {lname!r} (truncated line?)")


def _parse_value(token: str) -> float:
    low = token.lower()
    if low == "nan":
        return math.nan
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if not _FLOAT.fullmatch(token):
        raise _LineFault(f"invalid sample value {token!r}")
    return float(token)
