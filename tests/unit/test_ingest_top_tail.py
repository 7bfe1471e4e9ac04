"""codec._top_fields' shortcut past a rack's links field: when the bytes after it are those after its last batch's
links (e.g. facility-sim's `source`, field 8, after `links`, field 7), the walk from the links on is not run. The
same RackBatch as the message path when something else follows the links, and the shortcut taken when nothing
else does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import twin.ingest.adapters.codec as codec
from tests.unit.test_ingest_wire_decode import _links_field_of, check, fields, write
from twin.ingest.domain.model import LINK_COUNT_FIELDS
from twin.telemetry.v1 import telemetry_pb2 as pb

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


SOURCE = "facility-sim/a-longer-source-name"   # its field as long as a links field can be


def batch(sequence: int, ports: int, source: str = SOURCE, rack_id: str = "tail-r") -> bytes:
    m = pb.RackTelemetryBatch(site_id="s", rack_id=rack_id, sequence=sequence, source=source)
    m.sample_time.seconds = int(T.timestamp())
    m.rack.inlet_air_temp_c = 21.5
    lk = m.links
    lk.port_id.extend(f"n0/nic{i}" for i in range(ports))
    for j, f in enumerate(LINK_COUNT_FIELDS):
        getattr(lk, f).extend(sequence * 1000 * (i + 1) + j for i in range(ports))   # grows: other lengths
    lk.link_state.extend([1] * ports)
    raw = m.SerializeToString()
    assert fields(raw)[-1][0] == 8 and fields(raw)[-2][0] == 7   # source after links, as protobuf writes it
    return raw


@pytest.fixture
def walks(monkeypatch) -> list:
    """The walks from a template's links field on (_walk without a rack to record: `record` None)."""
    seen = []
    real = codec._walk
    monkeypatch.setattr(codec, "_walk", lambda raw, pos, *a: (seen.append(pos) if a[-1] is None else None,
                                                               real(raw, pos, *a))[1])
    return seen


def test_the_same_tail_skips_the_walk(monkeypatch, walks) -> None:
    first = batch(1, 3)
    check([first, batch(2, 4)], monkeypatch)
    later = [batch(3 + i, ports) for i, ports in enumerate(range(3, 130, 9))]
    lengths = [len(fields(r)[-2][2]) for r in later]
    assert min(lengths) < 0x80 and {n >> 7 & 1 for n in lengths if n >= 0x80} == {0, 1}   # one- and two-byte lengths
    walks.clear()
    with monkeypatch.context() as m:   # the links cut from the wire, not through the message
        m.setattr(codec, "decode_links", None)
        got = codec.decode_batches([pb.RackTelemetryBatch.FromString(r) for r in later], later)
    assert walks == [] and [len(b.links.port_id) for b in got] == list(range(3, 130, 9))
    check(later, monkeypatch)


def test_other_bytes_after_the_links_take_the_walk(monkeypatch, walks) -> None:
    """Each batch follows a template of its rack with `source` after the links."""
    base = batch(1, 30)
    tail = write([fields(base)[-1]])
    assert base.endswith(tail)
    nxt = batch(2, 30)
    body = nxt[:-len(tail)]
    odd = {
        "other source, same length": body + write([(8, 2, b"x" * len(SOURCE))]),
        "a links field in the tail's place": body + _links_field_of(len(tail)),
        "a second links field, then the tail": nxt + _links_field_of(20) + tail,
        "the tail twice": nxt + tail,
        "an unknown field, then the tail": body + b"\x78\x01" + tail,
        "no tail": body,
    }
    for name, raw in odd.items():
        check([base, raw], monkeypatch)
        walks.clear()
        got = codec.decode_batches([pb.RackTelemetryBatch.FromString(r) for r in (base, raw)], [base, raw])
        want = pb.RackTelemetryBatch.FromString(raw)
        assert got[1].links.port_id == tuple(want.links.port_id) and got[1].source == want.source, name
        assert walks, name   # not taken for these bytes


def test_a_template_with_sample_time_after_the_links_has_no_tail(monkeypatch) -> None:
    raw = batch(1, 5, rack_id="tail-t")
    parts = fields(raw)
    late = write([p for p in parts if p[0] != 3] + [p for p in parts if p[0] == 3])   # sample_time (3) last
    check([late, late], monkeypatch)
    assert codec._TOPS["tail-t"][-1] is None
