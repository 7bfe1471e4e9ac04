"""facility-sim bad-data injection: every kind is produced, is really bad, and is logged exactly once."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import DecodeError

from twin.core import topics
from twin.core.clock import FixedClock
from twin.core.envelope import Envelope
from twin.core.facility.inventory import Inventory
from twin.core.facility.spec import load_facility_spec
from twin.facility_sim.adapters.faults import DLQ_KINDS, KINDS
from twin.facility_sim.adapters.publisher import MemoryPublisher
from twin.facility_sim.app import FacilitySim, SimConfig

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


async def _run(tmp_path, bad_fraction, ticks=12, seed=5):
    cfg = SimConfig(facility="dgx-h100-su", bad_fraction=bad_fraction, seed=seed, metrics_port=None,
                    bad_log=str(tmp_path / "bad.jsonl"), good_log=str(tmp_path / "good.jsonl"))
    pub = MemoryPublisher()
    sim = FacilitySim(cfg, pub, FixedClock(T0))
    await sim.start()
    for _ in range(ticks):
        await sim.tick(T0)
    await sim.stop()
    bad = [json.loads(x) for x in (tmp_path / "bad.jsonl").read_text().splitlines()]
    good = [json.loads(x) for x in (tmp_path / "good.jsonl").read_text().splitlines()]
    return sim, pub, good, bad


def _problem(value: bytes, key: bytes, inv: Inventory) -> str | None:
    """A tiny reference validator: what ingest must catch."""
    try:
        msg = topics.FACILITY_TELEMETRY.decode(value)
    except DecodeError:
        return "undecodable"
    if msg.rack_id not in inv.rack_index or key.decode() != msg.rack_id:
        return "unknown_id"
    rack = inv.racks[inv.rack_index[msg.rack_id]]
    if [n.node_id for n in msg.nodes] != inv.node_ids(rack):
        return "unknown_id"
    if msg.sample_time.ToDatetime(tzinfo=UTC) > T0 + timedelta(hours=1):
        return "future"
    for n in msg.nodes:
        g = n.gpus
        lengths = {len(getattr(g, f.name)) for f in g.DESCRIPTOR.fields}
        if len(lengths) != 1:
            return "mismatched"
        if min(g.power_w) < 0 or max(g.gpu_temp_c) > 150:
            return "impossible"
    return None


async def test_every_kind_is_injected_logged_and_really_bad(tmp_path):
    sim, pub, good, bad = await _run(tmp_path, bad_fraction=1.0)
    kinds = Counter(b["kind"] for b in bad)
    assert set(kinds) == set(KINDS), kinds
    n_racks = len(sim.layout.rack_ids)
    assert len(good) + sum(kinds[k] for k in DLQ_KINDS) == 12 * n_racks
    assert len(pub.records) == sim.stats.messages == len(good) + len(bad)
    assert dict(sim.stats.bad) == dict(kinds)

    inv = Inventory(load_facility_spec("dgx-h100-su"))
    by_ce = {}
    for topic, key, value, headers in pub.records:
        assert topic == topics.FACILITY_TELEMETRY.name
        env = Envelope.from_headers(headers)
        by_ce.setdefault(env.id, []).append((key, value, headers))
    good_ids = {g["ce_id"] for g in good}
    for b in bad:
        recs = by_ce[b["ce_id"]]
        if b["kind"] == "duplicate":
            assert b["ce_id"] in good_ids
            assert len(recs) == 2 and recs[0] == recs[1], "a duplicate is the same key, value and headers"
            assert _problem(recs[0][1], recs[0][0], inv) is None
        else:
            assert b["ce_id"] not in good_ids and len(recs) == 1
            key, value, _ = recs[0]
            assert key.decode() == b["rack_id"]
            assert _problem(value, key, inv) == b["kind"], b
    for g in good:
        key, value, _ = by_ce[g["ce_id"]][0]
        assert _problem(value, key, inv) is None
        msg = topics.FACILITY_TELEMETRY.decode(value)
        assert (msg.rack_id, msg.sequence) == (g["rack_id"], g["sequence"])
        assert sum(len(n.gpus.gpu_index) for n in msg.nodes) == g["n_gpu_rows"]


async def test_no_faults_means_all_good_and_content_is_reproducible(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sim_a, pub_a, good_a, bad_a = await _run(tmp_path / "a", bad_fraction=0.0, ticks=3)
    sim_b, pub_b, good_b, _ = await _run(tmp_path / "b", bad_fraction=0.3, ticks=3)
    assert bad_a == [] and sim_a.stats.good_gpu_rows == 3 * 256
    values_a = {(k, topics.FACILITY_TELEMETRY.decode(v).sequence): v for _, k, v, _ in pub_a.records}
    # good records of a run with faults are byte-identical to the same records of a clean run
    for g in good_b:
        rec = next(r for r in pub_b.records if Envelope.from_headers(r[3]).id == g["ce_id"])
        assert values_a[(g["rack_id"].encode(), g["sequence"])] == rec[2]
    assert sim_b.stats.good_gpu_rows == sum(g["n_gpu_rows"] for g in good_b)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_fraction_is_validated(fraction):
    from twin.facility_sim.adapters.faults import FaultInjector

    with pytest.raises(ValueError):
        FaultInjector(fraction)
