"""Power alerts that clear: an alert goes out when its condition starts and once more, ``cleared``, when it
ends (twin.core.alert_state.transitions, SiteStage, the codec and both stream stages, without a broker)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from twin.core import topics
from twin.core.alert_state import transitions
from twin.core.facility import load_facility_spec
from twin.power.adapters import codec
from twin.power.adapters.codec import SiteIndex
from twin.power.domain.alerts import Alert
from twin.power.live import MEASURED, RackStage, RackUpdate, SiteStage
from twin.power.site import build_site_model
from twin.power.v1 import power_pb2 as pb


@pytest.fixture(scope="module")
def su():
    return build_site_model(load_facility_spec("dgx-h100-su"))


def test_transitions_raise_clear_once_and_raise_again():
    w = {("pdu-1", "over_threshold", "warning"): "w"}
    c = {("pdu-1", "over_threshold", "critical"): "c"}
    assert transitions({}, w) == (["w"], [])                     # raised
    assert transitions(w, w) == ([], [])                          # still in force: nothing
    assert transitions(w, {}) == ([], ["w"])                      # ended: one clear, with what was raised
    assert transitions({}, {}) == ([], [])                        # ... and not again
    assert transitions({}, w) == (["w"], [])                      # the condition comes back: raised again
    # a warning that became critical is raised again, and is no clear (the entity and kind stay in force)
    assert transitions(w, c) == (["c"], [])
    # two severities of one entity and kind at once: one clear when both end, none when only one does
    both = w | c
    assert transitions(both, w) == ([], [])
    assert transitions(both, {}) == ([], ["c"])
    # other entities and kinds are independent
    other = {("ups-1", "redundancy_lost", "warning"): "u"}
    assert transitions(both | other, other) == ([], ["c"])
    assert transitions(both | other, w) == ([], ["u"])


def updates(su, t: float, rack0_w: float) -> list[RackUpdate]:
    return [RackUpdate(r, t, rack0_w if r == 0 else 30e3, MEASURED) for r in range(su.network.n_racks)]


def keys(alerts: list[Alert]) -> list[tuple[str, str, str]]:
    return sorted((a.entity_id, a.kind, a.severity) for a in alerts)


def test_site_stage_clears_a_pdu_back_under_its_threshold(su):
    stage = SiteStage(su)
    assert keys(stage.apply(updates(su, 1.0, 30e3)).new_alerts) == []
    res = stage.apply(updates(su, 2.0, 45e3))                     # pdu-1 at 90 % of its rating
    assert ("pdu-1", "over_threshold", "warning") in keys(res.new_alerts) and res.cleared_alerts == []
    res = stage.apply(updates(su, 3.0, 46e3))                     # still over: nothing new, nothing cleared
    assert (res.new_alerts, res.cleared_alerts) == ([], [])
    res = stage.apply(updates(su, 4.0, 30e3))                     # back under: cleared once
    assert res.new_alerts == [] and keys(res.cleared_alerts) == [("pdu-1", "over_threshold", "warning")]
    assert res.cleared_alerts[0].scope == "pdu"
    res = stage.apply(updates(su, 5.0, 31e3))                     # ... and not again
    assert (res.new_alerts, res.cleared_alerts) == ([], [])
    res = stage.apply(updates(su, 6.0, 45e3))                     # re-raised after the clear
    assert ("pdu-1", "over_threshold", "warning") in keys(res.new_alerts)
    res = stage.apply(updates(su, 7.0, 55e3))                     # escalates: critical raised, no clear
    assert ("pdu-1", "over_threshold", "critical") in keys(res.new_alerts) and res.cleared_alerts == []
    res = stage.apply(updates(su, 8.0, 30e3))                     # ends: one clear, at the last severity
    assert keys(res.cleared_alerts) == [("pdu-1", "over_threshold", "critical")]


def every_rack(su, t: float, rack_w: float) -> list[RackUpdate]:
    return [RackUpdate(r, t, rack_w, MEASURED) for r in range(su.network.n_racks)]


def test_a_ramp_alert_is_judged_on_minute_averages_and_clears_when_they_settle_not_on_a_same_tick_reevaluation(su):
    # feeds allow 2 kW/s: 120 kW/min. Two steady minutes, then the 8-rack site steps 15 -> 35 kW per rack (+160 kW).
    ramp = replace(su, network=replace(su.network, feed_max_ramp_w_per_s=np.array([1e3, 1e3])))
    stage = SiteStage(ramp)
    raised, cleared = {}, {}
    for t in range(0, 300):
        res = stage.apply(every_rack(ramp, float(t), 15e3 if t < 150 else 35e3))
        for a in res.new_alerts:
            raised.setdefault(a.kind, (t, a))
        for a in res.cleared_alerts:
            cleared.setdefault(a.kind, t)
        if t == 200:   # the ramp is in force: a same-tick re-evaluation neither clears nor raises it
            again = stage.apply([RackUpdate(0, 200.0, 35.5e3, MEASURED)])
            assert (again.new_alerts, again.cleared_alerts) == ([], [])
    t_raised, alert = raised["ramp_too_fast"]
    # the last minute's average passes the minute before's by 120 kW once ~120/168 of the minute follows the step
    # (+160 kW of racks is ~+168 kW of import with the chain's conversion losses)
    assert 150 + 40 <= t_raised <= 150 + 46
    assert alert.threshold == pytest.approx(120e3) and alert.value > 120e3
    # ... and falls back under it once the minute before holds enough of the new level (~17 s of it)
    assert 210 + 14 <= cleared["ramp_too_fast"] <= 210 + 20


def test_a_ramp_limit_per_minute_ignores_second_scale_swings_and_catches_a_sustained_ramp(su):
    """A training site's import swings with its steps (+-20 kW per rack from one second to the next here: +-160 kW/s,
    9.6 MW/min as a one-second rate) without moving a minute's average: no alert against 120 kW/min. A steady climb of
    3 kW/s (180 kW/min) is one."""
    ramp = replace(su, network=replace(su.network, feed_max_ramp_w_per_s=np.array([1e3, 1e3])))
    stage = SiteStage(ramp)
    raised = []
    for t in range(0, 300):
        res = stage.apply(every_rack(ramp, float(t), 15e3 if t % 2 else 35e3))
        raised += [a for a in res.new_alerts if a.kind == "ramp_too_fast"]
    assert raised == []
    per_rack = 3e3 / su.network.n_racks                             # +3 kW/s of the site's rack input
    raised_at = []
    for t in range(300, 400):
        res = stage.apply(every_rack(ramp, float(t), 25e3 + per_rack * (t - 300)))
        raised_at += [t for a in res.new_alerts if a.kind == "ramp_too_fast"]
    # once the minute before is partly on the climb too: the averages' difference grows to 60 x 3 kW/s (plus losses)
    # and passes 120 kW ~75 s in
    assert len(raised_at) == 1 and 300 + 60 <= raised_at[0] <= 300 + 90


def test_cleared_alert_on_the_wire_matches_the_alert_it_clears():
    a = Alert("su1-0002", "rack", "unpowered", "critical", 0.0, 0.0, "rack su1-0002 has no healthy power path")
    raised = codec.alert(a, "su-h100", 12.0)
    clear = codec.cleared_alert(a, "su-h100", 12.0)
    assert (clear.entity_id, clear.scope, clear.kind, clear.severity, clear.site_id) == (
        raised.entity_id, raised.scope, raised.kind, raised.severity, raised.site_id)
    assert clear.cleared and not raised.cleared
    assert clear.alert_id != raised.alert_id                      # a raise and a clear at one time stay distinct
    assert clear.alert_id == codec.cleared_alert(a, "su-h100", 12.0).alert_id   # a replay repeats the id
    assert clear.message == "unpowered on su1-0002 cleared"
    assert pb.PowerAlert.FromString(clear.SerializeToString()).cleared


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []
        self.fail_alerts = 0             # refuse this many alert sends (a broker error: the batch is redelivered)

    async def enqueue(self, topic, key, msg, **kw):
        if topic == topics.POWER_ALERTS and self.fail_alerts:
            self.fail_alerts -= 1
            raise ConnectionError("broker unavailable")
        self.sent.append((topic, msg))
        f = asyncio.get_running_loop().create_future()
        f.set_result(None)
        return f

    def alerts(self) -> list[tuple[str, str, bool]]:
        return [(m.entity_id, pb.AlertKind.Name(m.kind), m.cleared) for t, m in self.sent if t == topics.POWER_ALERTS]


class _Store:
    async def write(self, states):
        return len(states)

    async def latest(self, site_id, scope):
        return []


async def test_site_handler_publishes_the_clear_once(su):
    from twin.power.adapters.stream import SiteHandler, StreamStats

    prod = _Producer()
    index = SiteIndex.of(su.inventory)
    h = SiteHandler(index, SiteStage(su), prod, _Store(), state_topic=topics.POWER_STATE, alerts_topic=topics.POWER_ALERTS,
                    stats=StreamStats())

    def batch(t: float, rack0_w: float) -> list:
        out = []
        for u in updates(su, t, rack0_w):
            s = pb.PowerState(site_id=index.site_id, entity_id=su.network.rack_ids[u.rack], scope=pb.POWER_SCOPE_RACK,
                              input_power_w=u.input_w, source=pb.VALUE_SOURCE_MEASURED)
            s.state_time.FromSeconds(int(t))
            out.append(SimpleNamespace(key=index.site_id, message=s, headers=[]))  # as a Record
        return out

    for t, w in ((1, 30e3), (2, 45e3), (3, 30e3), (4, 30e3), (5, 45e3)):
        if t == 3:                       # the clear's send fails once: the redelivered batch sends it
            prod.fail_alerts = 1
            with pytest.raises(ConnectionError):
                await h(batch(t, w))
        await h(batch(t, w))
    pdu = [a for a in prod.alerts() if a[0] == "pdu-1"]
    assert pdu == [("pdu-1", "ALERT_KIND_OVER_THRESHOLD", False), ("pdu-1", "ALERT_KIND_OVER_THRESHOLD", True),
                   ("pdu-1", "ALERT_KIND_OVER_THRESHOLD", False)]
    assert h.stats.alerts_published == len(prod.alerts())


async def test_rack_handler_clears_a_suspect_sensor_once(su):
    from twin.power.adapters.stream import RackHandler, StreamStats
    from twin.telemetry.v1 import telemetry_pb2 as tpb

    prod = _Producer()
    stage = RackStage(su)
    index = SiteIndex.of(su.inventory)
    h = RackHandler(index, stage, prod, _Store(), state_topic=topics.POWER_STATE, racks_topic=topics.POWER_RACKS,
                    alerts_topic=topics.POWER_ALERTS,
                    stats=StreamStats())
    inv = su.inventory
    rack = inv.racks[3]

    def rec(t: int, pdu_w: float | None) -> SimpleNamespace:
        b = tpb.RackTelemetryBatch(site_id=index.site_id, rack_id=rack.rack_id, sequence=t, source="test")
        b.sample_time.FromSeconds(t)
        for j, node_id in enumerate(inv.node_ids(rack)):
            n = int(inv.node_gpus[rack.first_node + j])
            gs = b.nodes.add(node_id=node_id).gpus
            gs.gpu_index.extend(range(n))
            gs.tensor_active.extend([0.9] * n)
            gs.sm_active.extend([0.95] * n)
            gs.dram_active.extend([0.3] * n)
        if pdu_w is not None:
            b.rack.pdu_input_power_w.extend([pdu_w / 3] * 3)
        return SimpleNamespace(message=tpb.TelemetrySamples(batch=b))

    assert (await h([rec(1, None)])).rejected == []                        # no PDU reading: the model only
    model = float(stage.modelled_rack_input_w()[3])
    for t, f in ((2, 1.0), (3, 1.5), (4, 1.5), (5, 1.0), (6, 1.0), (7, 1.5)):
        if t in (3, 5):                  # the raise's and the clear's sends fail once: redelivery sends them
            prod.fail_alerts = 1
            with pytest.raises(ConnectionError):
                await h([rec(t, model * f)])
        assert (await h([rec(t, model * f)])).rejected == []
    assert [a[2] for a in prod.alerts()] == [False, True, False]           # raised, cleared once, raised again
    assert {a[:2] for a in prod.alerts()} == {(rack.rack_id, "ALERT_KIND_SUSPECT_SENSOR")}
    assert h.stats.alerts_published == 3


def test_the_console_and_the_stack_screen_show_a_power_clear_as_cleared():
    from twin.console.adapters import codec as console
    from twin.core.stack_services import AlertTail

    a = Alert("pdu-1", "pdu", "over_threshold", "warning", 45e3, 40e3, "pdu-1 carries 45.0 kW, 90% of its rating")
    raised, clear = codec.alert(a, "su-h100", 1_790_000_000.0), codec.cleared_alert(a, "su-h100", 1_790_000_060.0)
    assert console.power_alert(raised)["cleared"] is False
    event = console.power_alert(clear)
    assert event["cleared"] is True and (event["entity"], event["kind"], event["severity"]) == (
        "pdu-1", "over_threshold", "warning")
    assert AlertTail.describe(topics.POWER_ALERTS, raised).endswith(
        "power   warning pdu-1: pdu-1 carries 45.0 kW, 90% of its rating")
    assert AlertTail.describe(topics.POWER_ALERTS, clear).endswith(
        "power   cleared pdu-1: over threshold on pdu-1 cleared")


def test_the_site_state_carries_the_minute_ramp_once_two_minutes_were_seen_and_twinctl_shows_it(su):
    """power.state.v1's site detail: `minute_ramp_w` (the ramp alert's minute averages) absent for the first two
    minutes, then the averages' difference; the tick's own change stays in `ramp_w_per_s`. twinctl prints both."""
    from twinctl.power import render_state

    stage = SiteStage(su)
    states = []
    for t in range(0, 200):
        res = stage.apply(every_rack(su, float(t), 15e3 if t < 150 else 25e3))   # +80 kW of racks at 150 s
        states.append(codec.site_state(su.network, res))
    assert not any(s.site.HasField("minute_ramp_w") for s in states[:120])
    assert all(s.site.HasField("minute_ramp_w") for s in states[120:])
    assert states[149].site.minute_ramp_w == pytest.approx(0.0, abs=1.0)
    # 50 s after the step: the last minute holds 50 s of the new level, the minute before none of it
    step = states[150].site.facility_power_w - states[149].site.facility_power_w
    assert states[199].site.minute_ramp_w == pytest.approx(step * 50 / 60, rel=1e-6)
    assert states[150].site.ramp_w_per_s == pytest.approx(step)                 # the tick's own change, per second
    early = render_state(pb.GetSiteStateResponse(site=states[60]))
    assert "? MW/min over minute averages (two minutes not seen yet" in early
    late = render_state(pb.GetSiteStateResponse(site=states[199]))
    assert f"ramp {step * 50 / 60 / 1e6:+.3f} MW/min over minute averages (last tick +0.000 MW/min as a rate)" in late
