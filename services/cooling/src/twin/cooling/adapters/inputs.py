"""Other twins' messages -> the live cooling twin's inputs (CodecError naming the field for the DLQ).

power.state.v1: only rack states carry heat (input_power_w: all of it becomes heat); the chain's
other components (PDU ... site) are not inputs and are skipped, not rejected.
telemetry.samples.v1: GPU board power, temperatures and memory activity of one rack, and the rack's
coolant flow / supply / return when its sensors report them (proto3 zero = not reported); or an
equipment batch (``batch.equipment``: CDU heat removed, secondary flow and temperatures, differential
pressure; CRAH return air; the plant's outdoor dry and wet bulb, tower and chiller power), NaN = not
reported. A plant value outside its range (or a wet bulb above the dry bulb) rejects the batch (DLQ).
"""

from __future__ import annotations

import math

import numpy as np

from twin.cooling.adapters.codec import CodecError, seconds
from twin.cooling.domain.network import CoolingNetwork
from twin.cooling.live import EquipmentReading, GpuReading
from twin.core.facility import Inventory
from twin.power.v1 import power_pb2 as ppb
from twin.telemetry.v1 import telemetry_pb2 as tpb


def power_update(msg: ppb.PowerState, inv: Inventory, site_id: str) -> tuple[int, float, float] | None:
    """(rack, state time s, IT W) of a rack PowerState; None for the chain's other scopes."""
    if msg.scope != ppb.POWER_SCOPE_RACK:
        return None
    if msg.site_id != site_id:
        raise CodecError("site_id", f"{msg.site_id!r} is not this twin's site {site_id!r}")
    rack = inv.rack_index.get(msg.entity_id)
    if rack is None:
        raise CodecError("entity_id", f"unknown rack {msg.entity_id!r}")
    if not msg.HasField("state_time"):
        raise CodecError("state_time", "required")
    w = msg.input_power_w
    if not math.isfinite(w) or w < 0:
        raise CodecError("input_power_w", f"must be a finite number >= 0, got {w}")
    try:
        t = seconds(msg.state_time)
    except ValueError as exc:  # protobuf's range check
        raise CodecError("state_time", str(exc)) from None
    return rack, t, float(w)


def _sample_time(b: tpb.RackTelemetryBatch) -> float:
    if not b.HasField("sample_time"):
        raise CodecError("batch.sample_time", "required")
    try:
        return seconds(b.sample_time)
    except ValueError as exc:  # protobuf's range check: nanos outside 0..1e9, seconds outside years 1..9999
        raise CodecError("batch.sample_time", str(exc)) from None


def _column(values, n: int, field: str) -> np.ndarray:
    if len(values) == 0:
        return np.full(n, np.nan)
    if len(values) != n:
        raise CodecError(field, f"{len(values)} values for {n} GPUs (parallel with gpu_index)")
    return np.asarray(values, dtype=np.float64)


def gpu_reading(msg: tpb.TelemetrySamples, inv: Inventory, site_id: str) -> GpuReading:
    b = msg.batch
    if b.site_id and b.site_id != site_id:
        raise CodecError("batch.site_id", f"{b.site_id!r} is not this twin's site {site_id!r}")
    rack = inv.rack_index.get(b.rack_id)
    if rack is None:
        raise CodecError("batch.rack_id", f"unknown rack {b.rack_id!r}")
    time_s = _sample_time(b)
    gpus: list[np.ndarray] = []
    cols: tuple[list, ...] = ([], [], [], [])
    for i, node in enumerate(b.nodes):
        n_ix = inv.node_index.get(node.node_id)
        if n_ix is None or inv.node_rack[n_ix] != rack:
            raise CodecError(
                f"batch.nodes[{i}].node_id", f"{node.node_id!r} is not a node of rack {b.rack_id}"
            )
        g = node.gpus
        local = np.asarray(g.gpu_index, dtype=np.int64)
        n = len(local)
        if n and local.max() >= inv.node_gpus[n_ix]:
            raise CodecError(
                f"batch.nodes[{i}].gpus.gpu_index", f"node {node.node_id} has {inv.node_gpus[n_ix]} GPUs"
            )
        gpus.append(inv.node_first_gpu[n_ix] + local)
        for col, name in zip(cols, ("power_w", "gpu_temp_c", "mem_temp_c", "dram_active"), strict=True):
            col.append(_column(getattr(g, name), n, f"batch.nodes[{i}].gpus.{name}"))
    empty = np.zeros(0)
    cat = [np.concatenate(c) if c else empty for c in cols]
    for name, v, lo, hi in (("gpu_temp_c", cat[1], -20.0, 150.0), ("mem_temp_c", cat[2], -20.0, 150.0)):
        bad = np.isfinite(v) & ((v < lo) | (v > hi))
        if bad.any():
            raise CodecError(f"batch.nodes.gpus.{name}", f"{v[bad][0]} outside {lo}..{hi} °C")
    flow = supply = ret = math.nan
    if b.HasField("rack"):
        rs = b.rack
        if rs.coolant_flow_lpm > 0 and rs.coolant_supply_temp_c != 0 and rs.coolant_return_temp_c != 0:
            flow, supply, ret = rs.coolant_flow_lpm, rs.coolant_supply_temp_c, rs.coolant_return_temp_c
    return GpuReading(
        rack=rack,
        time_s=time_s,
        gpu=np.concatenate(gpus) if gpus else np.zeros(0, dtype=np.int64),
        power_w=cat[0],
        gpu_temp_c=cat[1],
        hbm_temp_c=cat[2],
        dram_active=cat[3],
        coolant_flow_lpm=flow,
        coolant_supply_c=supply,
        coolant_return_c=ret,
    )


#: Outdoor air -60..60 °C: recorded extremes are -68 / +57 °C (WMO); the events' ambient range.
OUTDOOR_RANGE_C = (-60.0, 60.0)


def is_equipment(msg: tpb.TelemetrySamples) -> bool:
    return msg.batch.HasField("equipment")


def equipment_reading(msg: tpb.TelemetrySamples, net: CoolingNetwork, site_id: str) -> EquipmentReading:
    """An equipment batch (CDUs, CRAHs) -> per-CDU / per-CRAH arrays; unknown ids raise CodecError."""
    b = msg.batch
    if b.site_id != site_id:
        raise CodecError("batch.site_id", f"{b.site_id!r} is not this twin's site {site_id!r}")
    time_s = _sample_time(b)
    cdu_ix = {c: i for i, c in enumerate(net.cdu_ids)}
    crah_ix = {c: i for i, c in enumerate(net.crah_ids)}
    n, m = len(net.cdu_ids), len(net.crah_ids)
    cols = {k: np.full(n, np.nan) for k in ("heat", "flow", "supply", "return", "dp")}
    ret_air = np.full(m, np.nan)
    for j, c in enumerate(b.equipment.cdus):
        i = cdu_ix.get(c.cdu_id)
        if i is None:
            raise CodecError(f"batch.equipment.cdus[{j}].cdu_id", f"unknown CDU {c.cdu_id!r}")
        for k, v in (
            ("heat", c.heat_removed_w),
            ("flow", c.secondary_flow_lpm),
            ("supply", c.secondary_supply_temp_c),
            ("return", c.secondary_return_temp_c),
            ("dp", c.differential_pressure_kpa),
        ):
            cols[k][i] = v if math.isfinite(v) else math.nan
    for j, c in enumerate(b.equipment.crahs):
        i = crah_ix.get(c.crah_id)
        if i is None:
            raise CodecError(f"batch.equipment.crahs[{j}].crah_id", f"unknown CRAH {c.crah_id!r}")
        ret_air[i] = c.return_air_temp_c if math.isfinite(c.return_air_temp_c) else math.nan
    plant = dict.fromkeys(("dry_bulb_c", "wet_bulb_c", "tower_power_w", "chiller_power_w"), math.nan)
    if b.equipment.HasField("plant"):
        pl = b.equipment.plant
        for key, name, lo, hi, unit in (
            ("dry_bulb_c", "outdoor_temp_c", *OUTDOOR_RANGE_C, "°C"),
            ("wet_bulb_c", "wet_bulb_temp_c", *OUTDOOR_RANGE_C, "°C"),
            ("tower_power_w", "tower_power_w", 0.0, math.inf, "W"),
            ("chiller_power_w", "chiller_power_w", 0.0, math.inf, "W"),
        ):
            v = getattr(pl, name)
            if math.isnan(v):
                continue  # NaN: not measured (telemetry.proto PlantSample)
            if not (math.isfinite(v) and lo <= v <= hi):
                raise CodecError(f"batch.equipment.plant.{name}", f"{v} outside {lo}..{hi} {unit}")
            plant[key] = float(v)
        if plant["wet_bulb_c"] > plant["dry_bulb_c"]:
            raise CodecError(
                "batch.equipment.plant.wet_bulb_temp_c",
                f"{plant['wet_bulb_c']} above the dry bulb {plant['dry_bulb_c']} (a wet bulb never exceeds it)",
            )
    return EquipmentReading(
        time_s=time_s,
        cdu_heat_w=cols["heat"],
        cdu_flow_lpm=cols["flow"],
        cdu_supply_c=cols["supply"],
        cdu_return_c=cols["return"],
        cdu_dp_kpa=cols["dp"],
        crah_return_air_c=ret_air,
        **plant,
    )
