"""Protobuf ↔ domain: the one place RackTelemetryBatch / TelemetrySamples meet the ingest domain.

The feed adapters (dcgm, redfish, infiniband, http_api) never build telemetry protobufs: they make
domain objects (RackBatch, Links) and call `encode_batch` / `encode_links` here; `Publish` is the
callback type they hand encoded batches to, and the LINK_STATE_* values are the proto enum's.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from twin.ingest.domain.caches import CACHE_BYTES, BoundedCache, held_bytes
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
    RACK_SCALAR_FIELDS,
    BatchKey,
    GpuColumns,
    Links,
    RackBatch,
    RackEnv,
)
from twin.telemetry.v1 import telemetry_pb2 as pb

# Stable namespace for the ce_id of normalized records: the same batch always gets the same id, so a
# re-publication after a crash is recognisable downstream (sinks dedupe on ce_id).
SAMPLES_NAMESPACE = uuid.UUID("5d0c1f0e-8f7a-4b9e-9a51-7d1b2c3e4f60")

# twin.telemetry.v1.LinkState, for adapters that derive a link state (as plain ints, like Links.link_state).
LINK_STATE_UNSPECIFIED = pb.LINK_STATE_UNSPECIFIED
LINK_STATE_UP = pb.LINK_STATE_UP
LINK_STATE_DOWN = pb.LINK_STATE_DOWN
LINK_STATE_DEGRADED = pb.LINK_STATE_DEGRADED

# What a feed adapter calls with each encoded batch (the app sends it to facility.telemetry.v1).
Publish = Callable[[pb.RackTelemetryBatch], Awaitable[None]]


# google.protobuf.Timestamp's valid range (timestamp.proto): 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_TIMESTAMP_MIN_S, _TIMESTAMP_MAX_S = -62_135_596_800, 253_402_300_799


def timestamp_to_datetime(ts: Timestamp) -> datetime:
    """UTC datetime of a Timestamp; ValueError for one outside the type's documented range."""
    if not _TIMESTAMP_MIN_S <= ts.seconds <= _TIMESTAMP_MAX_S or not 0 <= ts.nanos < 1_000_000_000:
        raise ValueError(f"timestamp seconds={ts.seconds} nanos={ts.nanos} is outside the Timestamp range")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def datetime_to_timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def _flat(containers: list, dtype) -> tuple[np.ndarray, list[int]]:
    """Many repeated-field containers as one array (one numpy conversion) plus their start offsets."""
    offsets = [0]
    flat: list = []
    for c in containers:
        flat += c[:]   # slicing a upb container is much cheaper than iterating it
        offsets.append(len(flat))
    return (np.array(flat, dtype=dtype) if flat else np.empty(0, dtype)), offsets


def _packed_spans(raw: bytes) -> dict[int, tuple[int, int]] | None:
    """field number -> (offset, length) of the fields of a serialized message whose fields are all
    length-delimited (packed repeated) with one-byte tags, each at most once; None otherwise."""
    spans: dict[int, tuple[int, int]] = {}
    pos, end = 0, len(raw)
    while pos < end:
        tag = raw[pos]
        if tag & 0x87 != 0x02 or (tag >> 3) in spans:
            return None
        pos += 1
        length = shift = 0
        while True:
            if pos >= end:
                return None
            b = raw[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        spans[tag >> 3] = (pos, length)
        pos += length
    return spans if pos == end else None


def _gpu_field_numbers() -> tuple[int, tuple[int, ...], tuple[int, ...]] | None:
    """GpuSamples field numbers for the wire fast path, None when the proto no longer fits it."""
    fields = pb.GpuSamples.DESCRIPTOR.fields_by_name
    d = pb.GpuSamples.DESCRIPTOR.fields_by_name["gpu_index"]
    ok = d.type == d.TYPE_UINT32
    ok &= all(fields[f].type == d.TYPE_DOUBLE for f in GPU_FLOAT_FIELDS)
    ok &= all(fields[f].type == d.TYPE_UINT64 for f in GPU_COUNT_FIELDS)
    numbers = [f.number for f in pb.GpuSamples.DESCRIPTOR.fields]
    ok &= max(numbers) <= 15 and all(f.is_repeated for f in pb.GpuSamples.DESCRIPTOR.fields)
    if not ok:
        return None
    return (d.number, tuple(fields[f].number for f in GPU_FLOAT_FIELDS),
            tuple(fields[f].number for f in GPU_COUNT_FIELDS))


_GPU_NUMBERS = _gpu_field_numbers()


# serialized GpuSamples length -> (header getter, header bytes, parts getter, aligned)
_NODE_LAYOUTS: dict[int, tuple] = {}


def _node_parts(raw: bytes) -> tuple[tuple[bytes, ...], bool] | None:
    """(gpu_index, float fields..., count fields...) packed payloads of one serialized GpuSamples, and
    whether every field holds one value per gpu_index entry when all varints are one byte (the only
    case the wire path keeps); None: not the all-packed layout (or a double field whose length is not
    a multiple of 8).

    Nodes of one source serialize alike: a layout seen before (same length, and the same tag and
    length bytes at the same places, which fixes where every field starts and ends) is cut with two
    C calls (operator.itemgetter) instead of walking the bytes in Python."""
    hit = _NODE_LAYOUTS.get(len(raw))
    if hit is not None and hit[0](raw) == hit[1]:
        return hit[2](raw), hit[3]
    spans = _packed_spans(raw)
    if spans is None or _GPU_NUMBERS is None:
        return None
    index_no, float_nos, count_nos = _GPU_NUMBERS
    if any(spans.get(no, (0, 0))[1] & 7 for no in float_nos):
        return None
    lengths = [spans.get(no, (0, 0))[1] for no in (index_no, *float_nos, *count_nos)]
    aligned = lengths[1:] == [8 * lengths[0]] * len(float_nos) + [lengths[0]] * len(count_nos)
    cuts = [slice(p, p + n) for p, n in (spans.get(no, (0, 0)) for no in (index_no, *float_nos, *count_nos))]
    header = sorted(i for p, n in spans.values() for i in range(p - 1 - _varint_size(n), p))
    if len(header) >= 2 and len(_NODE_LAYOUTS) < 256:
        get_header = operator.itemgetter(*header)
        _NODE_LAYOUTS[len(raw)] = (get_header, get_header(raw), operator.itemgetter(*cuts), aligned)
    return tuple(raw[c] for c in cuts), aligned


def _varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (protobuf encoding spec)."""
    if n < 0x4000:   # one or two bytes (a record's length, in samples_record)
        return bytes((n,)) if n < 0x80 else bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_size(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _gpu_wire_parts(gpus: list) -> tuple | None:
    """The packed GPU fields of every node cut straight from the wire bytes, field-major (field m of
    node j is part m * k + j): (doubles bytes, their offsets, counter bytes, their offsets, gpu_index
    bytes, its offsets), offsets in values. Doubles are taken as they are; varints bytewise, which
    needs every value to fit in 7 bits (also covers indexes and the usual zero counters). Same values
    as the container path; None: use that path. The field offsets are None when every field of every
    node is aligned with gpu_index."""
    if _GPU_NUMBERS is None:
        return None
    nf, nc = len(_GPU_NUMBERS[1]), len(_GPU_NUMBERS[2])
    k = len(gpus)
    float_parts: list[bytes] = [b""] * (nf * k)
    count_parts: list[bytes] = [b""] * (nc * k)
    index_parts: list[bytes] = []
    aligned = True
    for j, g in enumerate(gpus):
        cut = _node_parts(g.SerializeToString())
        if cut is None:
            return None
        parts, node_aligned = cut
        aligned &= node_aligned
        index_parts.append(parts[0])
        float_parts[j::k] = parts[1:1 + nf]      # field-major: field m of node j at m * k + j
        count_parts[j::k] = parts[1 + nf:]
    counts_raw, index_raw = b"".join(count_parts), b"".join(index_parts)
    if not (counts_raw.isascii() and index_raw.isascii()):
        return None
    i_off = list(accumulate(map(len, index_parts), initial=0))
    if aligned:
        return b"".join(float_parts), None, counts_raw, None, index_raw, i_off
    f_off = [n >> 3 for n in accumulate(map(len, float_parts), initial=0)]
    c_off = list(accumulate(map(len, count_parts), initial=0))
    return b"".join(float_parts), f_off, counts_raw, c_off, index_raw, i_off


def _gpu_arrays_from_containers(gpus: list) -> tuple:
    """(floats, their offsets, counters, their offsets, gpu_index, its offsets) read through the
    protobuf containers, field-major like _gpu_wire_parts (any layout, any varint width)."""
    floats, f_off = _flat([getattr(g, f) for f in GPU_FLOAT_FIELDS for g in gpus], np.float64)
    counts, c_off = _flat([getattr(g, f) for f in GPU_COUNT_FIELDS for g in gpus], np.uint64)
    index, i_off = _flat([g.gpu_index for g in gpus], np.uint32)
    return floats, f_off, counts, c_off, index, i_off


# What decoding a record may raise: a field no datetime or array can hold (the handler dead-letters it).
DECODE_ERRORS = (ValueError, OverflowError)


def decode_batch(msg: pb.RackTelemetryBatch, raw: bytes | None = None) -> RackBatch:
    """Domain form of one batch; arrays keep their received lengths (validation checks them).
    ValueError (or OverflowError): a field no datetime or array can hold. `raw`: as in decode_batches."""
    (out,) = decode_batches([msg], None if raw is None else [raw])
    if isinstance(out, DECODE_ERRORS):
        raise out
    return out


def _read_varint(raw: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the varint at pos; (-1, end + 1) when it runs past end or over 10 bytes."""
    value = shift = 0
    for at in range(pos, min(end, pos + 10)):
        b = raw[at]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at + 1
        shift += 7
    return -1, end + 1


def _wire_tags() -> tuple | None:
    """Wire tags (field number << 3 | wire type, protobuf encoding spec) the batch wire path walks:
    (top-level tag -> field number, nodes tag, links tag, sample_time tag, NodeSamples (node_id, gpus) tags,
    port_id tag, LinkSamples tag -> index in LINK_COUNT_FIELDS + link_state); None when the proto no
    longer fits it (one-byte tags; strings, messages and uint64 at the top; these node and link fields)."""
    fd = FieldDescriptor
    wire_type = {fd.TYPE_STRING: 2, fd.TYPE_MESSAGE: 2, fd.TYPE_UINT64: 0}
    batch, node, link = (m.DESCRIPTOR for m in (pb.RackTelemetryBatch, pb.NodeSamples, pb.LinkSamples))
    b, lk = batch.fields_by_name, link.fields_by_name
    ok = all(f.number <= 15 and f.type in wire_type for f in batch.fields)
    ok &= all(f.is_repeated == (f.name == "nodes") for f in batch.fields) and b["links"].type == fd.TYPE_MESSAGE
    ok &= [(f.name, f.type, f.is_repeated) for f in node.fields] == [("node_id", fd.TYPE_STRING, False),
                                                                        ("gpus", fd.TYPE_MESSAGE, False)]
    ok &= [f.name for f in link.fields] == ["port_id", *LINK_COUNT_FIELDS, "link_state"]
    ok &= all(f.number <= 15 and f.is_repeated for f in link.fields) and lk["port_id"].type == fd.TYPE_STRING
    ok &= all(lk[f].type == fd.TYPE_UINT64 for f in LINK_COUNT_FIELDS) and lk["link_state"].type == fd.TYPE_ENUM
    ok &= all(f.number <= 15 for f in node.fields)
    if not ok or _GPU_NUMBERS is None:
        return None
    top = {f.number << 3 | wire_type[f.type]: f.number for f in batch.fields}
    return (top, b["nodes"].number << 3 | 2, b["links"].number << 3 | 2, b["sample_time"].number << 3 | 2,
            tuple(f.number << 3 | 2 for f in node.fields), lk["port_id"].number << 3 | 2,
            {lk[f].number << 3 | 2: i for i, f in enumerate((*LINK_COUNT_FIELDS, "link_state"))})


_TAGS = _wire_tags()


def _top_fields(raw: bytes, k: int, rack_id: str, trust: bool = False) -> tuple | None:
    """(GPU parts of the nodes (see _nodes_run) or None, sample_time bytes, links payload start, end)
    of a serialized batch of k nodes whose top-level fields are all known ones with their wire types,
    each singular one at most once (nothing merged) and the nodes one run; None otherwise (the message path).

    A rack's batches serialize alike up to their links (the sequence's value aside): when the bytes the
    walk of the rack's last batch read there (tags, lengths, the sequence's varint width) are the same,
    so is the walk up to the links, and only the fields from there are walked. `trust`: the nodes' run is taken
    for its cached grid layout without comparing its tag and length bytes (see _nodes_run)."""
    tpl = _TOPS.get(rack_id)
    if tpl is not None:
        get_header, header, stop, varints, run_at, run_end, time_span, seen, tail = tpl
        if len(raw) >= stop and get_header(raw) == header and all(
                raw[b - 1] < 0x80 and (b - a == 1 or min(raw[a:b - 1]) >= 0x80) for a, b in varints):
            run = _nodes_run(raw, run_at, k, trust) if run_at >= 0 else (None, run_end)
            if run is not None and run[1] == run_end:
                sample_time = raw[time_span[0]:time_span[1]] if time_span else None
                # the usual rest: a links field (its length a varint of one or two bytes), then the same bytes as
                # after the last batch's links: _walk would read them as it did there (the same fields seen before)
                end = len(raw)
                if tail is not None and stop + 1 < end and raw[stop] == _TAGS[2]:
                    n, at = raw[stop + 1], stop + 2
                    if n >= 0x80:
                        n = n & 0x7F | raw[at] << 7 if at < end and raw[at] < 0x80 else -end
                        at += 1
                    if at + n == end - len(tail) and raw.endswith(tail):
                        return run[0], sample_time, at, at + n
                return _walk(raw, stop, k, set(seen), run[0], sample_time, None)
    return _walk(raw, 0, k, set(), None, None, rack_id)


# The caches below are bounded by entries and by CACHE_BYTES (domain/caches.py): their keys come from records not
# yet validated.
# rack_id -> what the walk of its last batch read before its links (see _top_fields): (header getter, header
# bytes, where the links field starts (the walk goes on from there), the varint fields' (start, end), the nodes
# run's start (-1: none) and end, sample_time's payload (start, end) or None, the field numbers seen, the bytes
# after its links field (None: no links field, or sample_time or nodes there))
_TOPS = BoundedCache(65536, CACHE_BYTES)


def _walk(raw: bytes, pos: int, k: int, seen: set[int], gpu, sample_time: bytes | None,
          record: str | None) -> tuple | None:
    """_top_fields' walk from `pos` (a field's start), `seen` the field numbers before it; `record`: the
    rack_id to keep the walk's template for (see _TOPS), None: do not."""
    top, nodes_tag, links_tag, time_tag = _TAGS[0], _TAGS[1], _TAGS[2], _TAGS[3]
    end = len(raw)
    links_at = links_end = -1
    header: list[int] = []
    varints: list[tuple[int, int]] = []
    run_at = run_end = -1
    time_span = None
    tpl = None
    while pos < end:
        tag = raw[pos]
        if record is not None and tpl is None and tag == links_tag:   # the template ends here
            tpl = (pos, tuple(varints), run_at, run_end, time_span, frozenset(seen))
        number = top.get(tag)
        if number is None or number in seen:
            return None
        seen.add(number)
        if tag == nodes_tag:      # the whole run at once: its layout knows where it ends
            run = _nodes_run(raw, pos, k)
            if run is None:
                return None
            run_at = pos
            gpu, pos = run
            run_end = pos
            continue
        n = raw[pos + 1] if pos + 1 < end else 0x80
        if n < 0x80:          # the usual one-byte varint (a short field's length, a small sequence)
            at = pos + 2
        else:
            n, at = _read_varint(raw, pos + 1, end)
        if tag & 7 == 0:      # a varint field (sequence): its value is the message's
            header.append(pos)
            varints.append((pos + 1, at))
            pos = at
            continue
        header.extend(range(pos, at))
        pos = at + n
        if n < 0 or pos > end:
            return None
        if tag == links_tag:
            links_at, links_end = at, pos
        elif tag == time_tag:
            sample_time = raw[at:pos]
            time_span = (at, pos)
    if pos != end:
        return None
    if record is not None:
        # the bytes after the links field, when the nodes and sample_time came before it (then the walk from the
        # links field on reads nothing but the links' payload span from them)
        tail = raw[links_end:] if tpl is not None and run_at < tpl[0] and (time_span or (-1,))[0] < tpl[0] else None
        stop, varints_, run_at, run_end, time_span, seen_ = tpl or (end, tuple(varints), run_at, run_end, time_span,
                                                                  frozenset(seen))
        prefix = [i for i in header if i < stop]
        if prefix:
            get_header = _tuple_getter(prefix)
            header_bytes = get_header(raw)
            # the getter keeps a tuple of the positions (as large as the header's) and the positions (ints past 256
            # are objects of their own); the header the bytes read there
            _TOPS.put(record, (get_header, header_bytes, stop, varints_, run_at, run_end, time_span, seen_, tail),
                      held_bytes(header_bytes, header_bytes, tail, varints_, seen_, each=prefix))
    return gpu, sample_time, links_at, links_end


# (node count, the bytes after the run's first tag) -> layout of that run (see _nodes_layout)
_RUN_LAYOUTS = BoundedCache(1024, CACHE_BYTES)


def _nodes_layout(run: bytes, k: int) -> tuple | None:
    """How to cut the k NodeSamples of a batch (its run of nodes fields, serialized) without walking them:
    (header getter, header bytes, parts getter (node ids, then the GpuSamples payloads field-major like
    _gpu_wire_parts), i_off, f_off, c_off, run length, grid (see _grid), node ids getter (a tuple of their
    bytes)); None when a node is not plain (node_id and gpus
    at most once each, every GpuSamples field packed at most once, doubles a multiple of 8 bytes).

    Runs of one source serialize alike: the same length and the same bytes at every place the walk read
    (tags and lengths) mean the same walk, so the same cuts."""
    node_tag = _TAGS[1]
    id_tag, gpus_tag = _TAGS[4]
    index_no, float_nos, count_nos = _GPU_NUMBERS
    order = (index_no, *float_nos, *count_nos)
    header: list[int] = []
    ids: list[slice] = []
    cuts: list[list[slice]] = []
    pos, end = 0, len(run)

    def field(at: int, stop: int) -> tuple[int, int, int]:
        """(tag, payload start, end) of the length-delimited field at `at`; the bytes read go to the header."""
        n, p = _read_varint(run, at + 1, stop)
        if n < 0 or p + n > stop:
            raise ValueError
        header.extend(range(at, p))
        return run[at], p, p + n

    try:
        while pos < end:
            tag, at, node_end = field(pos, end)
            if tag != node_tag:
                return None
            node = {}
            while at < node_end:
                tag, p, q = field(at, node_end)
                if tag not in (id_tag, gpus_tag) or tag in node:
                    return None
                node[tag] = (p, q)
                at = q
            spans: dict[int, slice] = {}
            p, q = node.get(gpus_tag, (0, 0))
            while p < q:
                tag, a, b = field(p, q)
                if tag & 7 != 2 or (tag >> 3) not in order or (tag >> 3) in spans:
                    return None
                spans[tag >> 3] = slice(a, b)
                p = b
            ids.append(slice(*node.get(id_tag, (0, 0))))
            cuts.append([spans.get(no, slice(0, 0)) for no in order])
            pos = node_end
    except ValueError:
        return None
    if len(cuts) != k:
        return None
    lengths = [[c.stop - c.start for c in node] for node in cuts]
    if any(n[1 + m] & 7 for n in lengths for m in range(len(float_nos))):
        return None
    nf = len(float_nos)
    parts = [node[m] for m in range(len(order)) for node in cuts]   # field-major: field m of node j at m * k + j
    i_off = list(accumulate((n[0] for n in lengths), initial=0))
    aligned = all(n[1:] == [8 * n[0]] * nf + [n[0]] * len(count_nos) for n in lengths)
    f_off = c_off = None
    if not aligned:
        f_off = [x >> 3 for x in accumulate((n[1 + m] for m in range(nf) for n in lengths), initial=0)]
        c_off = list(accumulate((n[1 + nf + m] for m in range(len(count_nos)) for n in lengths), initial=0))
    if len(header) < 2:
        return None
    get_header = operator.itemgetter(*header)
    grid = _grid(cuts, lengths, nf) if aligned else None
    return (get_header, get_header(run), operator.itemgetter(*ids, *parts), i_off, f_off, c_off, len(run),
            grid, _tuple_getter(ids),
            None if grid is None else (np.array(header, np.intp), np.array(get_header(run), np.uint8)))


def _layout_bytes(layout: tuple, k: int) -> int:
    """About what a _nodes_layout result holds: per header byte its position (an int) and value in the getter and
    tuple, the header positions and values again as arrays for grids; per node its id and field slices (a slice
    object and its two ints each) in the parts getter, and the offset lists."""
    slices = k * (2 + len(GPU_FLOAT_FIELDS) + len(GPU_COUNT_FIELDS))
    return held_bytes(*layout[1:]) + 60 * len(layout[1]) + 120 * slices


def _tuple_getter(items: list) -> Callable:
    """operator.itemgetter(*items), also giving a tuple for one item (itemgetter gives the item itself)."""
    get = operator.itemgetter(*items)
    return get if len(items) > 1 else lambda x: (get(x),)


def _grid(cuts: list[list[slice]], lengths: list[list[int]], nf: int) -> tuple | None:
    """(gpu_index start, first double, first counter, node stride, double field stride, counter field stride,
    GPUs per node) when every node of a run has as many GPUs and its fields at the same distances (so the
    whole poll's runs of that layout are read as strided arrays); None otherwise."""
    g = lengths[0][0]
    if not g or any(n[0] != g for n in lengths):
        return None
    starts = [[c.start for c in node] for node in cuts]
    s0 = starts[0]
    node = starts[1][0] - s0[0] if len(starts) > 1 else 0
    ff, cf = s0[2] - s0[1], s0[nf + 2] - s0[nf + 1]
    want = [s0[0]] + [s0[1] + m * ff for m in range(nf)] + [s0[nf + 1] + m * cf for m in range(len(s0) - nf - 1)]
    if any(starts[j] != [x + j * node for x in want] for j in range(len(starts))):
        return None
    return s0[0], s0[1], s0[nf + 1], node, ff, cf, g


def _nodes_run(raw: bytes, at: int, k: int, trust: bool = False) -> tuple | None:
    """((node ids, then what _gpu_wire_parts gives) or None, where the run ends) for the run of k nodes
    fields starting at raw[at], through a cached layout; None: the run does not fit the wire path's
    layouts (the message path). The GPU parts are None when a counter or an index is over 7 bits (the
    node by node path). When the run's layout is a grid (see _grid), the GPU parts are (node ids, the layout,
    the run's bytes) instead.

    `trust`: a run of a cached grid layout's length is taken for that layout without comparing its tag and length
    bytes here (~2.6 us per batch); decode_batches compares those of all the poll's runs of the layout at once
    (_grid_columns) and decodes the poll again without trust when one differs."""
    key = (k, raw[at + 1:at + 4])   # the first node's length (and what follows: a key, checked below)
    hit = _RUN_LAYOUTS.get(key)
    run = raw[at:at + hit[6]] if hit is not None else b""
    checked = not trust or hit is None or hit[7] is None
    if hit is None or len(run) != hit[6] or (checked and hit[0](run) != hit[1]):
        checked = True
        end, n, size = at, 0, -1
        while n < k and end < len(raw) and raw[end] == _TAGS[1]:   # the run's end: walk it once
            size, p = _read_varint(raw, end + 1, len(raw))
            end, n = p + size, n + 1
        if n != k or size < 0 or end > len(raw):
            return None
        run = raw[at:end]
        hit = _nodes_layout(run, k)
        if hit is None:
            return None
        _RUN_LAYOUTS.put(key, hit, _layout_bytes(hit, k))
    get_parts, size, grid, get_ids = hit[2], hit[6], hit[7], hit[8]
    if grid is not None:   # cut after the loop, for every run of this layout at once (decode_batches)
        node_ids = _node_ids(get_ids(run))
        if node_ids is None and not checked:   # not checked with the poll's runs: check it now
            return _nodes_run(raw, at, k)
        return (None if node_ids is None else (node_ids, hit, run)), at + size
    i_off, f_off, c_off = hit[3], hit[4], hit[5]
    parts = get_parts(run)
    nf = len(GPU_FLOAT_FIELDS)
    index_raw = b"".join(parts[k:2 * k])
    counts_raw = b"".join(parts[(2 + nf) * k:])
    if not (counts_raw.isascii() and index_raw.isascii()):
        return None, at + size
    node_ids = _node_ids(parts[:k])
    if node_ids is None:
        return None, at + size
    return (node_ids, b"".join(parts[2 * k:(2 + nf) * k]), f_off, counts_raw, c_off, index_raw, i_off), at + size


# node ids as serialized -> the same tuple of str each time: a rack sends the same nodes tick after tick, and
# validation checks a tuple it has seen once per rack (validation._gpus_per_node)
_NODE_IDS = BoundedCache(65536, CACHE_BYTES)


def _node_ids(raw_ids: tuple[bytes, ...]) -> tuple[str, ...] | None:
    """The node ids (UTF-8, as protobuf's string type); None when one is not valid UTF-8."""
    ids = _NODE_IDS.get(raw_ids)
    if ids is None:
        try:
            ids = tuple(map(bytes.decode, raw_ids))
        except UnicodeDecodeError:
            return None
        _NODE_IDS.put(raw_ids, ids, held_bytes(raw_ids, ids, each=(*raw_ids, *ids)))
    return ids


# rack_id -> (its port_id fields as serialized, the port ids): a rack sends the same ports tick after tick
_PORT_RUNS = BoundedCache(65536, CACHE_BYTES)


def _link_parts(raw: bytes, at: int, end: int, rack_id: str, msg: pb.RackTelemetryBatch) -> tuple | None:
    """(port ids, the packed payloads of LINK_COUNT_FIELDS and link_state) of the LinkSamples
    serialized at raw[at:end] when it is port_id fields followed by each packed field at most once;
    None otherwise (the message path). The port ids are the rack's last ones when their bytes are the same."""
    hit = _PORT_RUNS.get(rack_id)
    parts = _link_payloads(raw, at + len(hit[0]), end) if hit is not None and raw.startswith(hit[0], at) else None
    if parts is None:   # walk the port_id fields once; they are the message's port ids (no more follow)
        pos, port_tag = at, _TAGS[5]
        while pos < end and raw[pos] == port_tag:
            n = raw[pos + 1] if pos + 1 < end else 0x80
            if n < 0x80:
                pos += 2 + n
            else:
                n, p = _read_varint(raw, pos + 1, end)
                pos = p + n
                if n < 0:
                    return None
        if pos > end or (parts := _link_payloads(raw, pos, end)) is None:
            return None
        hit = (raw[at:pos], tuple(msg.links.port_id))
        _PORT_RUNS.put(rack_id, hit, held_bytes(*hit, each=hit[1]))
    return hit[1], parts


def _link_payloads(raw: bytes, pos: int, end: int) -> list[bytes] | None:
    """The packed LINK_COUNT_FIELDS and link_state payloads in raw[pos:end] (b"": absent), each field at
    most once and nothing else there; None otherwise. A payload ends with a varint's last byte (a parsed
    message's always does)."""
    index = _TAGS[6]
    parts = [b""] * len(index)
    seen = 0   # bit i: field i met
    while pos < end:
        i = index.get(raw[pos])
        if i is None or seen >> i & 1:
            return None
        seen |= 1 << i
        n = raw[pos + 1] if pos + 1 < end else 0x80
        if n < 0x80:
            p = pos + 2
        elif pos + 2 < end and raw[pos + 2] < 0x80:
            n, p = n & 0x7F | raw[pos + 2] << 7, pos + 3
        else:
            n, p = _read_varint(raw, pos + 1, end)
        pos = p + n
        if n < 0 or pos > end or (n and raw[pos - 1] & 0x80):
            return None
        parts[i] = raw[p:pos]
    return parts if pos == end else None


def _link_sections(sections: list[tuple]) -> tuple[list, bytes, list[int], bytes, list[int]]:
    """The link sections of a poll's wire-path batches ((bytes, links payload start, end (-1, -1: no links field),
    rack_id, message) each): per section its (port ids, index among the cut ones) or, when it cannot be cut, its
    Links through the containers; then the cut sections' LINK_COUNT_FIELDS payloads joined (section by section,
    field by field) with the offset where each payload starts (and the end), and link_state's the same way.
    What _link_parts gives section by section, in order; the whole poll at once when every section's port ids are
    its rack's last ones and the fields after them are in the usual form (_link_bodies)."""
    at_once = _link_sections_at_once(sections)
    if at_once is not None:
        return at_once
    links: list = []
    link_blobs: list[bytes] = []
    state_blobs: list[bytes] = []
    empty = (b"",) * len(LINK_COUNT_FIELDS)
    for raw, at, end, rack_id, msg in sections:
        if at < 0:   # no links field
            links.append(((), len(state_blobs)))
            link_blobs += empty
            state_blobs.append(b"")
            continue
        cut = _link_parts(raw, at, end, rack_id, msg)
        if cut is None:
            links.append(decode_links(msg.links))
        else:
            links.append((cut[0], len(state_blobs)))
            link_blobs += cut[1][:-1]
            state_blobs.append(cut[1][-1])
    return (links, b"".join(link_blobs), list(accumulate(map(len, link_blobs), initial=0)), b"".join(state_blobs),
            list(accumulate(map(len, state_blobs), initial=0)))


def _link_sections_at_once(sections: list[tuple]) -> tuple | None:
    """_link_sections when every section with links starts with its rack's last port-id run (_PORT_RUNS, the
    bytes compared) and every field after the port ids is each packed field once, in field order, its length a
    one- or two-byte varint (_link_bodies); None otherwise (then section by section). Same result: those are
    the sections _link_parts cuts from the rack's last port ids, and it finds the same payloads there."""
    if _LINK_FIELD_TAGS is None:   # the proto no longer fits the wire path (then no section comes here)
        return None
    get = _PORT_RUNS.get
    bodies: list[bytes] = []
    links: list[tuple] = []
    for j, (raw, at, end, rack_id, _) in enumerate(sections):
        if at < 0:
            bodies.append(b"")
            links.append(((), j))
            continue
        hit = get(rack_id)
        if hit is None or not raw.startswith(hit[0], at):
            return None
        bodies.append(raw[at + len(hit[0]):end])
        links.append((hit[1], j))
    cut = _link_bodies(bodies)
    return None if cut is None else (links, *cut)


def _link_field_tags() -> tuple[int, ...] | None:
    """The LinkSamples tags after port_id in the order _link_bodies wants them: LINK_COUNT_FIELDS, link_state."""
    if _TAGS is None:
        return None
    return tuple(sorted(_TAGS[6], key=_TAGS[6].get))


_LINK_FIELD_TAGS = _link_field_tags()


def _link_bodies(bodies: list[bytes]) -> tuple[bytes, list[int], bytes, list[int]] | None:
    """The LINK_COUNT_FIELDS payloads of every body joined (body by body, field by field) and the offset where each
    starts (and the end), the same for link_state; each body empty or the packed fields in _LINK_FIELD_TAGS' order,
    each once, its length a varint of one or two bytes, ending where the body ends, each payload empty or ending
    with a varint's last byte (as _link_payloads requires); None when a body is not that. The tags and lengths are
    read for all bodies at once, one numpy step per field (a field's start is where the one before it ends)."""
    tags = _LINK_FIELD_TAGS
    nf = len(tags)
    size = np.fromiter(map(len, bodies), np.intp, len(bodies))
    buf = b"".join(bodies)
    b = np.frombuffer(buf + bytes(3), np.uint8)   # a body that ends early reads at most 3 bytes past its end
    ends = np.cumsum(size)
    full = size > 0
    pos, end = (ends - size)[full], ends[full]
    heads = np.empty((nf, len(pos)), np.intp)   # per field and body: its tag and length bytes
    lengths = np.empty((nf, len(pos)), np.intp)
    for i, tag in enumerate(tags):
        if not (b[pos] == tag).all():
            return None
        n = b[pos + 1].astype(np.intp)
        two = n >= 0x80
        if two.any():
            high = b[pos + 2].astype(np.intp)
            if (two & (high >= 0x80)).any():
                return None
            n = np.where(two, (n & 0x7F) | (high << 7), n)
            head = 2 + two
        else:
            head = 2
        stop = pos + head + n
        if (stop > end).any() or ((n > 0) & (b[stop - 1] >= 0x80)).any():
            return None
        heads[i], lengths[i] = head, n
        pos = stop
    if (pos != end).any():
        return None
    # every byte labelled: 0 a tag or length, 1 a counter payload's, 2 link_state's; one run per label
    runs = np.empty((len(pos), 2 * nf), np.intp)
    runs[:, 0::2], runs[:, 1::2] = heads.T, lengths.T
    label = np.repeat(np.tile(np.array([0, 1] * (nf - 1) + [0, 2], np.uint8), len(pos)), runs.ravel())
    data = b[:len(buf)]
    per_body = np.zeros((len(bodies), nf), np.intp)   # payload lengths, 0 for an empty body
    per_body[full] = lengths.T
    link_offsets = [0, *np.cumsum(per_body[:, :-1].ravel()).tolist()]
    state_offsets = [0, *np.cumsum(per_body[:, -1]).tolist()]
    return data[label == 1].tobytes(), link_offsets, data[label == 2].tobytes(), state_offsets


def _varints(buf: bytes, bounds: list[int]) -> tuple[np.ndarray, list[int]] | None:
    """The uint64 values of concatenated base-128 varints (protobuf encoding spec; bits past 64 dropped, as
    protobuf's parser does) and the value index at each of the byte offsets `bounds` (each where a varint
    starts, or the end); None when the last varint is cut or one is over 10 bytes (no parsed message has that)."""
    b = np.frombuffer(buf, np.uint8)
    last = b < 0x80
    if last.all():
        return b.astype(np.uint64), bounds
    if not last[-1]:
        return None
    ends = np.flatnonzero(last)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    width = ends - starts + 1
    widest = width.max()
    if widest > 10:
        return None
    if widest <= 8:
        values = _short_varints(buf, starts, width)
    else:
        shift = ((np.arange(len(b)) - np.repeat(starts, width)) * 7).astype(np.uint64)
        values = np.add.reduceat((b & 0x7F).astype(np.uint64) << shift, starts)   # bit groups are disjoint: sum = or
    return values, np.searchsorted(ends, bounds).tolist()   # values ending before each offset


# w -> the low w bytes of a uint64 set (w = 0..8)
_LOW_BYTES = np.array([(1 << 8 * w) - 1 for w in range(9)], np.uint64)
_U64 = np.uint64


def _short_varints(buf: bytes, starts: np.ndarray, width: np.ndarray) -> np.ndarray:
    """The values of the varints of buf starting at `starts`, `width` bytes each, all at most 8 bytes: each
    varint's 8 bytes read as one little-endian word (at any alignment), the bytes past it masked off, and
    its 7-bit groups (low group first, protobuf encoding spec) closed up pairwise: 7 -> 14 -> 28 -> 56 bits."""
    padded = buf + bytes(7)   # the last varint's word reads past the end
    words = np.ndarray((len(buf),), "<u8", padded, 0, (1,))[starts] & _LOW_BYTES[width]
    x = words & _U64(0x7F7F7F7F7F7F7F7F)
    x = (x & _U64(0x007F007F007F007F)) | ((x & _U64(0x7F007F007F007F00)) >> _U64(1))
    x = (x & _U64(0x00003FFF00003FFF)) | ((x & _U64(0x3FFF00003FFF0000)) >> _U64(2))
    return (x & _U64(0x000000000FFFFFFF)) | ((x & _U64(0x0FFFFFFF00000000)) >> _U64(4))


_rack_scalars = operator.attrgetter(*RACK_SCALAR_FIELDS)   # RackEnv's scalars, in its order

# sample_time as serialized -> its datetime (every batch of a tick has the same one)
_TIMES: dict[bytes, datetime] = {}


def decode_batches(msgs: Sequence[pb.RackTelemetryBatch], raws: Sequence[bytes] | None = None, *,
                   trust_runs: bool = True) -> list[RackBatch | ValueError | OverflowError]:
    """`decode_batch` of every batch of a poll; a batch that cannot be decoded gets its error (one of
    DECODE_ERRORS) in its place, the others are unaffected. `raws`: the bytes each message was parsed
    from (the record's value); without them each message is serialized.

    Cost matters (one batch per rack per tick, ~30 values per field and rack, where numpy's per-call
    cost dominates): the numbers of each kind (doubles and counters cut from the wire, link counters
    and states, PDU phases) are converted once for the whole poll, and every batch's columns are
    views into those arrays. The wire path cuts a batch's GPU fields and link counters straight from
    its bytes (the nodes through a cached layout of their run, read for all runs of one layout at once;
    the ports are the rack's last ones when their bytes are; link varints decoded in one numpy pass);
    what it cannot take exactly (another layout, a field sent twice or not packed, unknown fields, GPU
    counters over 7 bits) takes the message path, with the same result (tests/unit/test_ingest_wire_decode.py).
    `trust_runs`: the nodes' runs that follow a rack's template are taken for their cached grid layout and their
    tag and length bytes compared for the whole poll at once; when one differs, the poll is decoded again with
    every run compared on its own (trust_runs=False), the caches written from positions after a run dropped first.
    """
    heads: list = []    # per message: its decode error, or what its RackBatch needs besides the arrays
    float_blobs: list[bytes] = []
    count_blobs: list[bytes] = []
    index_blobs: list[bytes] = []
    sections: list[tuple] = []      # per wire-path batch: its links field's (bytes, start, end, rack_id, message)
    pdu: list[float] = []
    pdu_widths: set[int] = set()    # the racks' phase counts
    grids: dict[int, tuple] = {}    # id of a grid layout -> (the layout, the runs of it in this poll)
    f_at = c_at = i_at = 0
    if raws is None:
        raws = [msg.SerializeToString() for msg in msgs] if _TAGS is not None else [b""] * len(msgs)
    for msg, raw in zip(msgs, raws, strict=True):
        k = len(msg.nodes)
        rack_id = msg.rack_id   # read once: each read of a string field makes a new str
        top = _top_fields(raw, k, rack_id, trust_runs) if _TAGS is not None else None
        try:
            known = _TIMES.get(top[1]) if top is not None and top[1] is not None else None
            if known is not None:
                sample_time = known
            elif msg.HasField("sample_time"):
                sample_time = timestamp_to_datetime(msg.sample_time)
                if top is not None and top[1] is not None:
                    if len(_TIMES) >= 64:
                        _TIMES.clear()
                    _TIMES[top[1]] = sample_time
            else:
                sample_time = None
        except DECODE_ERRORS as exc:
            heads.append(exc)
            continue
        wire = top[0] if top is not None else None
        if wire is not None and len(wire) == 3:   # a grid run: its columns are read after the loop
            node_ids, layout, run = wire
            runs = grids.setdefault(id(layout), (layout, []))[1]
            runs.append(run)
            gpu = (node_ids, id(layout), len(runs) - 1)
            wire = ()
        elif wire is not None:
            node_ids, *wire = wire
        else:
            pb_nodes = msg.nodes
            node_ids = tuple(n.node_id for n in pb_nodes)
            gpus = [n.gpus for n in pb_nodes]
            wire = _gpu_wire_parts(gpus)
        if wire is None:
            gpu = _gpu_columns(node_ids, *_gpu_arrays_from_containers(gpus))
        elif wire:
            fb, f_off, cb, c_off, ib, i_off = wire
            float_blobs.append(fb)
            count_blobs.append(cb)
            index_blobs.append(ib)
            gpu = (node_ids, f_at, f_off, c_at, c_off, i_at, i_off)
            f_at, c_at, i_at = f_at + (len(fb) >> 3), c_at + len(cb), i_at + len(ib)
        rack = None
        if msg.HasField("rack"):
            r = msg.rack
            phases = r.pdu_input_power_w[:]
            rack = (len(pdu), len(phases), _rack_scalars(r))
            pdu_widths.add(len(phases))
            pdu += phases
        if top is None:
            links = decode_links(msg.links)
        else:   # cut after the loop with the poll's other link sections (_link_sections)
            links = len(sections)
            sections.append((raw, top[2], top[3], rack_id, msg))
        heads.append((msg, rack_id, sample_time, gpu, rack, links))
    floats = np.frombuffer(b"".join(float_blobs), dtype="<f8").astype(np.float64)
    counts = np.frombuffer(b"".join(count_blobs), dtype=np.uint8).astype(np.uint64)
    index = np.frombuffer(b"".join(index_blobs), dtype=np.uint8).astype(np.uint32)
    section_links, link_bytes, link_offsets, state_bytes, state_offsets = _link_sections(sections)
    link_cut = _varints(link_bytes, link_offsets)
    state_cut = _varints(state_bytes, state_offsets)
    nc = len(LINK_COUNT_FIELDS)
    link_rows = state_rows = pdu_rows = None
    if link_cut is not None and state_cut is not None:
        link_values, link_bounds = link_cut
        # LinkState is an enum, an int32 on the wire: its varint's low 32 bits (protobuf encoding spec)
        state_values, state_bounds = state_cut[0].astype(np.uint32).view(np.int32).astype(np.int64), state_cut[1]
        p = link_bounds[1] if len(link_bounds) > 1 else 0
        if p and link_bounds == list(range(0, p * len(link_bounds), p)) and state_bounds == list(
                range(0, p * len(state_bounds), p)):
            # every wire-path batch has p values of each field: its counters and states are rows of
            # (batches * fields, p) / (batches, p) views, taken in order (the batches' j) by iteration in C;
            # zip(*[it] * nc) groups a batch's nc field rows
            fields = zip(*[iter(link_values.reshape(-1, p))] * nc, strict=True)
            link_rows = map(dict, map(zip, repeat(LINK_COUNT_FIELDS), fields))
            state_rows = iter(state_values.reshape(-1, p))
    pdu_values = np.fromiter(pdu, np.float64, len(pdu))
    if len(pdu_widths) == 1 and 0 not in pdu_widths:   # every rack has as many phases: rows, in order
        pdu_rows = iter(pdu_values.reshape(-1, pdu_widths.pop()))
    grid_columns = {key: _grid_columns(*group, trust_runs) for key, group in grids.items()}
    if None in grid_columns.values():
        # a run taken on trust is not of its layout (its length and first bytes only were): whatever was read
        # after it may be misplaced, so the port-id runs cached from there go, and the rack templates with them
        _PORT_RUNS.clear()
        _TOPS.clear()
        return decode_batches(msgs, raws, trust_runs=False)
    out: list[RackBatch | ValueError | OverflowError] = []
    for head in heads:
        if isinstance(head, DECODE_ERRORS):
            out.append(head)
            continue
        msg, rack_id, sample_time, gpu, rack, links = head
        if not isinstance(gpu, GpuColumns) and len(gpu) == 3:
            node_ids, key, row = gpu
            g_floats, g_counts, g_index, wide, node_offsets = grid_columns[key]
            if wide[row]:   # a counter or index over 7 bits: through the containers (like _gpu_wire_parts)
                gpu = _gpu_columns(node_ids, *_gpu_arrays_from_containers([n.gpus for n in msg.nodes]))
            else:   # aligned by construction (see _grid): what _gpu_columns makes of it, without its checks
                gpu = GpuColumns.direct(node_ids, node_offsets, g_index[row], g_floats[row], g_counts[row])
        elif not isinstance(gpu, GpuColumns):
            node_ids, f_at, f_off, c_at, c_off, i_at, i_off = gpu
            rows = i_off[-1]
            f_n = len(GPU_FLOAT_FIELDS) * rows if f_off is None else f_off[-1]
            c_n = len(GPU_COUNT_FIELDS) * rows if c_off is None else c_off[-1]
            gpu = _gpu_columns(node_ids, floats[f_at:f_at + f_n], f_off, counts[c_at:c_at + c_n], c_off,
                               index[i_at:i_at + rows], i_off)
        if rack is not None:
            at, n, scalars = rack
            rack = RackEnv.direct(pdu_values[at:at + n] if pdu_rows is None else next(pdu_rows), *scalars)
        if isinstance(links, int):
            links = section_links[links]
        if isinstance(links, Links):
            pass
        elif link_cut is None or state_cut is None:
            links = decode_links(msg.links)   # not reached for parsed messages (see _varints)
        elif link_rows is not None:   # the wire-path batches' rows come in their order (j)
            links = Links.direct(links[0], next(link_rows), next(state_rows))
        else:
            ports, j = links
            b = link_bounds[j * nc:j * nc + nc + 1]
            counters = map(link_values.__getitem__, map(slice, b, b[1:]))   # views, one per field
            links = Links.direct(ports, dict(zip(LINK_COUNT_FIELDS, counters, strict=True)),
                                 state_values[state_bounds[j]:state_bounds[j + 1]])
        out.append(RackBatch.direct(msg.site_id, rack_id, sample_time, int(msg.sequence), msg.source, gpu, rack,
                                    links))
    return out


def _grid_columns(layout: tuple, runs: list[bytes], check: bool = False) -> tuple | None:
    """(doubles, counters, gpu_index: one row per run, field-major; per run whether a counter or an index is
    over 7 bits; i_off) of a poll's runs of one grid layout: strided views of their bytes, one copy per kind.
    `check`: None when a run's tag and length bytes are not the layout's (runs taken on trust, see _nodes_run)."""
    i0, f0, c0, node, ff, cf, g = layout[7]
    size, i_off = layout[6], layout[3]
    k, b = len(i_off) - 1, len(runs)
    nf, nc = len(GPU_FLOAT_FIELDS), len(GPU_COUNT_FIELDS)
    buf = b"".join(runs)
    if check:
        at, header = layout[9]
        if not (np.frombuffer(buf, np.uint8).reshape(b, size)[:, at] == header).all():
            return None
    floats = np.ndarray((b, nf, k, g), "<f8", buf, f0, (size, ff, node, 8)).reshape(b, -1).astype(np.float64)
    counts = np.ndarray((b, nc, k, g), np.uint8, buf, c0, (size, cf, node, 1)).reshape(b, -1)
    index = np.ndarray((b, k, g), np.uint8, buf, i0, (size, node, 1)).reshape(b, -1)
    wide = ((counts >= 0x80).any(axis=1) | (index >= 0x80).any(axis=1)).tolist()
    node_offsets = np.array(i_off, np.intp)
    node_offsets.flags.writeable = False   # one array for all these batches' GpuColumns
    return floats, counts.astype(np.uint64), index.astype(np.uint32), wide, node_offsets


def _gpu_columns(node_ids: tuple[str, ...], floats: np.ndarray, f_off: list[int] | None, counts: np.ndarray,
                 c_off: list[int] | None, index: np.ndarray, i_off: list[int]) -> GpuColumns:
    """GpuColumns of the flat field-major arrays (field m of node j is part m * k + j; its bounds are
    the offsets' entries m * k + j and the next). f_off / c_off None: known to be aligned with gpu_index."""
    k, total = len(node_ids), i_off[-1]
    nf, nc = len(GPU_FLOAT_FIELDS), len(GPU_COUNT_FIELDS)
    # Aligned (every field of every node has as many values as its gpu_index): field m's offsets are
    # i_off shifted by m * total, checked on the whole offset lists at once.
    aligned = f_off is None or (
        f_off == [m * total + x for m in range(nf) for x in i_off[:-1]] + [nf * total]
        and c_off == [m * total + x for m in range(nc) for x in i_off[:-1]] + [nc * total])
    offsets = None
    if not aligned:
        offsets = {}
        for fields, off in ((GPU_FLOAT_FIELDS, f_off), (GPU_COUNT_FIELDS, c_off)):
            for m, f in enumerate(fields):
                offsets[f] = np.array(off[m * k:m * k + k + 1], np.intp) - off[m * k]
    return GpuColumns.direct(node_ids, np.array(i_off, np.intp), index, floats, counts, offsets)


def encode_batch(batch: RackBatch) -> pb.RackTelemetryBatch:
    msg = pb.RackTelemetryBatch(site_id=batch.site_id, rack_id=batch.rack_id, sequence=batch.sequence,
                                source=batch.source)
    if batch.sample_time is not None:
        msg.sample_time.CopyFrom(datetime_to_timestamp(batch.sample_time))
    for node in batch.nodes:
        n = msg.nodes.add(node_id=node.node_id)
        n.gpus.gpu_index.extend(node.gpu_index.tolist())
        for f in GPU_FLOAT_FIELDS + GPU_COUNT_FIELDS:
            getattr(n.gpus, f).extend(node.values[f].tolist())
    if batch.rack is not None:
        r = batch.rack
        msg.rack.pdu_input_power_w.extend(np.asarray(r.pdu_input_power_w, dtype=np.float64).tolist())
        msg.rack.inlet_air_temp_c = r.inlet_air_temp_c
        msg.rack.outlet_air_temp_c = r.outlet_air_temp_c
        msg.rack.coolant_supply_temp_c = r.coolant_supply_temp_c
        msg.rack.coolant_return_temp_c = r.coolant_return_temp_c
        msg.rack.coolant_flow_lpm = r.coolant_flow_lpm
    lk = batch.links
    if lk.port_id or len(lk.link_state) or any(len(v) for v in lk.counters.values()):
        _fill_links(msg.links, lk)
    return msg


def no_links() -> Links:
    """The empty link part of a batch that carries no link samples."""
    return Links((), {f: np.empty(0, np.uint64) for f in LINK_COUNT_FIELDS}, np.empty(0, np.int64))


def decode_links(msg: pb.LinkSamples) -> Links:
    lcounts, l_off = _flat([getattr(msg, f) for f in LINK_COUNT_FIELDS], np.uint64)
    counters = {f: lcounts[l_off[m]:l_off[m + 1]] for m, f in enumerate(LINK_COUNT_FIELDS)}
    return Links(tuple(msg.port_id), counters, np.array(msg.link_state, dtype=np.int64))


def encode_links(links: Links) -> pb.LinkSamples:
    msg = pb.LinkSamples()
    _fill_links(msg, links)
    return msg


def _fill_links(msg: pb.LinkSamples, lk: Links) -> None:
    msg.port_id.extend(lk.port_id)
    for f in LINK_COUNT_FIELDS:
        getattr(msg, f).extend(lk.counters[f].tolist())
    msg.link_state.extend(lk.link_state.tolist())


def samples_record(raw: bytes, ingested_time: datetime, rejected_values: int = 0) -> bytes:
    """The normalized record for telemetry.samples.v1, serialized, from the batch's bytes as received (whole-batch
    validation: the batch as received). An embedded message field is its tag, its length and the message's
    bytes (protobuf encoding spec, "Length-Delimited Records" / "Embedded messages"), so the batch is framed as
    it arrived: no copy field by field (CopyFrom), no parse, no serialization. Byte for byte the record that
    building it from the parsed batch gives (tested)."""
    return b"".join((_SAMPLES_BATCH_TAG, _varint(len(raw)), raw, _samples_tail(ingested_time, rejected_values)))


def samples_message(source: pb.RackTelemetryBatch | bytes, ingested_time: datetime, rejected_values: int = 0
                    ) -> pb.TelemetrySamples:
    """``samples_record`` as a message (a parsed batch is serialized first)."""
    raw = source if isinstance(source, bytes) else source.SerializeToString()
    return pb.TelemetrySamples.FromString(samples_record(raw, ingested_time, rejected_values))


# TelemetrySamples.batch as a length-delimited field (wire type 2), for the framing above.
_SAMPLES_BATCH_TAG = _varint(pb.TelemetrySamples.DESCRIPTOR.fields_by_name["batch"].number << 3 | 2)


@functools.lru_cache(maxsize=8)   # one poll publishes many batches with the same ingested time
def _samples_tail(ingested_time: datetime, rejected_values: int) -> bytes:
    """The TelemetrySamples fields after `batch` (ingested_time, rejected_values), serialized."""
    out = pb.TelemetrySamples(rejected_values=rejected_values)
    out.ingested_time.CopyFrom(datetime_to_timestamp(ingested_time))
    return out.SerializeToString()


def samples_ce_id(key: BatchKey) -> str:
    t, last = key.sample_time, _ISO[0]
    if t is None:
        t = "-"
    elif t is last[0]:   # a tick's batches share one datetime object (decode_batches' _TIMES)
        t = last[1]
    else:
        last = _ISO[0] = t, t.isoformat()
        t = last[1]
    return _uuid5(f"{key.rack_id}|{t}|{key.sequence}")


# (the last sample_time samples_ce_id met, its isoformat): one reference, read and replaced whole (a
# thread never pairs one time with another's text); held, so the `is` test cannot meet a reused id
_ISO: list[tuple] = [(None, "")]
_SAMPLES_NAMESPACE_BYTES = SAMPLES_NAMESPACE.bytes
# hex digit of a UUID's byte 8 high nibble -> that nibble with the RFC 4122 variant bits (10xx) set
_VARIANT = {f"{n:x}": f"{n & 0x3 | 0x8:x}" for n in range(16)}


def _uuid5(name: str) -> str:
    """str(uuid.uuid5(SAMPLES_NAMESPACE, name)) without building a UUID object (a third of the cost, and
    one per published batch): SHA-1 of namespace + name, first 16 bytes, version 5 and the RFC 4122
    variant set (RFC 4122 section 4.3; CPython uuid.uuid5 and UUID.__init__), on the hex digest: the
    version is the whole nibble at hex digit 12, the variant the top two bits of digit 16."""
    x = hashlib.sha1(_SAMPLES_NAMESPACE_BYTES + name.encode()).hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


# -- cooling equipment (CDUs, CRAHs, plant) ---------------------------------------------------------------


def is_equipment(msg: pb.RackTelemetryBatch) -> bool:
    """An equipment batch (CDU / CRAH / plant readings), routed apart from rack batches."""
    return msg.HasField("equipment")


def decode_equipment(msg: pb.RackTelemetryBatch):
    """RackTelemetryBatch with ``equipment`` -> domain EquipmentBatch (ranges are checked by the domain)."""
    from twin.ingest.domain.equipment import (
        CDU_FIELDS,
        CRAH_FIELDS,
        PLANT_FIELDS,
        EquipmentBatch,
        EquipmentSample,
    )

    eq = msg.equipment
    samples = [EquipmentSample("cdu", c.cdu_id, {f: getattr(c, f) for f in CDU_FIELDS}) for c in eq.cdus]
    samples += [EquipmentSample("crah", c.crah_id, {f: getattr(c, f) for f in CRAH_FIELDS}) for c in eq.crahs]
    if eq.HasField("plant"):
        samples.append(EquipmentSample("plant", msg.site_id, {f: getattr(eq.plant, f) for f in PLANT_FIELDS}))
    return EquipmentBatch(
        site_id=msg.site_id,
        sample_time=timestamp_to_datetime(msg.sample_time) if msg.HasField("sample_time") else None,
        sequence=msg.sequence, source=msg.source, samples=samples,
        rack_data=bool(msg.rack_id or msg.nodes or msg.HasField("rack") or msg.HasField("links")))


def encode_equipment(batch) -> pb.RackTelemetryBatch:
    """Domain EquipmentBatch -> the facility.telemetry.v1 record (keyed by site_id)."""
    msg = pb.RackTelemetryBatch(site_id=batch.site_id, sequence=batch.sequence, source=batch.source)
    if batch.sample_time is not None:
        msg.sample_time.CopyFrom(datetime_to_timestamp(batch.sample_time))
    eq = msg.equipment
    for s in batch.samples:
        if s.kind == "cdu":
            eq.cdus.add(cdu_id=s.equipment_id, **s.values)
        elif s.kind == "crah":
            eq.crahs.add(crah_id=s.equipment_id, **s.values)
        else:
            eq.plant.CopyFrom(pb.PlantSample(**s.values))
    return msg


def equipment_ce_id(batch) -> str:
    t = batch.sample_time.isoformat() if batch.sample_time else "-"
    ids = ",".join(sorted(f"{s.kind}:{s.equipment_id}" for s in batch.samples))
    return str(uuid.uuid5(SAMPLES_NAMESPACE, f"equipment|{batch.site_id}|{t}|{batch.sequence}|{ids}"))
