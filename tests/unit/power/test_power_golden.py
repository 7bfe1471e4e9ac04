"""Golden power.* / grid.events records (tests/contract/golden, written by generate.py) still decode to
the values written down here, and the OpenADR 3 fixture means the same as the golden GridEvent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from twin.core import topics
from twin.power.adapters.openadr import parse_event
from twin.power.v1 import power_pb2 as ppb

GOLDEN = Path(__file__).parents[2] / "contract" / "golden"
FIXTURES = Path(__file__).parent / "fixtures"


def load(topic: topics.Topic, name: str):
    return topic.decode((GOLDEN / name).read_bytes())


def test_power_topics_are_registered_with_their_keys():
    assert topics.BY_NAME["power.state.v1"].message_type is ppb.PowerState
    assert topics.BY_NAME["grid.events.v1"].key == "event_id"
    assert {t.name for t in (topics.POWER_STATE, topics.POWER_ALERTS, topics.POWER_PLANS, topics.GRID_EVENTS)} <= set(
        topics.all_topic_names(include_dlq=False))
    assert "grid.events.v1.dlq" in topics.all_topic_names()


def test_golden_rack_and_site_state():
    r = load(topics.POWER_STATE, "power_state_rack_v1.bin")
    assert (r.entity_id, r.scope, r.source) == ("su1-0001", ppb.POWER_SCOPE_RACK, ppb.VALUE_SOURCE_MIXED)
    assert (r.input_power_w, r.rating_w, r.rack.measured_gpus, r.rack.modelled_gpus) == (36512.5, 50000.0, 24, 8)
    assert r.state_time.ToDatetime(tzinfo=UTC) == datetime(2025, 6, 1, 12, tzinfo=UTC)
    s = load(topics.POWER_STATE, "power_state_site_v1.bin")
    assert s.scope == ppb.POWER_SCOPE_SITE and s.site.pue == 1.0739 and s.site.ramp_w_per_s == -125.0


def test_golden_alert_and_plan():
    a = load(topics.POWER_ALERTS, "power_alert_v1.bin")
    assert (a.entity_id, a.kind, a.severity, a.threshold) == ("ups-2", ppb.ALERT_KIND_REDUNDANCY_LOST,
                                                              ppb.SEVERITY_WARNING, 250000.0)
    p = load(topics.POWER_PLANS, "curtailment_plan_v1.bin")
    assert list(p.capped_gpu_ids) == [0, 1, 2] and list(p.cap_w) == [520.5] * 3
    assert p.sources[0].kind == ppb.SOURCE_KIND_GENSET and p.paused_job_ids == ["job-0"]
    assert p.meets_limit and p.HasField("meets_at_offset_s") and p.meets_at_offset_s == 59.0


def test_golden_grid_events_and_the_openadr_fixture_agree():
    g = load(topics.GRID_EVENTS, "grid_event_v1.bin")
    ev = parse_event((FIXTURES / "openadr_import_limit.json").read_bytes())
    assert (g.event_id, g.program_id, g.event_name) == (ev.event_id, ev.program_id, ev.event_name)
    assert g.origin == ppb.GRID_EVENT_ORIGIN_OPENADR3
    assert g.modified_time.ToDatetime(tzinfo=UTC) == ev.modified
    for giv, iv in zip(g.intervals, ev.intervals, strict=True):
        assert (giv.interval_id, giv.start_time.ToDatetime(tzinfo=UTC), giv.duration_s, giv.import_limit_kw) == (
            iv.interval_id, iv.start, iv.duration_s, iv.import_limit_kw)
        assert not giv.HasField("simple_level")
    # proto3 `optional`: a SIMPLE level 0 (normal operation) is present, not "unset"
    s = load(topics.GRID_EVENTS, "grid_event_simple_level0_v1.bin")
    assert s.intervals[0].HasField("simple_level") and s.intervals[0].simple_level == 0
    assert not s.intervals[0].HasField("import_limit_kw")
