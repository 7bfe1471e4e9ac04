"""Tick arrays ⇄ RackTelemetryBatch protobufs (the one place that knows the wire format).

Encoding cost dominates a large site (3,125 racks × 4 nodes × 14 packed fields per tick). The
default path writes the protobuf wire bytes of every rack straight from the tick's numpy arrays
(packed doubles are the arrays' little-endian bytes, packed varints are encoded for the whole tick
in one numpy pass, ids and other constant parts are framed once per encoder): about 3× less CPU than
filling the message field by field. Those bytes are the record value as they are (protobuf's own
serialization of the message, byte for byte: fields in number order, proto3 scalars equal to +0.0
left out), so a tick is never parsed nor re-serialized; `EncodedRack.message` parses a rack's bytes
only when asked (fault injection, tests). The field-by-field path (`encode_fields`) is kept as the
reference; tests check both give equal messages and the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from twin.facility_sim.domain.model import Tick
from twin.facility_sim.layout import SiteLayout
from twin.telemetry.v1 import telemetry_pb2 as pb

SOURCE = "facility-sim"

# (proto field of GpuSamples, Tick attribute) in proto field order.
GPU_FIELDS: tuple[tuple[str, str], ...] = (
    ("power_w", "power_w"),
    ("gpu_temp_c", "gpu_temp_c"),
    ("mem_temp_c", "mem_temp_c"),
    ("sm_clock_mhz", "sm_clock_mhz"),
    ("mem_clock_mhz", "mem_clock_mhz"),
    ("util_gpu_pct", "util_gpu_pct"),
    ("util_mem_pct", "util_mem_pct"),
    ("sm_active", "sm_active"),
    ("tensor_active", "tensor_active"),
    ("dram_active", "dram_active"),
    ("xid_errors", "xid_errors"),
    ("ecc_sbe_total", "ecc_sbe_total"),
    ("ecc_dbe_total", "ecc_dbe_total"),
)
UINT_FIELDS = frozenset({"xid_errors", "ecc_sbe_total", "ecc_dbe_total"})


class EncodedRack:
    """One rack's RackTelemetryBatch of a tick: its serialized `value` (what is published) and, parsed from it
    on first use, its `message`; either may be given."""

    __slots__ = ("rack_index", "rack_id", "sequence", "n_gpu_rows", "_value", "_message")

    def __init__(self, rack_index: int, rack_id: str, sequence: int, n_gpu_rows: int, *,
                 value: bytes | None = None, message: pb.RackTelemetryBatch | None = None) -> None:
        if value is None and message is None:
            raise ValueError("EncodedRack needs its value or its message")
        self.rack_index, self.rack_id, self.sequence, self.n_gpu_rows = rack_index, rack_id, sequence, n_gpu_rows
        self._value, self._message = value, message

    @property
    def value(self) -> bytes:
        if self._value is None:
            assert self._message is not None
            self._value = self._message.SerializeToString()
        return self._value

    @property
    def message(self) -> pb.RackTelemetryBatch:
        if self._message is None:
            assert self._value is not None
            self._message = pb.RackTelemetryBatch.FromString(self._value)
        return self._message


def _timestamp(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


def _as_list(values: np.ndarray, integer: bool) -> list:
    return values.astype(np.uint64).tolist() if integer else values.astype(np.float64).tolist()


class TickEncoder:
    """Encodes ticks of one SiteLayout; precomputes per-rack id lists once."""

    def __init__(self, layout: SiteLayout) -> None:
        self.layout = layout
        a = layout.arrays
        self._gpu_index = a.gpu_local_index.tolist()
        self._rack_nodes = [
            [(layout.node_ids[n], int(a.node_first_gpu[n]), int(a.node_first_gpu[n] + a.node_gpus[n]))
             for n in range(int(a.rack_first_node[r]), int(a.rack_first_node[r] + a.rack_nodes[r]))]
            for r in range(a.n_racks)
        ]
        first_nic = a.node_first_nic
        self._rack_nics = []
        for r in range(a.n_racks):
            n0, n1 = int(a.rack_first_node[r]), int(a.rack_first_node[r] + a.rack_nodes[r])
            lo, hi = int(first_nic[n0]), int(first_nic[n1 - 1] + a.node_nics[n1 - 1])
            self._rack_nics.append((lo, hi, layout.nic_ids[lo:hi], [pb.LINK_STATE_UP] * (hi - lo)))

        self._wire: _WireFrames | None = None

    def encode(self, tick: Tick, sample_time: datetime, sequence: int, racks: range | None = None) -> list[EncodedRack]:
        """One RackTelemetryBatch per rack (default: every simulated rack), all with `sequence`: built as
        wire bytes from the arrays, not parsed (the same messages and bytes as `encode_fields`)."""
        if self._wire is None:
            self._wire = _WireFrames(self.layout, self._rack_nodes, self._rack_nics)
        wire = self._wire
        a = self.layout.arrays
        ts = _timestamp(sample_time).SerializeToString()
        head = b"\x1a" + _varint(len(ts)) + ts + (b"\x20" + _varint(sequence) if sequence else b"")
        floats = [getattr(tick, attr) for f, attr in GPU_FIELDS if f not in UINT_FIELDS]
        counts = [getattr(tick, attr) for f, attr in GPU_FIELDS if f in UINT_FIELDS]
        # every node's `nodes` field, framed (None: per node), and the racks whose nodes it cannot hold this tick
        all_nodes, odd_racks = wire.nodes_fields(floats, counts)
        if all_nodes is None or odd_racks:
            node_floats = wire.float_sections(floats)   # per node: its 10 packed double fields, framed
            node_counts = wire.count_sections(counts)   # per node: its 3 packed varint fields (None: per slice)
            if node_counts is None:
                count_bufs = [(buf, off.tolist()) for buf, off in map(_packed_varints, counts)]
        # link counters: each field's varints for the whole tick, cut per rack at its NIC range
        links = []
        for attr in ("tx_bytes", "rx_bytes", "tx_errors", "rx_errors"):
            buf, off = _packed_varints(getattr(tick, attr))
            links.append((buf, off[wire.nic_lo].tolist(), off[wire.nic_hi].tolist()))
        pdu = np.ascontiguousarray(tick.pdu_phase_w, dtype="<f8")
        pdu_raw, pdu_width = pdu.tobytes(), 8 * pdu.shape[1]   # a rack's phases: its row's first 8 x p bytes
        phases = a.rack_phases.tolist()
        rack_scalars = _rack_scalar_fields(tick)
        count_tags = wire.count_tags
        out: list[EncodedRack] = []
        for r in racks if racks is not None else range(a.n_racks):
            if all_nodes is not None and r not in odd_racks:
                lo, hi = wire.rack_node_bytes[r]
                nodes, rows = all_nodes[lo:hi], wire.rack_gpus[r]
            else:
                gpus, rows = [], 0
                for node_head, g0, g1, n in wire.rack_nodes[r]:
                    if node_counts is not None:
                        gpus.append(node_head + node_floats[n] + node_counts[n])
                    else:
                        body = [node_head, node_floats[n]]
                        for tag, (buf, off) in zip(count_tags, count_bufs, strict=True):
                            payload = buf[off[g0]:off[g1]]
                            body += (tag, _vlen(len(payload)), payload)
                        gpus.append(b"".join(body))
                    rows += g1 - g0
                nodes = _frame_nodes(wire.node_prefix[r], gpus)
            p = phases[r]
            env = (_PDU_HEADS[p] + pdu_raw[r * pdu_width:r * pdu_width + 8 * p] if p else b"") + rack_scalars[r]
            parts = [wire.rack_head[r], head, nodes, b"\x32", _vlen(len(env)), env]
            lo, hi = wire.rack_nic_range[r]
            if hi > lo:
                lk = [wire.port_fields[r]]
                for tag, (buf, start, stop) in zip(_LINK_TAGS, links, strict=True):
                    payload = buf[start[r]:stop[r]]
                    lk += (tag, _vlen(len(payload)), payload)
                lk.append(wire.link_state_field[r])
                body = b"".join(lk)
                parts += (b"\x3a", _vlen(len(body)), body)
            parts.append(wire.source_field)
            out.append(EncodedRack(r, self.layout.rack_ids[r], sequence, rows, value=b"".join(parts)))
        return out

    def encode_fields(self, tick: Tick, sample_time: datetime, sequence: int, racks: range | None = None
                      ) -> list[EncodedRack]:
        """The reference encoder: the same messages as `encode`, filled field by field with `.extend()`."""
        layout, a = self.layout, self.layout.arrays
        cols = {f: _as_list(getattr(tick, attr), f in UINT_FIELDS) for f, attr in GPU_FIELDS}
        col_items = list(cols.items())
        gidx = self._gpu_index
        pdu = tick.pdu_phase_w.tolist()
        phases = a.rack_phases.tolist()
        scalars = np.stack([tick.inlet_air_c, tick.outlet_air_c, tick.coolant_supply_c, tick.coolant_return_c,
                            tick.coolant_flow_lpm], axis=1).tolist()
        tx, rx = tick.tx_bytes.tolist(), tick.rx_bytes.tolist()
        txe, rxe = tick.tx_errors.tolist(), tick.rx_errors.tolist()
        ts = _timestamp(sample_time)
        out: list[EncodedRack] = []
        for r in racks if racks is not None else range(a.n_racks):
            msg = pb.RackTelemetryBatch(site_id=layout.site_id, rack_id=layout.rack_ids[r], sequence=sequence,
                                        source=SOURCE)
            msg.sample_time.CopyFrom(ts)
            rows = 0
            for node_id, g0, g1 in self._rack_nodes[r]:
                node = msg.nodes.add()
                node.node_id = node_id
                g = node.gpus
                g.gpu_index.extend(gidx[g0:g1])
                for name, values in col_items:
                    getattr(g, name).extend(values[g0:g1])
                rows += g1 - g0
            rk = msg.rack
            rk.pdu_input_power_w.extend(pdu[r][: phases[r]])
            (rk.inlet_air_temp_c, rk.outlet_air_temp_c, rk.coolant_supply_temp_c, rk.coolant_return_temp_c,
             rk.coolant_flow_lpm) = scalars[r]
            lo, hi, port_ids, states = self._rack_nics[r]
            if hi > lo:
                ln = msg.links
                ln.port_id.extend(port_ids)
                ln.tx_bytes.extend(tx[lo:hi])
                ln.rx_bytes.extend(rx[lo:hi])
                ln.tx_errors.extend(txe[lo:hi])
                ln.rx_errors.extend(rxe[lo:hi])
                ln.link_state.extend(states)
            out.append(EncodedRack(r, layout.rack_ids[r], sequence, rows, message=msg))
        return out


# -- wire-format helpers of the default encoder ----------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_VARINTS = [_varint(n) for n in range(1 << 14)]   # every 1- and 2-byte varint


def _vlen(n: int) -> bytes:
    return _SMALL_VARINTS[n] if n < 16384 else _varint(n)


_PDU_HEADS = [b"\x0a" + _varint(8 * p) for p in range(16)]   # RackSamples.pdu_input_power_w, p phases


def _str_field(number: int, text: str) -> bytes:
    raw = text.encode()
    return bytes([(number << 3) | 2]) + _varint(len(raw)) + raw


_VARINT_GROUPS = np.arange(10, dtype=np.uint64)


def _packed_varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Every value as a base-128 varint (uint64, like protobuf's uint64/enum), concatenated in order,
    and the byte offset where value i starts (len(values) + 1 entries)."""
    v = np.asarray(values).astype(np.uint64)
    top = int(v.max()) if v.size else 0
    if top < 0x80:
        return v.astype(np.uint8).tobytes(), np.arange(len(v) + 1)
    width = (top.bit_length() + 6) // 7      # bytes of the longest varint: only that many groups are cut
    lens = np.ones(len(v), dtype=np.int64)
    for k in range(1, width):
        lens += v >= np.uint64(1) << np.uint64(7 * k)
    groups = ((v[:, None] >> (np.uint64(7) * _VARINT_GROUPS[:width])) & np.uint64(0x7F)).astype(np.uint8)
    k = np.arange(width)
    groups |= ((k[None, :] < (lens - 1)[:, None]).astype(np.uint8) << 7)
    buf = groups[k[None, :] < lens[:, None]].tobytes()
    return buf, np.concatenate(([0], np.cumsum(lens)))


def _frame_nodes(prefixes: list[bytes], gpus: list[bytes]) -> bytes:
    """The `nodes` field (5) of a rack: NodeSamples {node_id, gpus} per node."""
    out = []
    for prefix, body in zip(prefixes, gpus, strict=True):
        node = prefix + b"\x12" + _vlen(len(body)) + body
        out += (b"\x2a", _vlen(len(node)), node)
    return b"".join(out)


# RackSamples fields 2..6 (doubles, wire type 1), in order.
_RACK_SCALAR_TAGS = np.array([(n << 3) | 1 for n in range(2, 7)], dtype=np.uint8)


def _rack_scalar_fields(tick: Tick) -> list[bytes]:
    """Per rack: its RackSamples fields 2..6 (inlet, outlet, coolant supply / return, flow) in wire form. A
    proto3 scalar whose bits are all zero (+0.0, e.g. an air rack's coolant flow) is not written, as protobuf
    serializes it (-0.0 is written)."""
    values = np.stack([tick.inlet_air_c, tick.outlet_air_c, tick.coolant_supply_c, tick.coolant_return_c,
                       tick.coolant_flow_lpm], axis=1).astype("<f8")
    n, k = values.shape
    block = np.empty((n, k, 9), dtype=np.uint8)
    block[:, :, 0] = _RACK_SCALAR_TAGS
    block[:, :, 1:] = values.view(np.uint8).reshape(n, k, 8)
    raw = block.tobytes()
    width = 9 * k
    zero = values.view("<u8") == 0
    out = [raw[i:i + width] for i in range(0, len(raw), width)]
    for r in np.flatnonzero(zero.any(axis=1)).tolist():
        row = out[r]
        out[r] = b"".join(row[9 * j:9 * j + 9] for j in range(k) if not zero[r, j])
    return out
_LINK_TAGS = tuple(bytes([(n << 3) | 2]) for n in range(2, 6))   # LinkSamples tx/rx bytes, tx/rx errors


class _WireFrames:
    """The constant parts of every rack's wire bytes (ids, gpu_index, port ids, link states), framed once."""

    def __init__(self, layout: SiteLayout, rack_nodes: list, rack_nics: list) -> None:
        numbers = {f.name: f.number for f in pb.GpuSamples.DESCRIPTOR.fields}
        self.float_tags = tuple(bytes([(numbers[f] << 3) | 2]) for f, _ in GPU_FIELDS if f not in UINT_FIELDS)
        self.count_tags = tuple(bytes([(numbers[f] << 3) | 2]) for f, _ in GPU_FIELDS if f in UINT_FIELDS)
        a = layout.arrays
        gidx = a.gpu_local_index.astype(np.uint64)
        site = _str_field(1, layout.site_id)
        self.source_field = _str_field(8, SOURCE)
        self.rack_head = [site + _str_field(2, rid) for rid in layout.rack_ids]
        self.rack_nodes: list[list[tuple[bytes, int, int, int]]] = []
        self.node_prefix: list[list[bytes]] = []
        starts: list[int] = []
        self.node_slices: list[tuple[int, int]] = []
        for nodes in rack_nodes:
            heads, prefixes = [], []
            for node_id, g0, g1 in nodes:
                idx, _ = _packed_varints(gidx[g0:g1])
                heads.append((b"\x0a" + _varint(len(idx)) + idx if g1 > g0 else b"", g0, g1, len(starts)))
                prefixes.append(_str_field(1, node_id))
                starts.append(g0)
                self.node_slices.append((g0, g1))
            self.rack_nodes.append(heads)
            self.node_prefix.append(prefixes)
        # GPU g of node n sits at first[n] + g; when every node has the same GPU count the fields of all
        # nodes are framed with one numpy pass (a (nodes, fields, head + payload) byte matrix).
        g = self.node_slices[0][1] - self.node_slices[0][0] if self.node_slices else 0
        regular = g > 0 and all(s == (n * g, (n + 1) * g) for n, s in enumerate(self.node_slices))
        self.node_gpus = g if regular and len(self.node_slices) * g == int(a.n_gpus) else 0
        self._node_matrix(layout, rack_nodes)
        self.rack_nic_range = [(lo, hi) for lo, hi, _, _ in rack_nics]
        self.nic_lo = np.array([lo for lo, _ in self.rack_nic_range], dtype=np.intp)
        self.nic_hi = np.array([hi for _, hi in self.rack_nic_range], dtype=np.intp)
        self.port_fields = [b"".join(_str_field(1, p) for p in ports) for _, _, ports, _ in rack_nics]
        self.link_state_field = []
        for _, _, _, states in rack_nics:
            buf, _ = _packed_varints(np.array(states, dtype=np.uint64))
            self.link_state_field.append(b"\x32" + _varint(len(buf)) + buf)

    def _node_matrix(self, layout: SiteLayout, rack_nodes: list) -> None:
        """When every node has `node_gpus` GPUs and every node's framing (field 5 tag and length, node_id,
        GpuSamples tag and length, gpu_index) has the same byte length: one row of bytes per node, its
        `nodes` field whole, with everything but the metric payloads written here once. A tick then copies
        its 13 metric columns into the payload columns (counters when each fits one varint byte) and every
        rack's `nodes` fields are one slice of the matrix (a rack's nodes are consecutive)."""
        self.node_rows: np.ndarray | None = None
        g = self.node_gpus
        if not g:
            return
        fields = [(tag, 8 * g) for tag in self.float_tags] + [(tag, g) for tag in self.count_tags]
        sections = b"".join(tag + _vlen(n) + bytes(n) for tag, n in fields)   # payloads zero until a tick
        prefixes = []
        for nodes in self.rack_nodes:
            for node_head, _, _, _ in nodes:
                prefixes.append(node_head)
        framed = []
        n = 0
        for nodes in rack_nodes:
            for node_id, _, _ in nodes:
                body = prefixes[n] + sections
                node = _str_field(1, node_id) + b"\x12" + _vlen(len(body)) + body
                framed.append(b"\x2a" + _vlen(len(node)) + node)
                n += 1
        width = len(framed[0])
        if any(len(f) != width for f in framed):
            return
        self.node_rows = np.frombuffer(b"".join(framed), dtype=np.uint8).reshape(len(framed), width).copy()
        offsets, at = [], width - len(sections)
        for tag, n in fields:
            at += len(tag) + len(_vlen(n))
            offsets.append((at, n))
            at += n
        self.payload_columns = offsets   # (first byte, bytes) of each metric's payload in a row, GPU_FIELDS order
        self.rack_node_bytes = []
        self.rack_gpus = []
        node_rack = []
        first = 0
        for r, nodes in enumerate(rack_nodes):
            self.rack_node_bytes.append((first * width, (first + len(nodes)) * width))
            self.rack_gpus.append(len(nodes) * g)
            node_rack += [r] * len(nodes)
            first += len(nodes)
        self.node_rack = np.array(node_rack, dtype=np.intp)   # rack index of every node (matrix row)

    def nodes_fields(self, floats: list[np.ndarray], counts: list[np.ndarray]) -> tuple[bytes | None, frozenset[int]]:
        """Every simulated node's `nodes` field in rack order (cut per rack at `rack_node_bytes`), or None when the
        node matrix does not apply (irregular nodes); and the racks with a GPU counter above 127 this tick (a
        varint of more than one byte: those racks' slices are not valid, they take the per-node path)."""
        rows = self.node_rows
        if rows is None:
            return None, frozenset()
        values = [np.asarray(c).astype(np.uint64) for c in counts]
        wide = [v >= 0x80 for v in values if v.size and int(v.max()) >= 0x80]
        odd = frozenset()
        if wide:
            gpus = np.logical_or.reduce(wide)
            odd = frozenset(np.unique(self.node_rack[np.flatnonzero(gpus) // self.node_gpus]).tolist())
        n = rows.shape[0]
        cols = [np.ascontiguousarray(f, dtype="<f8").view(np.uint8) for f in floats] + \
            [v.astype(np.uint8) for v in values]
        for (at, width), col in zip(self.payload_columns, cols, strict=True):
            rows[:, at:at + width] = col.reshape(n, width)
        return rows.tobytes(), odd

    def float_sections(self, floats: list[np.ndarray]) -> list[bytes]:
        """Per simulated node: its packed double fields (GpuSamples 2..11) in wire form."""
        cols = [np.ascontiguousarray(f, dtype="<f8").view(np.uint8) for f in floats]
        if self.node_gpus:
            return _framed(self.float_tags, cols, 8 * self.node_gpus)
        return _sections_per_slice(self.float_tags, [c.tobytes() for c in cols], 8, self.node_slices)

    def count_sections(self, counts: list[np.ndarray]) -> list[bytes] | None:
        """Per simulated node: its packed counter fields (GpuSamples 12..14) when every value fits one
        varint byte (the usual case); None otherwise (the caller slices the tick's encoded varints)."""
        values = [np.asarray(c).astype(np.uint64) for c in counts]
        if any(v.size and int(v.max()) >= 0x80 for v in values):
            return None
        cols = [v.astype(np.uint8) for v in values]
        if self.node_gpus:
            return _framed(self.count_tags, cols, self.node_gpus)
        return _sections_per_slice(self.count_tags, [c.tobytes() for c in cols], 1, self.node_slices)



def _framed(tags: tuple[bytes, ...], columns: list[np.ndarray], per_node: int) -> list[bytes]:
    """Per node: for each column, tag + payload length + the node's `per_node` payload bytes (columns are
    (n_nodes * per_node) byte matrices already in wire form, e.g. doubles' little-endian bytes)."""
    n_nodes = columns[0].shape[0] // per_node if columns else 0
    head = [t + _varint(per_node) for t in tags]
    width = len(head[0]) + per_node
    block = np.empty((n_nodes, len(columns), width), dtype=np.uint8)
    for f, (h, col) in enumerate(zip(head, columns, strict=True)):
        block[:, f, :len(h)] = np.frombuffer(h, dtype=np.uint8)
        block[:, f, len(h):] = col.reshape(n_nodes, per_node)
    raw = block.tobytes()
    step = len(columns) * width
    return [raw[i:i + step] for i in range(0, len(raw), step)]


def _sections_per_slice(tags: tuple[bytes, ...], bufs: list[bytes], itemsize: int,
                        slices: list[tuple[int, int]]) -> list[bytes]:
    out = []
    for g0, g1 in slices:
        n = _vlen(itemsize * (g1 - g0))
        out.append(b"".join(x for tag, buf in zip(tags, bufs, strict=True)
                            for x in (tag, n, buf[itemsize * g0:itemsize * g1])))
    return out


# -- decoding (tests, tools): one batch back into flat arrays --------------------------------------

@dataclass(frozen=True, eq=False)
class DecodedRack:
    rack_id: str
    sequence: int
    sample_time: datetime
    node_ids: list[str]
    gpu_node_pos: np.ndarray          # index into node_ids per GPU row
    gpu: dict[str, np.ndarray]        # proto field name → values (gpu_index included)
    pdu_input_power_w: np.ndarray
    rack: dict[str, float]
    port_ids: list[str]
    links: dict[str, np.ndarray]


def decode_rack(msg: pb.RackTelemetryBatch) -> DecodedRack:
    names = ("gpu_index",) + tuple(f for f, _ in GPU_FIELDS)
    gpu = {n: np.concatenate([np.asarray(getattr(nd.gpus, n)) for nd in msg.nodes]) if msg.nodes else np.array([])
           for n in names}
    pos = np.concatenate([np.full(len(nd.gpus.gpu_index), i) for i, nd in enumerate(msg.nodes)]) if msg.nodes \
        else np.array([], dtype=np.int64)
    rk = msg.rack
    links = {n: np.asarray(getattr(msg.links, n)) for n in ("tx_bytes", "rx_bytes", "tx_errors", "rx_errors",
                                                            "link_state")}
    return DecodedRack(
        rack_id=msg.rack_id, sequence=msg.sequence, sample_time=msg.sample_time.ToDatetime(),
        node_ids=[nd.node_id for nd in msg.nodes], gpu_node_pos=pos, gpu=gpu,
        pdu_input_power_w=np.asarray(rk.pdu_input_power_w),
        rack={"inlet_air_temp_c": rk.inlet_air_temp_c, "outlet_air_temp_c": rk.outlet_air_temp_c,
              "coolant_supply_temp_c": rk.coolant_supply_temp_c, "coolant_return_temp_c": rk.coolant_return_temp_c,
              "coolant_flow_lpm": rk.coolant_flow_lpm},
        port_ids=list(msg.links.port_id), links=links,
    )
