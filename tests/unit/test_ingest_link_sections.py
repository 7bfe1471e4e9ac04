"""codec._link_sections' whole-poll cut of the link counters (codec._link_bodies: the tags and lengths of every
batch's fields after its port ids read in one numpy step per field) against the batch-by-batch walk
(codec._link_payloads / _link_parts) and the message path: the same payloads, offsets and Links, for well-formed
bodies, every re-encoding the walk also takes, and mutated or cut bytes."""

from __future__ import annotations

from itertools import accumulate

import numpy as np
import pytest

import twin.ingest.adapters.codec as codec
from tests.unit.test_ingest_wire_decode import check, fields, same, varint, write
from twin.ingest.adapters.codec import decode_batches
from twin.ingest.domain.model import LINK_COUNT_FIELDS
from twin.telemetry.v1 import telemetry_pb2 as pb


def links_message(rng: np.random.Generator, ports: int, wide: bool = False) -> pb.LinkSamples:
    """`ports` ports' counters of every varint width (`wide`: enough bytes for two-byte field lengths)."""
    lk = pb.LinkSamples(port_id=[f"n/nic{i}" for i in range(ports)])
    for f in LINK_COUNT_FIELDS:
        bits = rng.integers(0, 65, ports) if wide else rng.integers(0, 20, ports)
        getattr(lk, f).extend(int(rng.integers(0, 2**62)) * 4 + 3 >> (64 - int(b)) if b else 0 for b in bits)
    lk.link_state.extend(int(s) for s in rng.choice([0, 1, 2, 3, -1], ports))
    return lk


def body(lk: pb.LinkSamples) -> bytes:
    """The LinkSamples bytes after its port ids."""
    return write([f for f in fields(lk.SerializeToString()) if f[0] != 1])


def one_by_one(bodies: list[bytes]) -> tuple | None:
    """What _link_bodies must give, from codec._link_payloads body by body; None when one is refused."""
    parts = [codec._link_payloads(b, 0, len(b)) for b in bodies]
    if any(p is None for p in parts):
        return None
    links = [x for p in parts for x in p[:-1]]
    states = [p[-1] for p in parts]
    return (b"".join(links), list(accumulate(map(len, links), initial=0)), b"".join(states),
            list(accumulate(map(len, states), initial=0)))


def mutations(raw: bytes, rng: np.random.Generator) -> list[bytes]:
    """The body re-encoded in the other ways parsers accept, and with bytes changed, cut or added."""
    fs = fields(raw)
    out = [write(fs[::-1]), write(fs[1:] + fs[:1]), write(fs, long_lengths=True), write(fs + fs[-1:]),
           write(fs[:-1]), write(fs[1:]), write(fs + [(9, 2, b"\x01")]), write([(1, 2, b"x")] + fs),
           write([(fs[0][0], 2, fs[0][2][:1]), (fs[0][0], 2, fs[0][2][1:])] + fs[1:]),
           raw[:-1], raw + b"\x00", raw[:len(raw) // 2], b"\x0a\x00" + raw]
    for _ in range(12):
        m = bytearray(raw)
        for at in rng.integers(0, len(m), int(rng.integers(1, 4))):
            m[at] = int(rng.integers(0, 256)) if rng.random() < 0.5 else m[at] ^ 0x80
        out.append(bytes(m))
    return out


@pytest.mark.parametrize("wide", [False, True])
def test_link_bodies_give_what_the_walk_gives(wide: bool) -> None:
    rng = np.random.default_rng(31 + wide)
    taken = refused = 0
    for _ in range(60):
        good = [body(links_message(rng, int(rng.integers(0, 40)), wide)) for _ in range(int(rng.integers(1, 6)))]
        if rng.random() < 0.3:
            good.insert(int(rng.integers(0, len(good))), b"")   # a batch without links
        polls = [good]
        for raw in good:
            if raw:
                polls += [[*good, m] for m in mutations(raw, rng)]
        for bodies in polls:
            want, got = one_by_one(bodies), codec._link_bodies(bodies)
            if got is not None:   # taken at once: the walk's payloads and offsets
                assert want is not None and got == want
                taken += 1
            else:
                refused += 1
        assert codec._link_bodies(good) == one_by_one(good)   # the usual form is always taken
    assert taken > 100 and refused > 100


def test_two_byte_lengths_and_empty_fields() -> None:
    lk = pb.LinkSamples(port_id=["p"] * 300, tx_bytes=[2**40] * 300, rx_bytes=[1] * 300, tx_errors=[0] * 300,
                        rx_errors=[0] * 300, link_state=[1] * 300)
    wide = body(lk)
    assert wide[1:3] == varint(1800) and varint(300) in wide   # two-byte lengths whose bit 7 is 0
    tag = {f: pb.LinkSamples.DESCRIPTOR.fields_by_name[f].number << 3 | 2 for f in (*LINK_COUNT_FIELDS, "link_state")}
    empty_fields = b"".join(bytes((tag[f], 0)) for f in (*LINK_COUNT_FIELDS, "link_state"))   # packed, no values
    three = bytes((tag["tx_bytes"], 0x81, 0x80, 0x00)) + b"\x01" + wide[wide.index(tag["rx_bytes"]):]  # 3-byte length
    bodies = [wide, empty_fields, b"", wide]
    assert codec._link_bodies(bodies) == one_by_one(bodies) is not None
    assert codec._link_bodies([wide, three]) is None and one_by_one([wide, three]) is not None   # the walk takes it


def _rack(i: int, lk: pb.LinkSamples, sequence: int) -> pb.RackTelemetryBatch:
    m = pb.RackTelemetryBatch(site_id="s", rack_id=f"r{i}", sequence=sequence, source="t")
    m.sample_time.seconds = 1_700_000_000 + sequence
    m.links.CopyFrom(lk)
    return m


def test_polls_of_known_racks_decode_like_the_message_path(monkeypatch) -> None:
    """Second sight of a rack's ports: the whole poll cut at once, as the message path reads it; a poll with one
    batch in another form (its ports changed, its fields reordered, split, not packed, an unknown field) cut batch
    by batch, also as the message path reads it."""
    rng = np.random.default_rng(5)
    calls = []   # what _link_sections_at_once gave each poll with links (the message path has none)
    real = codec._link_sections_at_once
    monkeypatch.setattr(codec, "_link_sections_at_once",
                        lambda sections: (r := real(sections), sections and calls.append(r))[0])
    first = [_rack(i, links_message(rng, 8 + i % 3, wide=i % 2 == 1), 1) for i in range(10)]
    first[4].ClearField("links")
    check([m.SerializeToString() for m in first], monkeypatch)
    second = [_rack(i, links_message(rng, 8 + i % 3, wide=i % 2 == 1), 2) for i in range(10)]
    second[4].ClearField("links")
    raws = [m.SerializeToString() for m in second]
    calls.clear()
    check(raws, monkeypatch)
    assert calls and all(c is not None for c in calls)   # each rack's ports as in its last batch: at once

    def relinked(raw: bytes, rewrite) -> bytes:
        return write([(n, wt, write(rewrite(fields(p))) if n == 7 else p) for n, wt, p in fields(raw)])

    odd = {
        "ports": relinked(raws[2], lambda fs: [(1, 2, b"other")] + fs[1:]),
        "order": relinked(raws[2], lambda fs: [fs[0]] + fs[1:][::-1]),
        "split": relinked(raws[2], lambda fs: [fs[0], *fs[1:], fs[1]]),
        "unknown": relinked(raws[2], lambda fs: fs + [(9, 2, b"\x01")]),
        "unpacked": relinked(raws[2], lambda fs: fs[:-1] + [(6, 0, varint(1))] * 3),
        "long length": write([(n, wt, p) for n, wt, p in fields(raws[2])], long_lengths=True),   # outside the links
    }
    for name, raw in odd.items():
        calls.clear()
        got = check([*raws[:2], raw, *raws[3:]], monkeypatch)
        assert calls and (calls[0] is None) == (name != "long length"), name   # the first: the poll's wire decode
        assert got[2].links.port_id == tuple(pb.RackTelemetryBatch.FromString(raw).links.port_id), name


def test_a_poll_cut_at_once_is_the_poll_cut_batch_by_batch(monkeypatch) -> None:
    """facility-sim's ticks: the at-once cut (second tick) gives the RackBatches the batch-by-batch one does."""
    from datetime import UTC, datetime

    from twin.core.facility.spec import load_facility_spec
    from twin.facility_sim.adapters.codec import TickEncoder
    from twin.facility_sim.domain.model import FacilityModel
    from twin.facility_sim.layout import build_layout

    layout = build_layout(load_facility_spec("site-100k"), racks=16, seed=0)
    model = FacilityModel(layout.arrays, seed=0)
    state = model.initial_state()
    enc = TickEncoder(layout)
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for sequence in (1, 2):
        state, tick = model.step(state, 0.0, 1.0)
        raws = [e.value for e in enc.encode(tick, t, sequence=sequence)]
    msgs = [pb.RackTelemetryBatch.FromString(r) for r in raws]
    decode_batches(msgs, raws)
    assert codec._link_sections_at_once([(r, *codec._top_fields(r, len(m.nodes), m.rack_id)[2:], m.rack_id, m)
                                         for r, m in zip(raws, msgs, strict=True)]) is not None
    at_once = decode_batches(msgs, raws)
    with monkeypatch.context() as m:
        m.setattr(codec, "_link_sections_at_once", lambda sections: None)
        one_by_one_ = decode_batches(msgs, raws)
    for a, b in zip(at_once, one_by_one_, strict=True):
        same(a, b)


def test_without_the_wire_path_nothing_is_cut_at_once(monkeypatch) -> None:
    """A proto the wire path does not fit (codec._TAGS None, so no link field tags either): the message path."""
    rng = np.random.default_rng(3)
    msgs = [_rack(i, links_message(rng, 4), 1) for i in range(3)]
    monkeypatch.setattr(codec, "_TAGS", None)
    monkeypatch.setattr(codec, "_LINK_FIELD_TAGS", None)
    got = decode_batches(msgs, [m.SerializeToString() for m in msgs])
    assert [b.links.port_id for b in got] == [tuple(m.links.port_id) for m in msgs]
