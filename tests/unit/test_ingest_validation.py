"""Validation rules of the ingest domain: one test per rule, with the exact reason text.

Every rule is checked through both entry points: `validate_batch` (one batch) and `validate_batches`
(a whole poll, the handler's path), which must find the same problems in the same words, also when
the batch sits between valid ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ingest_factory import inventory, rack_batch

from twin.ingest.adapters.codec import decode_batch
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
