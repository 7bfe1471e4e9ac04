"""codec.decode_batches' wire path (GPU fields and link counters cut from the record's bytes, link varints
decoded in one numpy pass for the whole poll) against its message path (every value read through the
protobuf containers): the same RackBatch, field by field, for facility-sim ticks, randomized batches and
the same batches re-encoded in every way the wire format allows (fields reordered, split, repeated, not
packed, unknown fields, long varints)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

import twin.ingest.adapters.codec as codec
from twin.ingest.adapters.codec import DECODE_ERRORS, decode_batches
from twin.ingest.domain.model import LINK_COUNT_FIELDS, RACK_SCALAR_FIELDS
from twin.telemetry.v1 import telemetry_pb2 as pb

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def container_path(msgs: list, monkeypatch: pytest.MonkeyPatch) -> list:
    """decode_batches with the wire paths turned off: every value through the protobuf containers."""
    with monkeypatch.context() as m:
        m.setattr(codec, "_TAGS", None)
        m.setattr(codec, "_gpu_wire_parts", lambda gpus: None)
        return decode_batches(msgs)


def same_array(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype, what
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), what


def same(a, b) -> None:
    """Field by field: the same values of the same types, arrays of the same dtype, NaN in the same places."""
    if isinstance(a, DECODE_ERRORS) or isinstance(b, DECODE_ERRORS):
        assert type(a) is type(b) and str(a) == str(b)
        return
    for f in ("site_id", "rack_id", "sample_time", "sequence", "source"):
        assert getattr(a, f) == getattr(b, f) and type(getattr(a, f)) is type(getattr(b, f)), f
    g, h = a.gpus, b.gpus
    assert g.node_ids == h.node_ids
    for f in ("node_offsets", "gpu_index", "floats", "counts"):
        same_array(getattr(g, f), getattr(h, f), f)
    assert (g.value_offsets is None) == (h.value_offsets is None)
    if g.value_offsets is not None:
        assert g.value_offsets.keys() == h.value_offsets.keys()
        for f in g.value_offsets:
            same_array(g.value_offsets[f], h.value_offsets[f], f)
    assert (a.rack is None) == (b.rack is None)
    if a.rack is not None:
        same_array(a.rack.pdu_input_power_w, b.rack.pdu_input_power_w, "pdu_input_power_w")
        for f in RACK_SCALAR_FIELDS:
            x, y = getattr(a.rack, f), getattr(b.rack, f)
            assert type(x) is type(y) and (x == y or (x != x and y != y)), f
    assert a.links.port_id == b.links.port_id
    assert list(a.links.counters) == list(b.links.counters) == list(LINK_COUNT_FIELDS)
    for f in LINK_COUNT_FIELDS:
        same_array(a.links.counters[f], b.links.counters[f], f)
    same_array(a.links.link_state, b.links.link_state, "link_state")


def check(raws: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list:
    """Parse, decode with the raw bytes, without them (serialized), one by one, and by containers: all the same."""
    msgs = [pb.RackTelemetryBatch.FromString(r) for r in raws]
    want = container_path(msgs, monkeypatch)
    for got in (decode_batches(msgs, raws), decode_batches(msgs), [decode_batches([m], [r])[0] for m, r in
                                                                     zip(msgs, raws, strict=True)]):
        for a, b in zip(got, want, strict=True):
            same(a, b)
    return want


# -- raw wire writing (protobuf encoding spec), for the re-encodings -----------------------------------

def varint(n: int, extra: int = 0) -> bytes:
    """n as a base-128 varint, with `extra` redundant continuation bytes (a longer encoding parsers accept)."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    if extra:
        out += bytes([n | 0x80] + [0x80] * (extra - 1) + [0])
    else:
        out.append(n)
    return bytes(out)


def fields(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(field number, wire type, payload or varint bytes) of a serialized message's top-level fields."""
    out, pos = [], 0
    while pos < len(raw):
        key, pos = read_varint(raw, pos)
        if key & 7 == 0:
            _, end = read_varint(raw, pos)
            out.append((key >> 3, 0, raw[pos:end]))
        elif key & 7 == 2:
            n, pos = read_varint(raw, pos)
            end = pos + n
            out.append((key >> 3, 2, raw[pos:end]))
        elif key & 7 in (1, 5):
            end = pos + (8 if key & 7 == 1 else 4)
            out.append((key >> 3, key & 7, raw[pos:end]))
        pos = end
    return out


def read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = raw[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def write(parts: list[tuple[int, int, bytes]], long_lengths: bool = False) -> bytes:
    return b"".join(varint(no << 3 | wt) + (varint(len(p), extra=1 if long_lengths else 0) + p if wt == 2 else p)
                    for no, wt, p in parts)


def unpacked(payload: bytes, no: int, fixed: bool) -> list[tuple[int, int, bytes]]:
    """A packed payload as one field per value (the non-packed encoding, which parsers must accept)."""
    if fixed:
        return [(no, 1, payload[i:i + 8]) for i in range(0, len(payload), 8)]
    out, pos = [], 0
    while pos < len(payload):
        _, end = read_varint(payload, pos)
        out.append((no, 0, payload[pos:end]))
        pos = end
    return out


def reencodings(raw: bytes, rng: np.random.Generator) -> list[bytes]:
    """Other serializations of (mostly) the same batch: what a producer other than protobuf's may send."""
    top = fields(raw)
    out = [write(top, long_lengths=True)]
    singular = [f for f in top if f[0] != 5]
    nodes = [f for f in top if f[0] == 5]
    out.append(write(singular[::-1] + nodes))                 # fields in another order
    out.append(write(nodes[:1] + singular + nodes[1:]))       # nodes not one run
    out.append(write(top + [(15, 0, varint(7)), (14, 2, b"xy")]))   # unknown fields
    out.append(write(top + [f for f in singular if f[0] in (2, 4, 6, 7)]))   # singular fields sent again (merged)

    def inner(no: int, rewrite) -> bytes:
        return write([(n, wt, write(rewrite(fields(p))) if n == no and wt == 2 else p) for n, wt, p in top])

    def split_packed(fs):   # a packed field in two pieces (concatenated by the parser)
        res = []
        for n, wt, p in fs:
            cut = len(p) // 2 if n != 1 else 0
            if wt == 2 and cut and rng.random() < 0.5:
                vals = unpacked(p, n, fixed=False)
                res += [(n, 2, b"".join(v for _, _, v in vals[:len(vals) // 2])),
                        (n, 2, b"".join(v for _, _, v in vals[len(vals) // 2:]))]
            else:
                res.append((n, wt, p))
        return res

    out.append(inner(7, lambda fs: [f for f in fs if f[0] != 1] + [f for f in fs if f[0] == 1]))   # ports last
    out.append(inner(7, lambda fs: [g for n, wt, p in fs for g in (unpacked(p, n, False) if n > 1 else [(n, wt, p)])]))
    out.append(inner(7, split_packed))
    out.append(inner(7, lambda fs: fs + [(9, 2, b"\x01")]))

    def nodes_rewrite(rewrite_gpus) -> bytes:
        res = []
        for n, wt, p in top:
            if n == 5:
                p = write([(m, w, write(rewrite_gpus(fields(q))) if m == 2 else q) for m, w, q in fields(p)])
            res.append((n, wt, p))
        return write(res)

    out.append(nodes_rewrite(lambda fs: fs[::-1]))
    out.append(nodes_rewrite(lambda fs: [g for n, wt, p in fs
                                         for g in (unpacked(p, n, fixed=2 <= n <= 11) if n != 1 else [(n, wt, p)])]))
    out.append(nodes_rewrite(lambda fs: fs + [(15, 2, b"\x00")]))
    out.append(nodes_rewrite(lambda fs: [(n, wt, p) for n, wt, p in fs if n != 3]))
    return out


# -- batches --------------------------------------------------------------------------------------------

IDS = ["n", "", "knoten-ü", "节点", "h1a-0007-n00"]


def pick(rng: np.random.Generator, options: list, k: int | None = None, p: list[float] | None = None):
    """One of `options` (k of them: a list) as the Python objects they are (numpy would turn 2**64 - 1 into a float)."""
    at = rng.choice(len(options), k, p=p)
    return options[at] if k is None else [options[i] for i in at]


def random_batch(rng: np.random.Generator) -> pb.RackTelemetryBatch:
    m = pb.RackTelemetryBatch(site_id="site-ä" if rng.random() < 0.2 else "site",
                              rack_id=pick(rng, ["r1", "räck-2", "", "h1a-0007"]),
                              sequence=pick(rng, [0, 1, 300, 2**64 - 1]), source="fuzz")
    if rng.random() < 0.9:
        m.sample_time.seconds = int(T.timestamp()) if rng.random() < 0.9 else 2**40   # 2**40: a decode error
    for _ in range(int(rng.integers(0, 6))):
        node = m.nodes.add(node_id=pick(rng, IDS))
        if rng.random() < 0.1:
            continue                                             # a node without GPU samples
        n = pick(rng, [8, 8, 8, 1, 0, 4])
        g = node.gpus
        g.gpu_index.extend(pick(rng, [0, 1, 7, 127, 128, 2**32 - 1], n, p=[.3, .3, .3, .04, .03, .03]))
        for f in codec.GPU_FLOAT_FIELDS:
            k = n if rng.random() < 0.95 else int(rng.integers(0, 10))   # unequal lengths now and then
            getattr(g, f).extend(pick(rng, [0.0, 1.5, -2.0, np.nan, np.inf, 700.25], k))
        for f in codec.GPU_COUNT_FIELDS:
            k = n if rng.random() < 0.95 else int(rng.integers(0, 10))
            big = rng.random() < 0.1
            getattr(g, f).extend(pick(rng, [0, 3, 127, 128, 2**63, 2**64 - 1] if big else [0, 1, 2], k))
    if rng.random() < 0.8:
        r = m.rack
        r.pdu_input_power_w.extend(pick(rng, [0.0, 9000.5, np.nan], int(rng.integers(0, 4))))
        for f in RACK_SCALAR_FIELDS:
            if rng.random() < 0.7:
                setattr(r, f, pick(rng, [0.0, 24.5, -1.0, np.nan]))
    if rng.random() < 0.85:
        lk = m.links
        ports = int(rng.integers(0, 40))
        lk.port_id.extend(f"{pick(rng, IDS)}/nic{i}" for i in range(ports))
        for f in LINK_COUNT_FIELDS:
            k = ports if rng.random() < 0.9 else int(rng.integers(0, 45))
            bits = rng.integers(0, 65, k)
            getattr(lk, f).extend(int(rng.integers(0, 2**62)) * 4 + 3 >> (64 - int(b)) if b else 0 for b in bits)
        k = ports if rng.random() < 0.9 else int(rng.integers(0, 45))
        lk.link_state.extend(pick(rng, [0, 1, 2, 3, 7, -1, -2**31, 2**31 - 1], k,
                                  p=[.2, .5, .1, .1, .025, .025, .025, .025]))
    return m


def test_random_batches_and_their_reencodings_decode_alike(monkeypatch) -> None:
    rng = np.random.default_rng(13)
    for _ in range(40):
        msgs = [random_batch(rng) for _ in range(8)]
        raws = [m.SerializeToString() for m in msgs]
        check(raws, monkeypatch)
        for raw in raws[:3]:
            check(reencodings(raw, rng), monkeypatch)


def test_counters_near_2_64_and_enum_values_beyond_int32(monkeypatch) -> None:
    """Link varints decoded in numpy: the full uint64 range, and a LinkState varint is an int32 (its low 32
    bits; a negative one is ten bytes), as the protobuf parser reads it."""
    lk = pb.LinkSamples(port_id=["a", "b", "c", "d"], tx_bytes=[2**64 - 1, 2**63, 2**56 - 1, 0],
                        rx_bytes=[1, 2**35, 2**49, 2**62], tx_errors=[0, 0, 0, 127], rx_errors=[128, 0, 0, 0],
                        link_state=[1, -1, -2**31, 2**31 - 1])
    msg = pb.RackTelemetryBatch(rack_id="r", links=lk)
    raw = msg.SerializeToString()
    state = (6, 2, varint(2**32 + 1) + varint(2**35 + 3) + varint(2**64 - 1) + varint(3, extra=3) + varint(2))
    links = write([f for f in fields(lk.SerializeToString()) if f[0] != 6] + [state])
    odd = write([(n, wt, links if n == 7 else p) for n, wt, p in fields(raw)])
    (a, b) = check([raw, odd], monkeypatch)
    assert a.links.counters["tx_bytes"].tolist() == [2**64 - 1, 2**63, 2**56 - 1, 0]
    assert a.links.link_state.tolist() == [1, -1, -2**31, 2**31 - 1]
    assert b.links.link_state.tolist() == [1, 3, -1, 3, 2]


def test_facility_sim_ticks_decode_alike(monkeypatch) -> None:
    """Two ticks of facility-sim's encoder (the second hits the cached layouts), and a batch whose nodes
    keep their run's length with another inner layout (a cached layout must not be taken for it)."""
    from twin.core.facility.spec import load_facility_spec
    from twin.facility_sim.adapters.codec import TickEncoder
    from twin.facility_sim.domain.model import FacilityModel
    from twin.facility_sim.layout import build_layout

    layout = build_layout(load_facility_spec("site-100k"), racks=12, seed=0)
    model = FacilityModel(layout.arrays, seed=0)
    state = model.initial_state()
    enc = TickEncoder(layout)
    for sequence in (1, 2):
        state, tick = model.step(state, 0.0, 1.0)
        raws = [e.value for e in enc.encode(tick, T, sequence=sequence)]
        check(raws, monkeypatch)
        with monkeypatch.context() as m:   # these take the wire path all the way
            m.setattr(codec, "_gpu_wire_parts", None)
            m.setattr(codec, "decode_links", None)
            decode_batches([pb.RackTelemetryBatch.FromString(r) for r in raws], raws)
    odd = pb.RackTelemetryBatch.FromString(raws[0])
    g = odd.nodes[1].gpus
    del g.power_w[-1]                    # 8 bytes shorter ...
    g.ecc_sbe_total.extend([0] * 8)      # ... and 8 bytes longer: the same run length
    wide = pb.RackTelemetryBatch.FromString(raws[1])
    wide.nodes[0].gpus.xid_errors[2] = 300       # a two-byte GPU counter: the node by node path
    wide.links.tx_errors[0] = 2**64 - 1
    short = pb.RackTelemetryBatch.FromString(raws[3])
    del short.nodes[2].gpus.ecc_dbe_total[:]
    short.nodes[2].gpus.ecc_dbe_total.extend([300] * 4)   # 4 values in 8 bytes: the run keeps its layout
    longer = pb.RackTelemetryBatch.FromString(raws[4])
    longer.nodes[1].node_id += "-ü"          # its nodes no longer evenly spaced: not a grid
    got = check([raws[0], odd.SerializeToString(), wide.SerializeToString(), raws[2], short.SerializeToString(),
                 longer.SerializeToString()], monkeypatch)
    assert got[1].gpus.value_offsets is not None and got[2].gpus.counts.max() == 300
    assert got[4].gpus.value_offsets["ecc_dbe_total"].tolist() == [0, 8, 16, 20, 28]


@pytest.mark.parametrize("widest", [2, 5, 8, 10])
def test_link_varints_of_every_width_decode_like_the_spec(widest: int) -> None:
    """codec._varints (8-byte words for polls whose varints are all at most 8 bytes, else bytewise) against
    a plain varint reader, over values of every width up to `widest` bytes, some with redundant continuation
    bytes, at every alignment, and the value index at each batch's first byte."""
    rng = np.random.default_rng(widest)
    bits = rng.integers(0, 7 * widest + 1, 3000)
    values = [int(rng.integers(0, 2**63)) >> max(0, 63 - b) if b < 64 else int(rng.integers(2**63, 2**64 - 1,
                                                                                          dtype=np.uint64))
              for b in bits]
    parts = []
    for v in values:
        plain = varint(v)
        extra = int(rng.integers(0, widest - len(plain) + 1)) if len(plain) < widest else 0
        parts.append(varint(v, extra=extra))
    assert max(map(len, parts)) <= widest
    buf = b"".join(parts)
    cuts = sorted(rng.choice(len(parts), 40, replace=False).tolist()) + [len(parts)]
    offsets = [sum(map(len, parts[:c])) for c in cuts]
    got, at = codec._varints(buf, offsets)
    want, pos = [], 0
    while pos < len(buf):
        v, pos = read_varint(buf, pos)
        want.append(v & (2**64 - 1))   # bits past 64 dropped, as protobuf's parser does
    assert got.dtype == np.uint64 and got.tolist() == want == values
    assert at == cuts
    assert codec._varints(buf + b"\x80", offsets) is None   # the last varint cut


def _links_field_of(size: int) -> bytes:
    """A links field (LinkSamples, one port) of exactly `size` bytes, all ASCII (valid inside a string too)."""
    for pad in range(size):
        lk = pb.LinkSamples(port_id=["p" * pad], tx_bytes=[5], rx_bytes=[6], tx_errors=[0], rx_errors=[1],
                            link_state=[1]).SerializeToString()
        field = write([(7, 2, lk)])
        if len(field) == size:
            return field
    raise AssertionError(size)


def test_a_rack_template_is_not_taken_for_another_walk(monkeypatch) -> None:
    """The walk up to the links is taken from the rack's last batch only when it is the same walk: the same
    tag and length bytes, the sequence's varint as wide, the nodes' run as long. Each second batch below keeps
    the first's tag and length bytes where the first had them, and hides a links field in its source string
    exactly where the first batch's links began: a template taken for it would decode those links."""
    head = write([(1, 2, b"s"), (2, 2, b"r")])
    lk = write([(7, 2, pb.LinkSamples(port_id=["a"], tx_bytes=[1], rx_bytes=[1], tx_errors=[1], rx_errors=[1],
                                      link_state=[2]).SerializeToString())])
    # the sequence one byte narrower (300: two bytes; 5: one), then a source string whose length byte (58)
    # is where the links tag was, its 58 bytes a links field's rest
    first = head + b"\x20" + varint(300) + lk
    hidden = _links_field_of(59)
    second = head + b"\x20" + varint(5) + b"\x42" + hidden
    assert second.index(hidden) == len(head) + 3 == first.index(lk) and hidden[0] == len(hidden) - 1
    got = check([first, second], monkeypatch)
    assert got[1].links.port_id == () and got[1].source == hidden[1:].decode()

    # the nodes' run 8 bytes shorter (one double less), the same bytes up to it
    m = pb.RackTelemetryBatch(site_id="s", rack_id="q", sequence=1)
    for j in range(2):
        node = m.nodes.add(node_id=f"n{j}")
        node.gpus.gpu_index.extend(range(8))
        for f in codec.GPU_FLOAT_FIELDS:
            getattr(node.gpus, f).extend([1.5] * 8)
        for f in codec.GPU_COUNT_FIELDS:
            getattr(node.gpus, f).extend([0] * 8)
    first = m.SerializeToString() + lk
    del m.nodes[1].gpus.dram_active[-1]
    short = m.SerializeToString()
    assert len(short) == len(first) - len(lk) - 8
    second = short + write([(8, 2, b"x" * 6 + _links_field_of(45))])
    assert second.index(_links_field_of(45)) == len(first) - len(lk)
    got = check([first, second], monkeypatch)
    assert got[1].links.port_id == () and got[1].gpus.value_offsets is not None


def _uniform_batch(rng: np.random.Generator, i: int, ports: int, phases: int) -> pb.RackTelemetryBatch:
    """A batch with `ports` ports and `phases` PDU phases, its values particular to it (a row handed to the
    wrong batch shows)."""
    m = pb.RackTelemetryBatch(site_id="s", rack_id=f"u{i}", sequence=i, source="u")
    m.sample_time.seconds = int(T.timestamp())
    m.rack.pdu_input_power_w.extend([1000.0 * i + p for p in range(phases)])
    m.rack.inlet_air_temp_c = float(i)
    lk = m.links
    lk.port_id.extend(f"n{i}/p{p}" for p in range(ports))
    for f in LINK_COUNT_FIELDS:
        getattr(lk, f).extend(int(v) for v in rng.integers(0, 2**62, ports) >> rng.integers(0, 62, ports))
    lk.link_state.extend(pick(rng, [0, 1, 2, 3, -1], ports))
    return m


def test_uniform_polls_take_their_rows_in_order(monkeypatch) -> None:
    """A poll whose wire-path batches all have as many ports (and racks as many phases) gets its link counters,
    states and PDU phases as rows of one view, in order: the same as the message path, also with batches between
    them that take no row (a decode error, the message path for an unknown field, no rack) and for polls that
    are not uniform (a batch without links, a rack without phases, another port count)."""
    rng = np.random.default_rng(7)
    taken = []
    real_repeat = codec.repeat
    monkeypatch.setattr(codec, "repeat", lambda x: taken.append(1) or real_repeat(x))   # used by the row path only
    msgs = [_uniform_batch(rng, i, 5, 3) for i in range(12)]
    msgs[3].sample_time.seconds = 2**40                 # a decode error
    msgs[6].ClearField("rack")                          # no PDU row
    raws = [m.SerializeToString() for m in msgs]
    raws[8] += b"\xf8\x01\x05"                          # an unknown field 31: the message path, no row

    def rows_taken(raws: list[bytes]) -> bool:
        taken.clear()
        decode_batches([pb.RackTelemetryBatch.FromString(r) for r in raws], raws)
        return bool(taken)

    got = check(raws, monkeypatch)
    assert rows_taken(raws) and isinstance(got[3], DECODE_ERRORS) and got[6].rack is None
    assert got[9].rack.pdu_input_power_w.tolist() == [9000.0, 9001.0, 9002.0]
    for odd in ("links", "phases", "ports"):
        m = _uniform_batch(rng, 99, 4 if odd == "ports" else 5, 0 if odd == "phases" else 3)
        if odd == "links":
            m.ClearField("links")
        poll = raws[:5] + [m.SerializeToString()] + raws[5:]
        check(poll, monkeypatch)
        assert rows_taken(poll) == (odd == "phases")
