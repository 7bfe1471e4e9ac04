"""power.alerts.v1 in the jobs twin: a rack alert flags the jobs on the rack, and the power twin's clear
(``cleared``) removes the flag at once instead of after JOBS_ALERT_TTL_S -- only the clear of that rack and kind,
and only one no older than the alert."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from test_jobs_dirty import setup  # same directory (rootdir-relative import)

from twin.jobs.adapters.codec import rack_alert
from twin.jobs.adapters.stream import AlertsHandler
from twin.jobs.live import RackAlert, RackClear
from twin.power.v1 import power_pb2 as pb


def _msg(t: float, *, entity: str = "su1-0004", kind: int = pb.ALERT_KIND_REDUNDANCY_LOST,
         scope: int = pb.POWER_SCOPE_RACK, cleared: bool = False, alert_id: str = "a1") -> pb.PowerAlert:
    m = pb.PowerAlert(alert_id=alert_id, site_id="su-h100", entity_id=entity, scope=scope, kind=kind,
                      severity=pb.SEVERITY_CRITICAL, message=f"rack {entity} runs on one feed", cleared=cleared)
    m.alert_time.FromSeconds(int(t))
    return m


def _deliver(eng, clock, *msgs: pb.PowerAlert, dt: float = 1.0) -> list[str]:
    """Hand the messages to the jobs twin's power.alerts.v1 handler; the jobs whose state it publishes."""
    clock.t += dt
    out: list[str] = []
    orig = eng._emit

    async def capture(states, recs):
        out.extend(s.job_id for s in states)
        await orig(states, recs)

    eng._emit = capture
    handler = AlertsHandler(eng, rack_alert, eng.twin.add_rack_alert)
    result = asyncio.run(handler([SimpleNamespace(message=m, headers=[], timestamp_ms=int(clock.t * 1000)) for m in msgs]))
    eng._emit = orig
    assert result.rejected == []
    return sorted(out)


def _power_flags(twin, job_id: str) -> list[tuple[str, str]]:
    return [(f.kind, f.entity_id) for f in twin.jobs[job_id].flags if f.kind == "power_cap"]


def test_decoding_a_power_clear():
    clear = rack_alert(_msg(1_800_000_100, cleared=True), 1_800_000_105.0)
    assert clear == RackClear("su1-0004", "redundancy_lost", 1_800_000_100.0)
    raised = rack_alert(_msg(1_800_000_090), 1_800_000_105.0)
    assert isinstance(raised, RackAlert) and raised.raised_s == 1_800_000_090.0 and raised.critical
    # a PDU's clear is decoded with its scope (the twin maps the PDU to its racks); a site alert concerns no rack
    assert rack_alert(_msg(1_800_000_100, entity="pdu-1", scope=pb.POWER_SCOPE_PDU, cleared=True), 0.0) \
        == RackClear("pdu-1", "redundancy_lost", 1_800_000_100.0, scope="pdu")
    assert rack_alert(_msg(1_800_000_100, entity="su-h100", scope=pb.POWER_SCOPE_SITE,
                           kind=pb.ALERT_KIND_RAMP_TOO_FAST), 0.0) is None


def test_a_power_clear_unflags_the_job_at_once():
    twin, eng, clock, _ = setup()
    assert _deliver(eng, clock, _msg(clock.t)) == ["k"]                  # k runs on su1-0004
    assert _power_flags(twin, "k") == [("power_cap", "su1-0004")]
    assert any(r.kind == "checkpoint_now" for r in twin.jobs["k"].recommendations)
    # a clear older than the alert (out of order), of another kind, or of another rack: the flag stays
    assert _deliver(eng, clock, _msg(clock.t - 60, cleared=True, alert_id="c0")) == []
    assert _deliver(eng, clock, _msg(clock.t, kind=pb.ALERT_KIND_OVER_THRESHOLD, cleared=True, alert_id="c1")) == []
    assert _deliver(eng, clock, _msg(clock.t, entity="su1-0006", cleared=True, alert_id="c2")) == []
    assert _power_flags(twin, "k") == [("power_cap", "su1-0004")]
    # the matching clear: the flag goes with the next refresh, long before the alert time-to-live
    assert clock.t - 1_800_000_010 < twin.settings.alert_ttl_s
    assert _deliver(eng, clock, _msg(clock.t, cleared=True, alert_id="c3")) == ["k"]
    assert _power_flags(twin, "k") == [] and twin.rack_alerts == {}
    assert not any(r.kind == "checkpoint_now" for r in twin.jobs["k"].recommendations)
    # the same clear again (a replay) changes nothing; the alert coming back flags the job again
    assert _deliver(eng, clock, _msg(clock.t, cleared=True, alert_id="c3")) == []
    assert _deliver(eng, clock, _msg(clock.t, alert_id="a2")) == ["k"]
    assert _power_flags(twin, "k") == [("power_cap", "su1-0004")]


def test_without_a_clear_the_time_to_live_still_lifts_the_flag():
    twin, eng, clock, _ = setup()
    assert _deliver(eng, clock, _msg(clock.t)) == ["k"]
    assert "k" in _deliver(eng, clock, dt=twin.settings.alert_ttl_s)     # the safety net (all republish too)
    assert _power_flags(twin, "k") == []
