"""decode_batches' trusted runs: a rack's nodes' run of a cached grid layout's length is taken for that layout
without comparing its tag and length bytes batch by batch; the poll's runs are compared at once, and a poll with a
run of another inner layout is decoded again with every run compared. Either way the result is the message path's
(the protobuf containers), field by field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_ingest_wire_decode import container_path, same

import twin.ingest.adapters.codec as codec
from twin.ingest.adapters.codec import decode_batches
from twin.telemetry.v1 import telemetry_pb2 as pb

T = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def _ticks() -> list[list[bytes]]:
    from twin.core.facility.spec import load_facility_spec
    from twin.facility_sim.adapters.codec import TickEncoder
    from twin.facility_sim.domain.model import FacilityModel
    from twin.facility_sim.layout import build_layout

    layout = build_layout(load_facility_spec("site-100k"), racks=12, seed=0)
    model = FacilityModel(layout.arrays, seed=0)
    state = model.initial_state()
    enc = TickEncoder(layout)
    out = []
    for sequence in (1, 2, 3):
        state, tick = model.step(state, 0.0, 1.0)
        out.append([e.value for e in enc.encode(tick, T, sequence=sequence)])
    return out


def _swapped(raw: bytes) -> bytes:
    """The batch with two GPU fields of its second node swapped on the wire (power_w and gpu_temp_c: both packed
    doubles of one length): the same run length and first bytes, another inner layout, the same message."""
    msg = pb.RackTelemetryBatch.FromString(raw)
    node = msg.nodes[1].gpus.SerializeToString()
    a, b = (pb.GpuSamples(**{f: getattr(msg.nodes[1].gpus, f)}).SerializeToString()
            for f in ("power_w", "gpu_temp_c"))
    assert a in node and b in node and len(a) == len(b)
    out = raw.replace(node, node.replace(a, b"\0" * len(a)).replace(b, a).replace(b"\0" * len(a), b))
    assert len(out) == len(raw) and pb.RackTelemetryBatch.FromString(out) == msg and out != raw
    return out


def test_trusted_runs_decode_like_the_message_path(monkeypatch) -> None:
    ticks = _ticks()
    msgs = [[pb.RackTelemetryBatch.FromString(r) for r in t] for t in ticks]
    decode_batches(msgs[0], ticks[0])   # the racks' templates and run layouts cached
    calls = []
    real = codec.decode_batches
    monkeypatch.setattr(codec, "decode_batches", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    for got, want in zip(real(msgs[1], ticks[1]), container_path(msgs[1], monkeypatch), strict=True):
        same(got, want)
    assert calls == []   # no second pass: every run was of its layout

    odd = ticks[2][:]
    odd[5] = _swapped(odd[5])
    odd_msgs = [pb.RackTelemetryBatch.FromString(r) for r in odd]
    got = real(odd_msgs, odd)
    assert calls == [{"trust_runs": False}]   # the poll again, every run compared
    for a, b in zip(got, container_path(odd_msgs, monkeypatch), strict=True):
        same(a, b)
    # and the next poll of these racks (templates dropped, walked again) as well
    for a, b in zip(real(msgs[2], ticks[2]), container_path(msgs[2], monkeypatch), strict=True):
        same(a, b)


def test_the_poll_check_is_what_catches_the_other_layout(monkeypatch) -> None:
    """Without the poll-level comparison the swapped run would be cut by the cached layout: wrong values."""
    ticks = _ticks()
    decode_batches([pb.RackTelemetryBatch.FromString(r) for r in ticks[0]], ticks[0])
    odd = ticks[1][:]
    odd[5] = _swapped(odd[5])
    odd_msgs = [pb.RackTelemetryBatch.FromString(r) for r in odd]
    want = container_path(odd_msgs, monkeypatch)
    real = codec._grid_columns
    monkeypatch.setattr(codec, "_grid_columns", lambda layout, runs, check=False: real(layout, runs, False))
    got = decode_batches(odd_msgs, odd)
    with pytest.raises(AssertionError):
        same(got[5], want[5])
