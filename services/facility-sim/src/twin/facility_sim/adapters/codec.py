"""Tick arrays ⇄ RackTelemetryBatch protobufs (the one place that knows the wire format).

Encoding cost dominates a large site (3,125 racks × 4 nodes × 14 packed fields per tick), so each
per-GPU array is converted to a Python list once per tick and nodes take slices of it with
`.extend()`; no per-value Python work happens.
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


@dataclass(frozen=True)
class EncodedRack:
    rack_index: int
    rack_id: str
    sequence: int
    message: pb.RackTelemetryBatch
    n_gpu_rows: int


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

    def encode(self, tick: Tick, sample_time: datetime, sequence: int, racks: range | None = None) -> list[EncodedRack]:
        """One RackTelemetryBatch per rack (default: every simulated rack), all with `sequence`."""
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
            out.append(EncodedRack(r, layout.rack_ids[r], sequence, msg, rows))
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
