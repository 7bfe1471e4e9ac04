"""facility-sim's default encoder (wire bytes built from the tick arrays) against the reference
field-by-field encoder: the same RackTelemetryBatch messages, and the bytes it publishes are the
reference message's serialization, for every preset, for counters of every varint width and for a subset of racks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from twin.core.facility.spec import load_facility_spec
from twin.facility_sim.adapters.codec import TickEncoder, _packed_varints
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.layout import build_layout

T = datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _tick(preset: str, racks: int | None):
    layout = build_layout(load_facility_spec(preset), racks=racks)
    model = FacilityModel(layout.arrays, seed=3)
    state = model.initial_state()
    for k in range(2):
        state, tick = model.step(state, float(k), 1.0)
    return layout, tick


def _same(a, b) -> None:
    assert [(e.rack_index, e.rack_id, e.sequence, e.n_gpu_rows) for e in a] == \
        [(e.rack_index, e.rack_id, e.sequence, e.n_gpu_rows) for e in b]
    for x, y in zip(a, b, strict=True):
        assert x.message == y.message
        # the bytes the simulator publishes are protobuf's own serialization of the reference message
        assert x.value == y.message.SerializeToString() == y.value


@pytest.mark.parametrize(("preset", "racks"), [("dgx-h100-su", None), ("gb200-nvl72-hall", 3), ("site-100k", 6)])
def test_wire_encoder_gives_the_reference_messages(preset, racks):
    layout, tick = _tick(preset, racks)
    enc = TickEncoder(layout)
    for seq in (0, 1, 300, 2**40):
        _same(enc.encode(tick, T, sequence=seq), enc.encode_fields(tick, T, sequence=seq))
    _same(enc.encode(tick, T, 5, racks=range(1, 2)), enc.encode_fields(tick, T, 5, racks=range(1, 2)))


def test_counters_of_every_varint_width():
    layout, tick = _tick("dgx-h100-su", 2)
    rng = np.random.default_rng(1)
    n_gpu, n_nic = len(tick.power_w), len(tick.tx_bytes)
    widths = np.array([0, 1, 127, 128, 2**14 - 1, 2**14, 2**35, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    big = dataclasses.replace(
        tick,
        ecc_sbe_total=rng.choice(widths, n_gpu), xid_errors=rng.choice(widths, n_gpu),
        ecc_dbe_total=np.zeros(n_gpu, dtype=np.uint64),
        tx_bytes=rng.choice(widths, n_nic), rx_bytes=rng.choice(widths, n_nic),
        tx_errors=rng.choice(widths, n_nic), rx_errors=np.zeros(n_nic, dtype=np.uint64))
    enc = TickEncoder(layout)
    _same(enc.encode(big, T, 9), enc.encode_fields(big, T, 9))


def test_packed_varints_are_protobufs():
    values = np.array([0, 1, 127, 128, 300, 2**32, 2**64 - 1], dtype=np.uint64)
    buf, offsets = _packed_varints(values)
    assert buf == b"".join(bytes.fromhex(h) for h in
                           ("00", "01", "7f", "8001", "ac02", "8080808010", "ffffffffffffffffff01"))
    assert offsets.tolist() == [0, 1, 2, 3, 5, 7, 12, 22]


def test_nodes_of_different_sizes_take_the_per_node_path():
    layout, tick = _tick("dgx-h100-su", 2)
    enc = TickEncoder(layout)
    enc.encode(tick, T, 1)
    assert enc._wire is not None and enc._wire.node_gpus == 8   # the one-pass framing applies here
    assert enc._wire.node_rows is not None                       # and so does the whole-tick node matrix
    enc._wire.node_rows = None                                   # as for node ids of different lengths
    _same(enc.encode(tick, T, 2), enc.encode_fields(tick, T, 2))
    enc._wire.node_gpus = 0                                      # as for a layout with mixed node sizes
    _same(enc.encode(tick, T, 3), enc.encode_fields(tick, T, 3))


def test_zero_rack_scalars_are_left_out_as_protobuf_does():
    layout, tick = _tick("dgx-h100-su", 2)
    zeroed = dataclasses.replace(tick, coolant_flow_lpm=np.zeros_like(tick.coolant_flow_lpm),
                                 coolant_return_c=np.where(np.arange(len(tick.coolant_return_c)) == 0, -0.0,
                                                           tick.coolant_return_c))
    enc = TickEncoder(layout)
    _same(enc.encode(zeroed, T, 4), enc.encode_fields(zeroed, T, 4))


def test_a_rack_with_a_wide_counter_leaves_the_others_on_the_node_matrix():
    layout, tick = _tick("site-100k", 5)
    sbe = tick.ecc_sbe_total.copy()
    sbe[40] = 300                                   # rack 1 (32 GPUs a rack): a sick GPU's rising count
    wide = dataclasses.replace(tick, ecc_sbe_total=sbe)
    enc = TickEncoder(layout)
    _same(enc.encode(wide, T, 6), enc.encode_fields(wide, T, 6))
    counts = [wide.xid_errors, wide.ecc_sbe_total, wide.ecc_dbe_total]
    floats = [wide.power_w] * 10
    assert enc._wire is not None and enc._wire.nodes_fields(floats, counts)[1] == {1}
