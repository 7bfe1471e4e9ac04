"""OpenADR 3 event parser: fixtures decode to GridEvents; anything else is OpenAdrRejected naming the field."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin.power.adapters.openadr import MAX_BYTES, OpenAdrRejected, parse_duration_s, parse_event

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_import_capacity_limit_event_decodes():
    ev = parse_event((FIXTURES / "openadr_import_limit.json").read_bytes())
    assert (ev.event_id, ev.program_id, ev.event_name) == ("evt-ercot-0001", "ercot-ers-10", "shed-20MW")
    assert ev.modified == datetime(2026, 11, 29, 13, 41, tzinfo=UTC)
    a, b = ev.intervals
    assert (a.interval_id, a.start, a.duration_s, a.import_limit_kw) == (0, datetime(2026, 11, 29, 14, tzinfo=UTC),
                                                                          1800.0, 80000.0)
    assert b.start == datetime(2026, 11, 29, 14, 30, tzinfo=UTC) and b.import_limit_kw == 90000.5  # consecutive
    assert ev.limit_at(datetime(2026, 11, 29, 14, 45, tzinfo=UTC)) == 90000.5
    assert ev.limit_at(datetime(2026, 11, 29, 15, 0, 1, tzinfo=UTC)) is None


def test_simple_levels_offsets_and_own_interval_periods():
    ev = parse_event(fixture("openadr_simple.json"))
    assert ev.event_id == "utility-dr/evening-peak"
    assert [iv.simple_level for iv in ev.intervals] == [1, 3]
    assert ev.intervals[0].start == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
    assert ev.intervals[1].start == datetime(2026, 11, 30, 0, 30, tzinfo=UTC)
    assert ev.intervals[1].duration_s == 900.0


def test_units_and_until_further_notice():
    ev = parse_event(json.dumps(fixture("openadr_limit_mw_until_notice.json")))
    iv = ev.intervals[0]
    assert iv.import_limit_kw == 75_000.0 and math.isinf(iv.duration_s)
    assert ev.limit_at(datetime(2030, 1, 1, tzinfo=UTC)) == 75_000.0


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT30M", 1800), ("PT1H", 3600), ("P1DT2H", 93600), ("PT0.5S", 0.5), ("P1W", 604800), ("PT10M30S", 630),
])
def test_iso8601_durations(text, seconds):
    assert parse_duration_s(text, "d") == seconds


@pytest.mark.parametrize(("mutate", "field", "reason"), [
    (lambda e: e.pop("programID"), "programID", "required"),
    (lambda e: e.update(programID=""), "programID", "must not be empty"),
    (lambda e: e.update(objectType="PROGRAM"), "objectType", "must be EVENT"),
    (lambda e: e.update(intervals=[]), "intervals", "non-empty"),
    (lambda e: e["intervalPeriod"].update(start="2026-11-29T14:00:00"), "intervalPeriod.start", "UTC offset"),
    (lambda e: e["intervalPeriod"].update(start="tomorrow"), "intervalPeriod.start", "ISO 8601"),
    (lambda e: e["intervalPeriod"].update(duration="30 minutes"), "intervalPeriod.duration", "ISO 8601 duration"),
    (lambda e: e["intervalPeriod"].update(duration="PT0S"), "intervals[0].intervalPeriod.duration", "positive"),
    (lambda e: e.pop("intervalPeriod"), "intervals[0].intervalPeriod.start", "no start"),
    (lambda e: e["intervals"][0].update(id="zero"), "intervals[0].id", "integer"),
    (lambda e: e["intervals"][1].update(id=0), "intervals[1].id", "duplicate"),
    (lambda e: e["intervals"][0]["payloads"][0].update(values=[-5]), "intervals[0].payloads[0].values[0]", "negative"),
    (lambda e: e["intervals"][0]["payloads"][0].update(values=["80000"]), "intervals[0].payloads[0].values[0]",
     "number"),
    (lambda e: e["intervals"][0]["payloads"][0].update(values=[True]), "intervals[0].payloads[0].values[0]", "number"),
    (lambda e: e["intervals"][0]["payloads"][0].update(values=[1, 2]), "intervals[0].payloads[0].values", "exactly one"),
    (lambda e: e["intervals"][0]["payloads"][0].update(type="SIMPLE", values=[4]), "intervals[0].payloads[0].values[0]",
     "0..3"),
    (lambda e: e["intervals"][0].update(payloads=[]), "intervals[0].payloads", "non-empty"),
    (lambda e: e["payloadDescriptors"][0].update(units="GW"), "payloadDescriptors[0].units", "units"),
    (lambda e: [iv.update(payloads=[{"type": "PRICE", "values": [1]}]) for iv in e["intervals"]], "intervals",
     "nothing for the twin"),
])
def test_rejections_name_the_field(mutate, field, reason):
    e = fixture("openadr_import_limit.json")
    mutate(e)
    with pytest.raises(OpenAdrRejected, match=reason) as info:
        parse_event(json.dumps(e))
    assert info.value.field == field


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b"null", b"42", b"\xff\xfe", b'{"programID": NaN}', b'{"a": Infinity}',
    b"[" * 5000 + b"]" * 5000, b'{"x":' * 40 + b"1" + b"}" * 40, b"1e999999", b" " * (MAX_BYTES + 1),
    '{"programID": "p", "intervals": [{"id": 1e400, "payloads": []}]}', 12345, None, ["a"],
])
def test_garbage_is_rejected_never_crashes(data):
    with pytest.raises(OpenAdrRejected):
        parse_event(data)


def _random_json(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 5 else [])
    k = rng.choice(kinds)
    if k == "int":
        return rng.choice([0, 1, -1, 3, 4, 2**31, 2**70, rng.randint(-10**6, 10**6)])
    if k == "float":
        return rng.choice([0.5, -1e308, 1e308, rng.uniform(-1e6, 1e6)])
    if k == "str":
        return rng.choice(["", "PT30M", "P9999Y", "2026-11-29T14:00:00Z", "SIMPLE", "IMPORT_CAPACITY_LIMIT", "x" * 300,
                           "\ud800", "9999-12-31T23:59:59-23:59", "P99999999999999999999Y"])
    if k == "bool":
        return rng.random() < 0.5
    if k == "null":
        return None
    if k == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["id", "programID", "eventName", "intervalPeriod", "start", "duration", "intervals", "payloads", "type",
            "values", "payloadDescriptors", "payloadType", "units", "objectType", "createdDateTime"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def test_fuzzed_events_only_ever_raise_openadr_rejected():
    rng = random.Random(9)
    base = fixture("openadr_import_limit.json")
    for _ in range(3000):
        doc = json.loads(json.dumps(base))
        # replace one random field somewhere with random JSON
        target = doc
        path = rng.choice([["programID"], ["intervalPeriod"], ["intervalPeriod", "start"], ["intervalPeriod", "duration"],
                           ["intervals"], ["intervals", 0], ["intervals", 0, "payloads"], ["intervals", 0, "id"],
                           ["intervals", 1, "payloads", 0, "values"], ["payloadDescriptors"], ["id"]])
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = _random_json(rng)
        try:
            ev = parse_event(json.dumps(doc) if rng.random() < 0.5 else doc)
        except OpenAdrRejected as exc:
            assert isinstance(exc.reason, str) and exc.reason
        else:
            assert ev.intervals


def test_a_dict_event_and_its_json_agree():
    e = fixture("openadr_import_limit.json")
    assert parse_event(e) == parse_event(json.dumps(e).encode())
    later = datetime(2026, 11, 29, 14, tzinfo=UTC) + timedelta(minutes=1)
    assert parse_event(e).limit_at(later) == 80000.0
