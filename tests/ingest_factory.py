"""Deterministic RackTelemetryBatch builders for the ingest tests (valid by construction for a facility)."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from twin.core.facility import Inventory, build_inventory, load_facility_spec
from twin.telemetry.v1 import telemetry_pb2 as pb

_INVENTORIES: dict[str, Inventory] = {}


def inventory(name: str = "dgx-h100-su") -> Inventory:
    if name not in _INVENTORIES:
        _INVENTORIES[name] = build_inventory(load_facility_spec(name))
    return _INVENTORIES[name]


def gpu_values(seed: int, n: int) -> dict[str, np.ndarray]:
    """Plausible H100 readings; every value is exactly representable so round trips compare equal."""
    rng = np.random.default_rng(seed)
    return {
        "power_w": np.round(rng.uniform(90, 700, n), 1),
        "gpu_temp_c": np.round(rng.uniform(30, 80, n), 1),
        "mem_temp_c": np.round(rng.uniform(30, 85, n), 1),
        "sm_clock_mhz": np.round(rng.uniform(345, 1980, n)),
        "mem_clock_mhz": np.full(n, 2619.0),
        "util_gpu_pct": np.round(rng.uniform(0, 100, n), 1),
        "util_mem_pct": np.round(rng.uniform(0, 100, n), 1),
        "sm_active": np.round(rng.uniform(0, 1, n), 3),
        "tensor_active": np.round(rng.uniform(0, 1, n), 3),
        "dram_active": np.round(rng.uniform(0, 1, n), 3),
        "xid_errors": np.zeros(n, dtype=np.uint64),
        "ecc_sbe_total": rng.integers(0, 5, n).astype(np.uint64),
        "ecc_dbe_total": np.zeros(n, dtype=np.uint64),
    }


def rack_batch(inv: Inventory, rack_index: int, sample_time: datetime, sequence: int, *, seed: int | None = None,
               source: str = "test") -> pb.RackTelemetryBatch:
    rack = inv.racks[rack_index]
    gpus = inv.node_type_of_rack(rack).gpus
    seed = sequence * 1000 + rack_index if seed is None else seed
    msg = pb.RackTelemetryBatch(site_id=inv.spec.site_id, rack_id=rack.rack_id, sequence=sequence, source=source)
    msg.sample_time.FromDatetime(sample_time)
    for j, node_id in enumerate(inv.node_ids(rack)):
        node = msg.nodes.add(node_id=node_id)
        node.gpus.gpu_index.extend(range(gpus))
        for field, values in gpu_values(seed * 31 + j, gpus).items():
            getattr(node.gpus, field).extend(values.tolist())
    phases = inv.rack_type(rack).pdu_phases
    msg.rack.pdu_input_power_w.extend([9000.0 + 100 * k + sequence for k in range(phases)])
    msg.rack.inlet_air_temp_c = 24.0
    msg.rack.outlet_air_temp_c = 38.5
    msg.rack.coolant_supply_temp_c = 18.0
    msg.rack.coolant_return_temp_c = 26.0
    msg.rack.coolant_flow_lpm = 120.0
    nics = inv.nic_ids(rack)[:4]
    msg.links.port_id.extend(nics)
    msg.links.tx_bytes.extend([10**12 + 1000 * sequence + k for k in range(len(nics))])
    msg.links.rx_bytes.extend([2 * 10**12 + k for k in range(len(nics))])
    msg.links.tx_errors.extend([0] * len(nics))
    msg.links.rx_errors.extend([k for k in range(len(nics))])
    msg.links.link_state.extend([pb.LINK_STATE_UP] * (len(nics) - 1) + [pb.LINK_STATE_DEGRADED])
    return msg


def gpus_in(msg: pb.RackTelemetryBatch) -> int:
    return sum(len(n.gpus.gpu_index) for n in msg.nodes)
