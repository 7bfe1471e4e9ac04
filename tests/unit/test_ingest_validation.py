"""Validation rules of the ingest domain: one test per rule, with the exact reason text.

Every rule is checked through both entry points: `validate_batch` (one batch) and `validate_batches`
(a whole poll, the handler's path), which must find the same problems in the same words, also when
the batch sits between valid ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ingest_factory import inventory, rack_batch

from twin.ingest.adapters.codec import decode_batch, decode_batches
from twin.ingest.domain.validation import limits_from_inventory, validate_batch, validate_batches

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
INV = inventory()
LIMITS = limits_from_inventory(INV)


def msg(rack=0, seq=1, t=NOW - timedelta(seconds=5)):
    return rack_batch(INV, rack, t, seq)


def problems(m, now=NOW):
    batch = decode_batch(m)
    one = validate_batch(batch, LIMITS, now)
    neighbours = [decode_batch(rack_batch(INV, 1, now - timedelta(seconds=3), 7)),
                  decode_batch(rack_batch(INV, 2, now - timedelta(seconds=3), 7))]
    polled = validate_batches([neighbours[0], batch, neighbours[1]], LIMITS, now)
    assert polled == [[], one, []]
    assert validate_batches([batch], LIMITS, now) == [one]
    return one


def reasons(m, now=NOW):
    return [p.text for p in problems(m, now)]


def kinds(m, now=NOW):
    return [p.kind for p in problems(m, now)]


def test_valid_batch_has_no_problems():
    assert reasons(msg()) == []


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("gpu_temp_c", 400.0, "gpu_temp_c=400.0 outside [-10, 130] °C at node su1-0000-n01 gpu 3"),
    ("gpu_temp_c", -40.0, "gpu_temp_c=-40.0 outside [-10, 130] °C at node su1-0000-n01 gpu 3"),
    ("mem_temp_c", 151.0, "mem_temp_c=151.0 outside [-10, 150] °C at node su1-0000-n01 gpu 3"),
    ("power_w", 1050.5, "power_w=1050.5 outside [0, 1050] W at node su1-0000-n01 gpu 3"),
    ("power_w", -1.0, "power_w=-1.0 outside [0, 1050] W at node su1-0000-n01 gpu 3"),
    ("sm_clock_mhz", 3000.0, "sm_clock_mhz=3000.0 outside [0, 2970] MHz at node su1-0000-n01 gpu 3"),
    ("util_gpu_pct", 101.0, "util_gpu_pct=101.0 outside [0, 100] % at node su1-0000-n01 gpu 3"),
    ("tensor_active", 1.5, "tensor_active=1.5 outside [0, 1] ratio at node su1-0000-n01 gpu 3"),
    ("dram_active", float("inf"), "dram_active=inf is not a finite number at node su1-0000-n01 gpu 3"),
])
def test_gpu_ranges(field, value, expected):
    m = msg()
    getattr(m.nodes[1].gpus, field)[3] = value
    assert reasons(m) == [expected]
    assert kinds(m) == ["range"]


def test_power_limit_is_one_and_a_half_times_gpu_max_w():
    m = msg()
    m.nodes[0].gpus.power_w[0] = 1050.0  # 1.5 × 700 W: allowed
    assert reasons(m) == []


def test_nan_means_missing_and_is_accepted():
    m = msg()
    m.nodes[0].gpus.sm_active[2] = float("nan")
    assert reasons(m) == []


def test_array_length_mismatch():
    m = msg()
    del m.nodes[0].gpus.tensor_active[-1]
    assert reasons(m) == ["node su1-0000-n00: tensor_active has 7 values for 8 gpu_index entries"]
    assert kinds(m) == ["schema"]


def test_lengths_that_differ_per_node_but_sum_up_are_still_mismatches():
    m = msg()
    del m.nodes[0].gpus.tensor_active[-1]
    m.nodes[1].gpus.tensor_active.append(0.5)   # the batch's tensor_active column has the right total length
    assert reasons(m) == ["node su1-0000-n00: tensor_active has 7 values for 8 gpu_index entries",
                          "node su1-0000-n01: tensor_active has 9 values for 8 gpu_index entries"]


def test_duplicate_gpu_index_alone():
    m = msg()
    m.nodes[3].gpus.gpu_index[7] = 6        # every index in range: only the repeat is wrong
    assert reasons(m) == ["node su1-0000-n03: gpu_index has duplicates [0, 1, 2, 3, 4, 5, 6, 6]"]


def test_duplicate_gpu_index_and_node():
    m = msg()
    m.nodes[0].gpus.gpu_index[1] = 0
    m.nodes[2].node_id = m.nodes[1].node_id
    r = reasons(m)
    assert "node su1-0000-n00: gpu_index has duplicates [0, 0, 2, 3, 4, 5, 6, 7]" in r
    assert "node su1-0000-n01 appears twice" in r


def test_unknown_ids():
    m = msg()
    m.nodes[0].node_id = "su1-0001-n00"  # a node of another rack
    m.nodes[1].gpus.gpu_index[7] = 8
    m.links.port_id[0] = "su1-0000-n09/nic0"
    r = reasons(m)
    assert "unknown node_id 'su1-0001-n00' for rack su1-0000" in r
    assert "gpu_index 8 out of range 0..7 at node su1-0000-n01" in r
    assert "unknown port_id 'su1-0000-n09/nic0' for rack su1-0000" in r
    other = msg()
    other.rack_id = "su9-0000"
    other.site_id = "elsewhere"
    assert reasons(other)[:2] == ["site_id 'elsewhere' is not this facility's 'su-h100'", "unknown rack_id 'su9-0000'"]


def test_switch_ports_are_known():
    m = msg()
    m.links.port_id[0] = "leaf-r3-g0/p17"
    assert reasons(m) == []


def test_sample_time_window():
    assert reasons(msg(t=NOW + timedelta(minutes=5))) == []
    future = reasons(msg(t=NOW + timedelta(minutes=5, seconds=1)))
    assert len(future) == 1 and "ahead of now" in future[0]
    assert reasons(msg(t=NOW - timedelta(days=7))) == []
    old = reasons(msg(t=NOW - timedelta(days=7, seconds=1)))
    assert len(old) == 1 and "more than 7 days before now" in old[0]
    unset = msg()
    unset.ClearField("sample_time")
    assert reasons(unset) == ["sample_time is not set"]


def test_rack_level_checks():
    m = msg()
    m.rack.coolant_flow_lpm = -3.0
    m.rack.inlet_air_temp_c = 95.0
    del m.rack.pdu_input_power_w[-1]
    r = reasons(m)
    assert "pdu_input_power_w has 2 phases, rack su1-0000 has 3" in r
    assert "inlet_air_temp_c=95.0 outside [-10, 80] °C at rack su1-0000" in r
    assert "coolant_flow_lpm=-3.0 outside [0, 900] l/min at rack su1-0000" in r


@pytest.mark.parametrize("field,value,expected", [
    ("coolant_flow_lpm", 901.0, "coolant_flow_lpm=901.0 outside [0, 900] l/min at rack su1-0000"),
    ("outlet_air_temp_c", float("inf"), "outlet_air_temp_c=inf is not a finite number at rack su1-0000"),
    ("coolant_return_temp_c", -10.5, "coolant_return_temp_c=-10.5 outside [-10, 100] °C at rack su1-0000"),
    ("coolant_supply_temp_c", float("nan"), None),   # not measured
])
def test_one_rack_scalar(field, value, expected):
    m = msg()
    setattr(m.rack, field, value)
    assert reasons(m) == ([] if expected is None else [expected])


def test_pdu_power_may_be_one_rack_total_bounded_by_all_phases():
    m = msg()
    per_phase_max = 1.5 * 50_000  # dgx-h100-su: pdu_kw 50
    del m.rack.pdu_input_power_w[:]
    assert reasons(m) == [], "no PDU reading is 'not measured', not an error"
    m.rack.pdu_input_power_w.append(2.5 * per_phase_max)  # above one phase's limit, within three phases'
    assert reasons(m) == []
    m.rack.pdu_input_power_w[0] = 3 * per_phase_max + 1
    assert any(r.startswith("pdu_input_power_w=") for r in reasons(m))


def test_link_checks():
    m = msg()
    m.links.link_state[1] = 7
    m.links.tx_bytes[2] = 2**63
    del m.links.rx_errors[0]
    r = reasons(m)
    assert "links: rx_errors has 3 values for 4 port_id entries" in r
    assert "link_state=7 is not a LinkState at port su1-0000-n00/nic1" in r
    assert "tx_bytes=9223372036854775808 exceeds the 64-bit signed counter range at port su1-0000-n00/nic2" in r


def test_empty_batch():
    m = msg()
    m.ClearField("nodes")
    m.ClearField("rack")
    m.ClearField("links")
    assert reasons(m) == ["batch carries no samples (no nodes, rack or links)"]


def test_reasons_are_capped_but_counted():
    m = msg()
    for node in m.nodes:
        node.gpus.gpu_temp_c[:] = np.full(8, 500.0).tolist()
    r = reasons(m)
    assert len(r) == 21 and r[-1] == "... and 12 more problems"


# -- the whole-poll path against the per-batch one, over many bad batches ------------------------------------

def _pick(rng: np.random.Generator, options: list):
    return options[int(rng.integers(len(options)))]   # as given (rng.choice would make big ints floats)


def _mutate(m, rng: np.random.Generator) -> None:
    """One random defect (or none) of the kinds validation words, in place."""
    node = m.nodes[int(rng.integers(len(m.nodes)))] if len(m.nodes) else None
    kind = int(rng.integers(26))
    if kind == 0 and node is not None:
        field = _pick(rng, ["power_w", "gpu_temp_c", "sm_clock_mhz", "mem_clock_mhz", "util_mem_pct", "sm_active"])
        getattr(node.gpus, field)[int(rng.integers(8))] = _pick(rng, [-1.0, 1e9, np.nan, np.inf, -np.inf])
    elif kind == 1 and node is not None:
        node.gpus.ecc_sbe_total[int(rng.integers(8))] = _pick(rng, [2**63, 2**64 - 1, 2**63 - 1, 200])
    elif kind == 2 and node is not None:
        del getattr(node.gpus, _pick(rng, ["tensor_active", "xid_errors", "power_w"]))[-1]
    elif kind == 3 and node is not None:
        node.gpus.dram_active.append(0.5)
    elif kind == 4 and node is not None:
        node.gpus.gpu_index[int(rng.integers(8))] = _pick(rng, [0, 7, 8, 300])
    elif kind == 5 and len(m.nodes) > 1:
        m.nodes[1].node_id = m.nodes[0].node_id
    elif kind == 6 and node is not None:
        node.node_id = _pick(rng, ["su1-0001-n00", "nowhere", "su1-0000-n09"])
    elif kind == 7 and len(m.links.port_id):
        m.links.port_id[int(rng.integers(len(m.links.port_id)))] = _pick(
            rng, ["su1-0000-n09/nic0", "leaf-r3-g0/p17", "nowhere/p1", m.links.port_id[0]])
    elif kind == 8 and len(m.links.link_state):
        m.links.link_state[0] = _pick(rng, [7, -1, 3])
    elif kind == 9 and len(m.links.tx_bytes):
        m.links.tx_bytes[-1] = _pick(rng, [2**63, 2**64 - 1])
    elif kind == 10 and len(m.links.rx_errors):
        del m.links.rx_errors[0]
    elif kind == 11:
        m.rack_id = "su9-0000"
    elif kind == 12:
        m.site_id = "elsewhere"
    elif kind == 13:
        m.sample_time.FromDatetime(NOW + timedelta(minutes=_pick(rng, [6, -60 * 24 * 8])))
    elif kind == 14:
        m.ClearField("sample_time")
    elif kind == 15:
        del m.rack.pdu_input_power_w[int(rng.integers(1, 3)):]
    elif kind == 16:
        m.rack.pdu_input_power_w[0] = _pick(rng, [-5.0, 1e7, np.nan, np.inf])
    elif kind == 17:
        setattr(m.rack, _pick(rng, ["inlet_air_temp_c", "coolant_flow_lpm", "coolant_return_temp_c"]),
                _pick(rng, [-40.0, 1e4, np.nan, -np.inf]))
    elif kind == 18:
        m.ClearField(_pick(rng, ["nodes", "rack", "links"]))
    elif kind == 19 and len(m.nodes) > 1:
        del m.nodes[int(rng.integers(len(m.nodes)))]
    elif kind in (21, 22) and node is not None:   # just over a bound set by the rack's GPU model
        field, value = _pick(rng, [("power_w", 1050.5), ("sm_clock_mhz", 3000.0), ("mem_clock_mhz", 1e5)])
        getattr(node.gpus, field)[int(rng.integers(8))] = value
    elif kind == 20 and node is not None:
        for f in ("gpu_temp_c", "mem_temp_c", "util_gpu_pct"):
            getattr(node.gpus, f)[:] = [500.0] * len(getattr(node.gpus, f))   # over MAX_REASONS
    # 23..25: left valid


def test_a_poll_of_bad_batches_validates_like_each_batch():
    """validate_batches == validate_batch per batch (same problems, kinds, texts, order) over polls of randomly
    broken batches; later polls repeat the racks, so they go through the id caches of the first."""
    rng = np.random.default_rng(7)
    for poll in range(10):
        msgs = []
        for seq in range(50):
            m = rack_batch(INV, int(rng.integers(4)), NOW - timedelta(seconds=5), 100 * poll + seq)
            for _ in range(int(rng.integers(3))):
                _mutate(m, rng)
            msgs.append(m)
        raws = [m.SerializeToString() for m in msgs]
        batches = decode_batches([type(m).FromString(r) for m, r in zip(msgs, raws, strict=True)], raws)
        assert validate_batches(batches, LIMITS, NOW) == [validate_batch(b, LIMITS, NOW) for b in batches]
        assert any(validate_batch(b, LIMITS, NOW) == [] for b in batches)


@pytest.mark.parametrize("drop", ["node", "port"])
def test_the_id_caches_are_per_rack_limits(drop):
    """Node and port ids cleared once are checked again against other limits (a cache that ignored the
    RackLimits it checked against would clear the second poll)."""
    batches = decode_batches([rack_batch(INV, 0, NOW - timedelta(seconds=5), s) for s in (1, 2)])
    assert validate_batches(batches, LIMITS, NOW) == [[], []]
    rack = LIMITS.racks["su1-0000"]
    node, port = batches[0].gpus.node_ids[2], batches[0].links.port_id[1]
    if drop == "node":
        fewer = dataclasses.replace(rack, node_gpus={n: g for n, g in rack.node_gpus.items() if n != node})
        text = f"unknown node_id {node!r} for rack su1-0000"
    else:
        fewer = dataclasses.replace(rack, nic_ids=rack.nic_ids - {port})
        text = f"unknown port_id {port!r} for rack su1-0000"
    limits = dataclasses.replace(LIMITS, racks={**LIMITS.racks, "su1-0000": fewer})
    expected = [validate_batch(b, limits, NOW) for b in batches]
    assert text in [p.text for p in expected[0]]
    assert validate_batches(batches, limits, NOW) == expected
