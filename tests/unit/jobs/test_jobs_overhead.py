"""A job's energy beyond its GPUs (issue 11 item 3): the node platform share measured from the rack's PDU power
(rack PDU - the rack's GPU power, shared per GPU; the facility spec's figure where it is missing or implausible)
and the conversion + cooling overhead from the power twin's site state (facility / IT power; JOBS_PUE when none
is fresh or it is implausible)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from test_jobs_dirty import JOBS, SITE, T0, setup  # same directory (rootdir-relative import)

from twin.core import topics
from twin.jobs.adapters import codec
from twin.jobs.adapters.stream import EngineStats, SitePowerReader, site_partition
from twin.jobs.domain.overhead import (
    FRESH_S,
    OverheadRefused,
    SiteOverhead,
    overhead_factor,
    pdu_total_w,
    rack_platform_w,
)
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.v1 import power_pb2 as ppb
from twin.telemetry.v1 import telemetry_pb2 as tpb

SITE_ID = SITE.site_id


# -- pure logic ----------------------------------------------------------------------------------------------------
def test_overhead_factor_is_facility_over_it_and_refuses_the_implausible():
    assert overhead_factor(1.25e6, 1.0e6) == pytest.approx(1.25)
    assert overhead_factor(1.0e6, 1.0e6) == 1.0
    for facility, it in ((math.nan, 1e6), (1e6, math.inf), (1e6, 0.0), (1e6, -5.0), (0.9e6, 1e6), (3.1e6, 1e6)):
        with pytest.raises(OverheadRefused):
            overhead_factor(facility, it)


def test_site_overhead_falls_back_when_stale_and_keeps_the_newer_state():
    o = SiteOverhead(fallback=1.3, fresh_s=300.0)
    assert o.current(100.0) == (1.3, "setting")                      # none yet
    assert o.update(state_time_s=10.0, produced_s=100.0, facility_w=1.25e6, it_w=1e6)
    assert o.current(100.0 + 300.0) == (pytest.approx(1.25), "site")
    assert o.current(100.0 + 300.5) == (1.3, "setting")              # older than the bound
    assert not o.update(state_time_s=9.0, produced_s=101.0, facility_w=1.1e6, it_w=1e6)   # older state
    assert o.current(101.0)[0] == pytest.approx(1.25)
    with pytest.raises(OverheadRefused):
        o.update(state_time_s=11.0, produced_s=102.0, facility_w=5e6, it_w=1e6)
    assert o.current(102.0) == (pytest.approx(1.25), "site")         # a refused state changes nothing
    assert FRESH_S == 300.0


def test_rack_platform_share_per_gpu_and_its_fallbacks():
    # five rack batches of 4 GPUs each (the rack has 4 GPUs unless stated)
    bounds = np.array([0, 4, 8, 12, 16, 19])
    p = np.array([500.0, 500, 600, 600,          # ok: platform 3000 - 2200 = 800 -> 200 per GPU
                  500, 500, 500, 500,            # PDU not measured
                  500, np.nan, 500, 500,         # a GPU without power: its draw would count as platform
                  900, 900, 900, 900,            # PDU below the GPUs' own power: implausible
                  400, 400, 400])                # 3 of the rack's 4 GPUs reported
    pdu = np.array([3000.0, np.nan, 3000.0, 3000.0, 2000.0])
    rack_gpus = np.array([4, 4, 4, 4, 4])
    got = rack_platform_w(bounds, p, pdu, rack_gpus)
    assert got[:4].tolist() == [200.0] * 4
    assert np.isnan(got[4:]).all()
    assert rack_platform_w(np.array([0]), np.zeros(0), np.zeros(0), np.zeros(0, np.int64)).size == 0
    assert pdu_total_w([1000.0, 1100.0, 1200.0]) == 3300.0 and pdu_total_w([2500.0]) == 2500.0
    assert math.isnan(pdu_total_w([])) and math.isnan(pdu_total_w([1000.0, math.nan, 1.0]))


# -- the twin: measured energy with the measured platform share and the site factor ------------------------------
def _rack_batch(twin, rack: str, t: float, gpu_w: float, pdu_w: float | None):
    """A telemetry.samples.v1 batch of every GPU of ``rack`` at ``gpu_w`` each, with the PDU reading."""
    msg = tpb.TelemetrySamples()
    b = msg.batch
    b.site_id, b.rack_id = SITE_ID, rack
    b.sample_time.FromNanoseconds(int(t * 1e9))
    for node_id in twin.site.nodes_of_rack(rack):
        n = twin.site.inventory.node_gpus[twin.site.node_index[node_id]]
        node = b.nodes.add(node_id=node_id)
        node.gpus.gpu_index.extend(range(n))
        node.gpus.power_w.extend([gpu_w] * n)
    if pdu_w is not None:
        b.rack.pdu_input_power_w.extend([pdu_w / 3] * 3)     # per phase
    return msg


def _feed(twin, msgs, now_s):
    for got in codec.gpu_samples_many(msgs, twin.site):
        twin.apply_telemetry(*got, now_s=now_s)


def test_a_jobs_platform_share_is_measured_from_its_racks_pdu_power():
    twin, _, clock, _ = setup()
    # m: 16 of rack su1-0005's 32 GPUs and 16 of su1-0006's; k: all of su1-0004
    rack_w = {"su1-0004": 32 * 700.0 + 9600.0, "su1-0005": 32 * 700.0 + 6400.0}   # platform 300 / 200 W per GPU
    t = clock.t
    for dt in (0.0, 2.0):
        msgs = [_rack_batch(twin, r, t + dt, 700.0, w) for r, w in rack_w.items()]
        msgs.append(_rack_batch(twin, "su1-0006", t + dt, 700.0, None))     # not measured: the spec's 375 W
        _feed(twin, msgs, t + dt)
    k, m = twin.jobs["k"], twin.jobs["m"]
    assert k.measured_gpu_j == pytest.approx(32 * 700.0 * 2)
    assert k.measured_platform_j == pytest.approx(32 * 300.0 * 2)
    assert m.measured_platform_j == pytest.approx((16 * 200.0 + 16 * SITE.platform_w_per_gpu[0]) * 2)
    assert twin.platform_gpu_samples == [2 * 48, 2 * 16]    # k's 32 + m's 16 measured, m's 16 on su1-0006 not
    # no site state: JOBS_PUE
    pue = twin.settings.pue
    assert k.measured_j == pytest.approx((k.measured_gpu_j + k.measured_platform_j) * pue)
    state = codec.view_to_proto(twin.view("k"), t + 2, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5)
    assert state.measured_energy_j == pytest.approx(k.measured_j)
    assert state.measured_cost_usd == pytest.approx(k.measured_j / 3.6e6 * 0.1)


def test_measured_energy_uses_the_site_factor_while_it_is_fresh_then_jobs_pue():
    twin, _, clock, _ = setup()
    t = clock.t
    twin.set_site_power(t, t, 1.25e6, 1.0e6)
    rack_w = 32 * 700.0 + 9600.0
    for dt in (0.0, 2.0):
        _feed(twin, [_rack_batch(twin, "su1-0004", t + dt, 700.0, rack_w)], t + dt)
    k = twin.jobs["k"]
    at_site = (32 * 700.0 + 32 * 300.0) * 2
    assert k.measured_j == pytest.approx(at_site * 1.25)
    assert (k.overhead_factor, k.overhead_source) == (pytest.approx(1.25), "site")
    # the site state goes stale: the next seconds count with JOBS_PUE
    later = t + FRESH_S + 10.0
    for dt in (0.0, 2.0):
        _feed(twin, [_rack_batch(twin, "su1-0004", later + dt, 700.0, rack_w)], later + dt)
    assert k.measured_j == pytest.approx(at_site * 1.25 + at_site * twin.settings.pue)
    assert (k.overhead_factor, k.overhead_source) == (twin.settings.pue, "setting")  # the latest sample's


def test_predicted_energy_accrues_with_the_factor_in_force():
    twin, eng, clock, _ = setup()
    live = twin.jobs["k"]
    e0 = live.energy_j
    clock.t += 10.0
    asyncio.run(eng.refresh())
    p = live.prediction
    watts = p.mean_power_w * p.n_gpus + twin.site.platform_w(live.inputs.gpu_ids)
    assert live.energy_j - e0 == pytest.approx(watts * twin.settings.pue * 10.0)
    twin.set_site_power(clock.t, clock.t, 1.1e6, 1.0e6)
    e1 = live.energy_j
    clock.t += 10.0
    asyncio.run(eng.refresh())
    assert live.energy_j - e1 == pytest.approx(watts * 1.1 * 10.0)


def test_the_factor_and_its_source_ride_on_the_state_and_a_new_source_is_published_at_once():
    twin, eng, clock, _ = setup()
    running = len(twin.book.running_ids())

    async def latest(job_id: str):
        return await eng.store.latest_of(job_id)

    def refresh(dt: float) -> int:
        before = eng.stats.states_published
        clock.t += dt
        asyncio.run(eng.refresh())
        return eng.stats.states_published - before

    st = asyncio.run(latest("k"))
    assert st.energy_overhead_source == jpb.ENERGY_OVERHEAD_SOURCE_SETTING
    assert st.energy_overhead_factor == twin.settings.pue
    # a fresh site state: every running job's state says so at once (no periodic republish is due yet)
    assert eng.republish_s > 2.0
    twin.set_site_power(clock.t, clock.t, 1.25e6, 1.0e6)
    assert refresh(1.0) == running
    st = asyncio.run(latest("k"))
    assert st.energy_overhead_source == jpb.ENERGY_OVERHEAD_SOURCE_SITE_STATE
    assert st.energy_overhead_factor == pytest.approx(1.25)
    # a new factor from the same source is applied at once, published with the next periodic republish
    twin.set_site_power(clock.t, clock.t, 1.2e6, 1.0e6)
    assert refresh(1.0) == 0
    assert twin.jobs["k"].overhead_factor == pytest.approx(1.2)
    assert refresh(eng.republish_s) == running
    assert asyncio.run(latest("k")).energy_overhead_factor == pytest.approx(1.2)
    # the site state goes stale: JOBS_PUE, published at once
    clock.t = twin.overhead.produced_s + FRESH_S + 1.0
    assert refresh(0.0) == running
    st = asyncio.run(latest("k"))
    assert st.energy_overhead_source == jpb.ENERGY_OVERHEAD_SOURCE_SETTING
    assert st.energy_overhead_factor == twin.settings.pue


def test_the_provenance_fields_survive_the_wire_and_a_restart():
    from twin.jobs.adapters.stream import restore_accounts

    twin, eng, clock, _ = setup()
    twin.set_site_power(clock.t, clock.t, 1.25e6, 1.0e6)
    clock.t += 1.0
    asyncio.run(eng.refresh())
    msg = codec.view_to_proto(twin.view("k"), clock.t, tariff_usd_per_kwh=0.1, carbon_kg_per_kwh=0.5)
    back = jpb.JobState.FromString(msg.SerializeToString())
    assert (back.comm_source, back.comm_source_detail) == (jpb.COMM_SOURCE_FABRIC_TWIN, "test")
    assert (back.energy_overhead_source, back.energy_overhead_factor) == (jpb.ENERGY_OVERHEAD_SOURCE_SITE_STATE,
                                                                          pytest.approx(1.25))
    # a restarted process takes the last applied factor back with the energy (until it applies its own)
    again, _, _, _ = setup()
    for live in again.jobs.values():
        live.overhead_factor, live.overhead_source = 0.0, ""
    assert asyncio.run(restore_accounts(eng.store, again)) == len(JOBS)
    assert (again.jobs["k"].overhead_factor, again.jobs["k"].overhead_source) == (pytest.approx(1.25), "site")


# -- the power.state.v1 reader ---------------------------------------------------------------------------------
class _Engine:
    def __init__(self, twin) -> None:
        self.twin, self.stats = twin, EngineStats()


def _site_state(t: float, facility_w: float, it_w: float, scope=ppb.POWER_SCOPE_SITE, entity=SITE_ID) -> bytes:
    msg = ppb.PowerState(site_id=SITE_ID, entity_id=entity, scope=scope, input_power_w=facility_w,
                         output_power_w=it_w)
    msg.state_time.FromNanoseconds(int(t * 1e9))
    return msg.SerializeToString()


def test_the_reader_takes_only_the_sites_state_and_counts_what_it_refuses(caplog):
    twin, _, _, _ = setup()
    eng = _Engine(twin)
    reader = SitePowerReader(eng, SITE_ID, topics.POWER_STATE)
    ms = int(T0 * 1e3)
    assert not reader.apply(b"su1-0004", b"\xff not a PowerState", ms)       # another key: never decoded
    assert not reader.apply(SITE_ID.encode(), _site_state(T0, 2e5, 1e5, ppb.POWER_SCOPE_RACK), ms)
    assert reader.apply(SITE_ID.encode(), _site_state(T0, 1.25e6, 1e6), ms)
    assert twin.overhead.current(T0 + 1) == (pytest.approx(1.25), "site")
    assert not reader.apply(SITE_ID.encode(), _site_state(T0 + 1, 4e6, 1e6), ms + 1000)   # 4.0: refused
    assert not reader.apply(SITE_ID.encode(), b"\xff\xff\xff", ms + 2000)                 # undecodable
    assert eng.stats.site_states == 1 and eng.stats.site_states_refused == 2
    assert "outside [1.0, 3.0]" in caplog.text
    assert twin.overhead.current(T0 + 2)[0] == pytest.approx(1.25)
    # a state produced long ago (read back at start) does not count as fresh
    twin2, _, _, _ = setup()
    old = SitePowerReader(_Engine(twin2), SITE_ID, topics.POWER_STATE)
    assert old.apply(SITE_ID.encode(), _site_state(T0 - 3600, 1.25e6, 1e6), int((T0 - 3600) * 1e3))
    assert twin2.overhead.current(T0) == (twin2.settings.pue, "setting")


def test_site_partition_is_the_producers_default_partitioner():
    from aiokafka.partitioner import DefaultPartitioner

    parts = list(range(12))
    for site in ("dgx-h100-su", "site-a", "x", "gb200-nvl72-100k"):
        assert site_partition(site, 12) == DefaultPartitioner()(site.encode(), parts, parts)


def test_the_decoder_gathers_each_racks_pdu_power_and_gpu_count():
    twin, _, clock, _ = setup()
    a = _rack_batch(twin, "su1-0004", clock.t, 700.0, 3000.0)
    b = _rack_batch(twin, "su1-0005", clock.t, 700.0, None)
    (t, gpu, power, _, _, _, bounds, pdu, rack_gpus, _), = codec.gpu_samples_many([a, b], twin.site)
    assert bounds.tolist() == [0, 32, 64] and rack_gpus.tolist() == [32, 32]
    assert pdu[0] == pytest.approx(3000.0) and math.isnan(pdu[1])
    assert len(gpu) == len(power) == 64
