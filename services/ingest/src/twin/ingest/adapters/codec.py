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
from itertools import accumulate

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
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


def decode_batch(msg: pb.RackTelemetryBatch) -> RackBatch:
    """Domain form of one batch; arrays keep their received lengths (validation checks them).
    ValueError (or OverflowError): a field no datetime or array can hold."""
    (out,) = decode_batches([msg])
    if isinstance(out, DECODE_ERRORS):
        raise out
    return out


def decode_batches(msgs: Sequence[pb.RackTelemetryBatch]) -> list[RackBatch | ValueError | OverflowError]:
    """`decode_batch` of every batch of a poll; a batch that cannot be decoded gets its error (one of
    DECODE_ERRORS) in its place, the others are unaffected.

    Cost matters (one batch per rack per tick, ~30 values per field and rack, where numpy's per-call
    cost dominates): the numbers of each kind (doubles and counters cut from the wire, link counters
    and states, PDU phases) are converted once for the whole poll, and every batch's columns are
    views into those arrays.
    """
    heads: list = []    # per message: its decode error, or what its RackBatch needs besides the arrays
    float_blobs: list[bytes] = []
    count_blobs: list[bytes] = []
    index_blobs: list[bytes] = []
    link_counts: list[int] = []
    link_states: list[int] = []
    pdu: list[float] = []
    f_at = c_at = i_at = 0
    for msg in msgs:
        try:
            sample_time = timestamp_to_datetime(msg.sample_time) if msg.HasField("sample_time") else None
        except DECODE_ERRORS as exc:
            heads.append(exc)
            continue
        pb_nodes = msg.nodes
        node_ids = tuple(n.node_id for n in pb_nodes)
        gpus = [n.gpus for n in pb_nodes]
        wire = _gpu_wire_parts(gpus)
        if wire is None:
            gpu = _gpu_columns(node_ids, *_gpu_arrays_from_containers(gpus))
        else:
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
            rack = (len(pdu), len(phases), r.inlet_air_temp_c, r.outlet_air_temp_c, r.coolant_supply_temp_c,
                    r.coolant_return_temp_c, r.coolant_flow_lpm)
            pdu += phases
        lk = msg.links
        link_at = len(link_counts)
        for f in LINK_COUNT_FIELDS:
            link_counts += getattr(lk, f)[:]
        state_at = len(link_states)
        link_states += lk.link_state[:]
        links = (tuple(lk.port_id), link_at, state_at, len(link_states))
        heads.append((msg, sample_time, gpu, rack, links))
    floats = np.frombuffer(b"".join(float_blobs), dtype="<f8").astype(np.float64)
    counts = np.frombuffer(b"".join(count_blobs), dtype=np.uint8).astype(np.uint64)
    index = np.frombuffer(b"".join(index_blobs), dtype=np.uint8).astype(np.uint32)
    link_count_values = np.fromiter(link_counts, np.uint64, len(link_counts))
    link_state_values = np.fromiter(link_states, np.int64, len(link_states))
    pdu_values = np.fromiter(pdu, np.float64, len(pdu))
    out: list[RackBatch | ValueError | OverflowError] = []
    for head in heads:
        if isinstance(head, DECODE_ERRORS):
            out.append(head)
            continue
        msg, sample_time, gpu, rack, links = head
        if not isinstance(gpu, GpuColumns):
            node_ids, f_at, f_off, c_at, c_off, i_at, i_off = gpu
            rows = i_off[-1]
            f_n = len(GPU_FLOAT_FIELDS) * rows if f_off is None else f_off[-1]
            c_n = len(GPU_COUNT_FIELDS) * rows if c_off is None else c_off[-1]
            gpu = _gpu_columns(node_ids, floats[f_at:f_at + f_n], f_off, counts[c_at:c_at + c_n], c_off,
                               index[i_at:i_at + rows], i_off)
        if rack is not None:
            at, n, *scalars = rack
            rack = RackEnv(pdu_values[at:at + n], *scalars)
        ports, at, state_at, state_end = links
        lk = msg.links
        counters = {}
        for f in LINK_COUNT_FIELDS:   # each field as long as it arrived
            n = len(getattr(lk, f))
            counters[f] = link_count_values[at:at + n]
            at += n
        out.append(RackBatch(msg.site_id, msg.rack_id, sample_time, int(msg.sequence), msg.source, gpu, rack,
                             Links(ports, counters, link_state_values[state_at:state_end])))
    return out


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
    return GpuColumns(node_ids, np.array(i_off, np.intp), index, floats, counts, offsets)


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
    return _SAMPLES_BATCH_TAG + _varint(len(raw)) + raw + _samples_tail(ingested_time, rejected_values)


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
    t = key.sample_time.isoformat() if key.sample_time else "-"
    return _uuid5(f"{key.rack_id}|{t}|{key.sequence}")


_SAMPLES_NAMESPACE_BYTES = SAMPLES_NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """str(uuid.uuid5(SAMPLES_NAMESPACE, name)) without building a UUID object (a third of the cost, and
    one per published batch): SHA-1 of namespace + name, first 16 bytes, version 5 and the RFC 4122
    variant set (RFC 4122 section 4.3; CPython uuid.uuid5 and UUID.__init__)."""
    h = bytearray(hashlib.sha1(_SAMPLES_NAMESPACE_BYTES + name.encode()).digest()[:16])
    h[6] = h[6] & 0x0F | 0x50
    h[8] = h[8] & 0x3F | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


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
