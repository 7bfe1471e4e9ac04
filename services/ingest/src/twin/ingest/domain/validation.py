"""Checks of one decoded rack batch against the facility: schema, units/physical ranges, ids, time.

Granularity (documented decision): a batch with ANY invalid value is rejected as a whole, with every
reason found; the adapter sends the original bytes to the DLQ. Nothing is half-stored, nothing lost.

Rules (value ranges are inclusive):
  schema   every packed per-GPU array has one value per `gpu_index` entry; link arrays one per port;
           PDU values: none, one (the rack's total input) or the rack type's `pdu_phases`; node ids unique; gpu_index unique per node;
           a batch carries at least one sample
  ids      site_id = the facility's; rack_id, node ids (of that rack), gpu_index < GPUs per node,
           port ids = the rack's NICs `<node>/nic<K>` or a fabric switch port `<leaf-id>/<port>`
  missing  NaN in a float field means "not measured" (the DCGM adapter's convention for a field a
           scrape lacks): accepted and stored as NULL. ±inf is rejected.
  ranges   power_w            [0, 1.5 × GPU model max_w] W
           gpu_temp_c         [-10, 130] °C        mem_temp_c [-10, 150] °C
           sm_clock_mhz       [0, 1.5 × max_sm_clock_mhz] MHz;  mem_clock_mhz likewise
           util_*_pct         [0, 100] %           sm/tensor/dram_active [0, 1] ratio
           counters           < 2**63 (stored as bigint)
           pdu_input_power_w  [0, 1.5 × pdu_kw] W per phase
           air temps          [-10, 80] °C          coolant temps [-10, 100] °C
           coolant_flow_lpm   [0, 1.5 × cdu_flow_lpm] l/min
           link_state         a LinkState enum value (0..3)
  time     sample_time set, not more than 5 min ahead of the clock nor more than 7 days behind it
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from twin.ingest.domain.caches import CACHE_BYTES, BoundedCache, held_bytes
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
    RackBatch,
    node_rows,
)

if TYPE_CHECKING:  # pragma: no cover
    from twin.core.facility.inventory import Inventory

MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
MAX_REASONS = 20
BIGINT_MAX = np.uint64(2**63 - 1)
LINK_STATES = (0, 1, 2, 3)

FIXED_RANGES: dict[str, tuple[float, float, str]] = {
    "gpu_temp_c": (-10.0, 130.0, "°C"),
    "mem_temp_c": (-10.0, 150.0, "°C"),
    "util_gpu_pct": (0.0, 100.0, "%"),
    "util_mem_pct": (0.0, 100.0, "%"),
    "sm_active": (0.0, 1.0, "ratio"),
    "tensor_active": (0.0, 1.0, "ratio"),
    "dram_active": (0.0, 1.0, "ratio"),
}
AIR_RANGE = (-10.0, 80.0)
COOLANT_RANGE = (-10.0, 100.0)


@dataclass(frozen=True)
class RackLimits:
    node_gpus: dict[str, int]          # node id -> GPUs in that node
    nic_ids: frozenset[str]
    gpu_max_w: float
    max_sm_clock_mhz: float
    max_mem_clock_mhz: float
    pdu_phases: int
    pdu_phase_max_w: float
    max_flow_lpm: float


@dataclass(frozen=True)
class Limits:
    site_id: str
    racks: dict[str, RackLimits]
    switch_ids: frozenset[str] = frozenset()
    power_factor: float = 1.5
    max_future: timedelta = MAX_FUTURE
    max_age: timedelta = MAX_AGE


@dataclass(frozen=True)
class Problem:
    kind: str   # schema | ids | range | time  (a metric label)
    text: str


@dataclass
class _Found:
    problems: list[Problem] = field(default_factory=list)
    dropped: int = 0

    def add(self, kind: str, text: str) -> None:
        if len(self.problems) < MAX_REASONS:
            self.problems.append(Problem(kind, text))
        else:
            self.dropped += 1


def limits_from_inventory(inventory: Inventory, power_factor: float = 1.5) -> Limits:
    spec = inventory.spec
    racks: dict[str, RackLimits] = {}
    by_type: dict[str, tuple] = {}
    for rack in inventory.racks:
        if rack.rack_type not in by_type:
            nt = inventory.node_type_of_rack(rack)
            gm = inventory.gpu_model_of_rack(rack)
            rt = inventory.rack_type(rack)
            by_type[rack.rack_type] = (nt.gpus, gm, rt.pdu_phases)
        gpus, gm, phases = by_type[rack.rack_type]
        racks[rack.rack_id] = RackLimits(
            node_gpus={nid: gpus for nid in inventory.node_ids(rack)},
            nic_ids=frozenset(inventory.nic_ids(rack)),
            gpu_max_w=power_factor * gm.max_w,
            max_sm_clock_mhz=1.5 * gm.max_sm_clock_mhz,
            max_mem_clock_mhz=1.5 * gm.max_mem_clock_mhz,
            pdu_phases=phases,
            pdu_phase_max_w=1.5 * spec.power.pdu_kw * 1000.0,
            max_flow_lpm=1.5 * spec.cooling.cdu_flow_lpm,
        )
    return Limits(site_id=spec.site_id, racks=racks, switch_ids=frozenset(inventory.leaf_ids()),
                  power_factor=power_factor)


def _fmt(v: float) -> str:
    return repr(float(v))


def _check_range(found: _Found, name: str, values: np.ndarray, lo: float, hi: float, unit: str,
                 where: list[str]) -> None:
    """Flag values outside [lo, hi] and ±inf (NaN = missing passes); `where[i]` locates value i."""
    bad = np.flatnonzero(~((values >= lo) & (values <= hi)) & ~np.isnan(values))
    for i in bad[: MAX_REASONS]:
        v = values[i]
        if not np.isfinite(v):
            found.add("range", f"{name}={_fmt(v)} is not a finite number {where[i]}")
        else:
            found.add("range", f"{name}={_fmt(v)} outside [{lo:g}, {hi:g}] {unit} {where[i]}")
    found.dropped += max(0, len(bad) - MAX_REASONS)


def validate_batch(batch: RackBatch, limits: Limits, now: datetime) -> list[Problem]:
    """Every problem found in the batch (empty list = accepted). Pure; `now` comes from the Clock."""
    found = _Found()
    if batch.site_id != limits.site_id:
        found.add("ids", f"site_id {batch.site_id!r} is not this facility's {limits.site_id!r}")
    rack = limits.racks.get(batch.rack_id)
    if rack is None:
        found.add("ids", f"unknown rack_id {batch.rack_id!r}")
    if batch.sample_time is None:
        found.add("time", "sample_time is not set")
    else:
        if batch.sample_time > now + limits.max_future:
            found.add("time", f"sample_time {batch.sample_time.isoformat()} is more than "
                              f"{limits.max_future} ahead of now {now.isoformat()}")
        if batch.sample_time < now - limits.max_age:
            found.add("time", f"sample_time {batch.sample_time.isoformat()} is more than "
                              f"{limits.max_age.days} days before now {now.isoformat()}")
    if not batch.gpus.node_ids and batch.rack is None and not batch.links.port_id:
        found.add("schema", "batch carries no samples (no nodes, rack or links)")
    _check_gpus(batch, rack, found)
    _check_rack_env(batch, rack, found)
    _check_links(batch, rack, limits, found)
    problems = found.problems
    if found.dropped:
        problems.append(Problem(problems[-1].kind, f"... and {found.dropped} more problems"))
    return problems


def _gpu_ranges(rack: RackLimits | None) -> dict[str, tuple[float, float, str]]:
    ranges = dict(FIXED_RANGES)
    if rack is not None:
        ranges["power_w"] = (0.0, rack.gpu_max_w, "W")
        ranges["sm_clock_mhz"] = (0.0, rack.max_sm_clock_mhz, "MHz")
        ranges["mem_clock_mhz"] = (0.0, rack.max_mem_clock_mhz, "MHz")
    else:  # unknown rack: still report non-physical values
        ranges["power_w"] = (0.0, np.inf, "W")
        ranges["sm_clock_mhz"] = (0.0, np.inf, "MHz")
        ranges["mem_clock_mhz"] = (0.0, np.inf, "MHz")
    return ranges


def _range_bounds(ranges: dict[str, tuple[float, float, str]]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([r[0] for r in ranges.values()], dtype=np.float64)[:, None]
    hi = np.array([r[1] for r in ranges.values()], dtype=np.float64)[:, None]
    return lo, hi


_UNKNOWN_RACK_RANGES = _gpu_ranges(None)
_UNKNOWN_RACK_BOUNDS = _range_bounds(_UNKNOWN_RACK_RANGES)
_BOUNDS_CACHE: dict[tuple[float, float, float], tuple[dict, tuple[np.ndarray, np.ndarray]]] = {}


def _ranges_and_bounds(rack: RackLimits | None) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    if rack is None:
        return _UNKNOWN_RACK_RANGES, _UNKNOWN_RACK_BOUNDS
    key = (rack.gpu_max_w, rack.max_sm_clock_mhz, rack.max_mem_clock_mhz)
    hit = _BOUNDS_CACHE.get(key)
    if hit is None:
        ranges = _gpu_ranges(rack)
        hit = _BOUNDS_CACHE[key] = (ranges, _range_bounds(ranges))
    return hit


def _check_gpus(batch: RackBatch, rack: RackLimits | None, found: _Found) -> None:
    # Node by node (the per-node views of the columns): this path words the problems of rejected batches.
    seen_nodes: set[str] = set()
    checked: list[tuple[str, list[int]]] = []   # (node id, gpu indexes) of nodes whose values are range-checked
    columns: dict[str, list[np.ndarray]] = {f: [] for f in GPU_FIELDS}
    for node in batch.nodes:
        if node.node_id in seen_nodes:
            found.add("schema", f"node {node.node_id} appears twice")
            continue
        seen_nodes.add(node.node_id)
        n = len(node.gpu_index)
        lengths_ok = True
        for name in GPU_FIELDS:
            got = len(node.values[name])
            if got != n:
                lengths_ok = False
                found.add("schema", f"node {node.node_id}: {name} has {got} values for {n} gpu_index entries")
        index = node.gpu_index.tolist()
        if len(set(index)) != n:
            found.add("schema", f"node {node.node_id}: gpu_index has duplicates {index}")
        if rack is not None:
            gpus = rack.node_gpus.get(node.node_id)
            if gpus is None:
                found.add("ids", f"unknown node_id {node.node_id!r} for rack {batch.rack_id}")
            elif n and max(index) >= gpus:
                for g in node.gpu_index[node.gpu_index >= gpus][:MAX_REASONS]:
                    found.add("ids", f"gpu_index {int(g)} out of range 0..{gpus - 1} at node {node.node_id}")
        if not lengths_ok:
            continue
        checked.append((node.node_id, index))
        for name in GPU_FIELDS:
            columns[name].append(node.values[name])
    if not checked:
        return
    total = sum(len(index) for _, index in checked)
    if total == 0:
        return
    ranges, (lo, hi) = _ranges_and_bounds(rack)
    # Fast path: all range-checked values at once; the per-field pass below (which words the
    # problems) only runs when something is out of range.
    floats = np.empty((len(ranges), total), dtype=np.float64)
    for i, name in enumerate(ranges):
        np.concatenate(columns[name], out=floats[i], casting="unsafe")
    with np.errstate(invalid="ignore"):
        float_bad = bool((~((floats >= lo) & (floats <= hi)) & ~np.isnan(floats)).any())
    counts = np.empty((len(GPU_COUNT_FIELDS), total), dtype=np.uint64)
    for i, name in enumerate(GPU_COUNT_FIELDS):
        np.concatenate(columns[name], out=counts[i], casting="unsafe")
    count_bad = bool((counts > BIGINT_MAX).any())
    if not (float_bad or count_bad):
        return
    where = [f"at node {node_id} gpu {int(g)}" for node_id, index in checked for g in index]
    for i, (name, (lo_, hi_, unit)) in enumerate(ranges.items()):
        _check_range(found, name, floats[i], lo_, hi_, unit, where)
    for i, name in enumerate(GPU_COUNT_FIELDS):
        values = counts[i]
        for j in np.flatnonzero(values > BIGINT_MAX)[:MAX_REASONS]:
            found.add("range", f"{name}={int(values[j])} exceeds the 64-bit signed counter range {where[j]}")


def _scalar_ok(value, lo: float, hi: float) -> bool:
    """True when `value` passes _check_range (in range, or NaN = missing); False: let _check_range word it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return (lo <= v <= hi) or v != v


def _check_rack_env(batch: RackBatch, rack: RackLimits | None, found: _Found) -> None:
    env = batch.rack
    if env is None:
        return
    pdu = np.asarray(env.pdu_input_power_w, dtype=np.float64)
    if rack is not None and len(pdu) not in (0, 1, rack.pdu_phases):
        found.add("schema", f"pdu_input_power_w has {len(pdu)} phases, rack {batch.rack_id} has {rack.pdu_phases}")
    hi = rack.pdu_phase_max_w if rack is not None else np.inf
    if rack is not None and len(pdu) == 1:  # a total over all phases
        hi *= rack.pdu_phases
    if not all(_scalar_ok(v, 0.0, hi) for v in pdu.tolist()):
        _check_range(found, "pdu_input_power_w", pdu, 0.0, hi, "W",
                     [f"phase L{i + 1} at rack {batch.rack_id}" for i in range(len(pdu))])
    flow_hi = rack.max_flow_lpm if rack is not None else np.inf
    scalars = [
        ("inlet_air_temp_c", env.inlet_air_temp_c, *AIR_RANGE, "°C"),
        ("outlet_air_temp_c", env.outlet_air_temp_c, *AIR_RANGE, "°C"),
        ("coolant_supply_temp_c", env.coolant_supply_temp_c, *COOLANT_RANGE, "°C"),
        ("coolant_return_temp_c", env.coolant_return_temp_c, *COOLANT_RANGE, "°C"),
        ("coolant_flow_lpm", env.coolant_flow_lpm, 0.0, flow_hi, "l/min"),
    ]
    for name, value, lo, hi_, unit in scalars:
        if _scalar_ok(value, lo, hi_):
            continue
        _check_range(found, name, np.array([value], dtype=np.float64), lo, hi_, unit, [f"at rack {batch.rack_id}"])


def _check_links(batch: RackBatch, rack: RackLimits | None, limits: Limits, found: _Found) -> None:
    links = batch.links
    n = len(links.port_id)
    arrays = {**links.counters, "link_state": links.link_state}
    for name, values in arrays.items():
        if len(values) != n:
            found.add("schema", f"links: {name} has {len(values)} values for {n} port_id entries")
    if len(set(links.port_id)) != n:
        found.add("schema", "links: port_id has duplicates")
    if rack is not None:
        nic_ids, switch_ids = rack.nic_ids, limits.switch_ids
        for port in links.port_id:
            if port not in nic_ids and port.split("/", 1)[0] not in switch_ids:
                found.add("ids", f"unknown port_id {port!r} for rack {batch.rack_id}")
    states = links.link_state
    if len(states) == n and n:
        if states.dtype.kind in "iu":
            suspect = bool(((states < LINK_STATES[0]) | (states > LINK_STATES[-1])).any())
        else:
            suspect = True
        if suspect:
            for i in np.flatnonzero(~np.isin(states, LINK_STATES))[:MAX_REASONS]:
                found.add("range", f"link_state={int(states[i])} is not a LinkState at port {links.port_id[i]}")
    for name in LINK_COUNT_FIELDS:
        values = links.counters[name]
        if len(values) == n and n:
            wide = values.astype(np.uint64)
            if wide.max() <= BIGINT_MAX:
                continue
            for i in np.flatnonzero(wide > BIGINT_MAX)[:MAX_REASONS]:
                found.add("range", f"{name}={int(values[i])} exceeds the 64-bit signed counter range "
                                   f"at port {links.port_id[i]}")


_N_FLOATS, _N_COUNTS = len(GPU_FLOAT_FIELDS), len(GPU_COUNT_FIELDS)
_LINK_COUNT_SET = frozenset(LINK_COUNT_FIELDS)


@dataclass
class _Poll:
    """What the whole-poll checks need of the batches that passed the quick per-batch checks."""

    clear: list[int] = field(default_factory=list)        # indexes into the poll
    gpu_rows: list[int] = field(default_factory=list)     # per clear batch: GPU rows
    bounds: list[tuple[float, float, float]] = field(default_factory=list)   # per clear batch: power, clocks
    columns: list = field(default_factory=list)           # per clear batch: its GpuColumns
    node_gpus: list[int] = field(default_factory=list)    # per node of clear batches: GPUs in the node
    link_counts: list[np.ndarray] = field(default_factory=list)
    link_states: list[np.ndarray] = field(default_factory=list)
    link_rows: list[int] = field(default_factory=list)
    env_batch: list[int] = field(default_factory=list)    # position in `clear` of each batch with rack samples
    env_scalars: list[tuple[float, ...]] = field(default_factory=list)   # _ENV_SCALARS of each
    env_flow_hi: list[float] = field(default_factory=list)
    pdu: list[np.ndarray] = field(default_factory=list)
    pdu_hi: list[float] = field(default_factory=list)     # per batch with rack samples: W per value


_ENV_SCALARS = ("inlet_air_temp_c", "outlet_air_temp_c", "coolant_supply_temp_c", "coolant_return_temp_c",
                "coolant_flow_lpm")
# GPU_FLOAT_FIELDS' bounds as _gpu_ranges gives them; NaN at the three the rack's limits set (power, clocks)
_RACK_BOUND_AT = [GPU_FLOAT_FIELDS.index(f) for f in ("power_w", "sm_clock_mhz", "mem_clock_mhz")]
_FLOAT_LO = np.array([FIXED_RANGES[f][0] if f in FIXED_RANGES else 0.0 for f in GPU_FLOAT_FIELDS])
_FLOAT_HI = np.array([FIXED_RANGES[f][1] if f in FIXED_RANGES else np.nan for f in GPU_FLOAT_FIELDS])
_env_scalars = operator.attrgetter(*_ENV_SCALARS)
_FLOAT_ONLY = {float}
_ENV_LO = np.array([AIR_RANGE[0], AIR_RANGE[0], COOLANT_RANGE[0], COOLANT_RANGE[0], 0.0])
_ENV_HI = np.array([AIR_RANGE[1], AIR_RANGE[1], COOLANT_RANGE[1], COOLANT_RANGE[1], np.nan])  # flow: per rack


def validate_batches(batches: Sequence[RackBatch], limits: Limits, now: datetime) -> list[list[Problem]]:
    """`validate_batch` of every batch of a poll: the same problems, in the same words, found faster.

    The per-batch work is cut to the checks Python does well (ids, shapes, time); the per-value checks
    (ranges, counter widths, gpu_index bounds and uniqueness, link states, the rack's scalars and PDU
    phases) run once over the values of all batches together. A batch that fails anything, or that
    these quick checks cannot clear, is handed to `validate_batch` for the full list of worded problems."""
    out: list[list[Problem] | None] = [None] * len(batches)
    poll = _Poll()
    earliest, latest = now - limits.max_age, now + limits.max_future
    site_id, racks, switch_ids = limits.site_id, limits.racks, limits.switch_ids
    for i, b in enumerate(batches):
        rack = racks.get(b.rack_id)
        if (rack is None or b.site_id != site_id or b.sample_time is None
                or not earliest <= b.sample_time <= latest):
            continue
        links = b.links
        ports = links.port_id
        n_ports = len(ports)
        gpus = b.gpus
        node_ids = gpus.node_ids
        env = b.rack
        if not (node_ids or env is not None or n_ports):
            continue
        counters = links.counters
        if (counters.keys() != _LINK_COUNT_SET or len(links.link_state) != n_ports
                or not set(map(len, counters.values())) <= {n_ports}):
            continue
        if n_ports and (links.link_state.dtype.kind not in "iu" or not _ports_known(ports, rack, switch_ids)):
            continue
        rows = len(gpus.gpu_index)
        if (gpus.value_offsets is not None or len(gpus.floats) != _N_FLOATS * rows
                or len(gpus.counts) != _N_COUNTS * rows or gpus.node_offsets[-1] != rows
                or len(gpus.node_offsets) != len(node_ids) + 1):
            continue
        in_node = _gpus_per_node(node_ids, rack)
        if in_node is None:
            continue
        if env is not None:
            pdu = env.pdu_input_power_w
            scalars = _env_scalars(env)
            if (isinstance(pdu, np.ndarray) and pdu.dtype == np.float64 and pdu.ndim == 1
                    and len(pdu) in (0, 1, rack.pdu_phases) and set(map(type, scalars)) == _FLOAT_ONLY):
                poll.env_batch.append(len(poll.clear))
                poll.env_scalars.append(scalars)
                poll.env_flow_hi.append(rack.max_flow_lpm)
                poll.pdu.append(pdu)
                # one value = the rack's total input over all phases (see _check_rack_env)
                poll.pdu_hi.append(rack.pdu_phase_max_w * (rack.pdu_phases if len(pdu) == 1 else 1))
            elif not _quick_env_ok(b, rack):
                continue
        poll.clear.append(i)
        poll.gpu_rows.append(rows)
        poll.bounds.append((rack.gpu_max_w, rack.max_sm_clock_mhz, rack.max_mem_clock_mhz))
        poll.node_gpus += in_node
        poll.columns.append(gpus)
        if n_ports:
            poll.link_counts += counters.values()
            poll.link_states.append(links.link_state)
        poll.link_rows.append(n_ports)
    bad = _bad_values(poll)
    for i in poll.clear:
        if i not in bad:
            out[i] = []
    return [validate_batch(b, limits, now) if found is None else found for b, found in zip(batches, out, strict=True)]


# id() of a node-id / port-id tuple -> (the tuple, the RackLimits (and switch ids) it was checked against, the
# outcome). A rack sends the same ids tick after tick and decode hands them over as the same tuple objects (its
# layout caches), so these set checks run once per rack, not once per batch. The entry holds the tuple, so its
# id() is not reused while the entry lives; tuples of str cannot change; Limits are not changed once built.
# Bounded by entries and bytes (domain/caches.py): a known rack may still send ever new port lists.
_SEEN_MAX = 65_536   # a few entries per rack; emptied when full (a poll of batches never decoded alike)
_NODES_SEEN = BoundedCache(_SEEN_MAX, CACHE_BYTES)
_PORTS_SEEN = BoundedCache(_SEEN_MAX, CACHE_BYTES)


def _gpus_per_node(node_ids: tuple[str, ...], rack: RackLimits) -> list[int] | None:
    """GPUs of each node of the rack, None when a node id is unknown or repeated."""
    hit = _NODES_SEEN.get(id(node_ids))
    if hit is not None and hit[0] is node_ids and hit[1] is rack:
        return hit[2]
    in_node: list | None = list(map(rack.node_gpus.get, node_ids))
    if None in in_node or len(set(node_ids)) != len(node_ids):
        in_node = None
    if type(node_ids) is tuple and all(type(n) is str for n in node_ids):
        _NODES_SEEN.put(id(node_ids), (node_ids, rack, in_node), held_bytes(node_ids, in_node, each=node_ids))
    return in_node


def _ports_known(ports: tuple[str, ...], rack: RackLimits, switch_ids: frozenset[str]) -> bool:
    """Every port id unique and one of the rack's NICs or a fabric switch port (see _check_links)."""
    hit = _PORTS_SEEN.get(id(ports))
    if hit is not None and hit[0] is ports and hit[1] is rack and hit[2] is switch_ids:
        return hit[3]
    nic_ids = rack.nic_ids
    ok = len(set(ports)) == len(ports) and (nic_ids.issuperset(ports) or all(
        p in nic_ids or p.split("/", 1)[0] in switch_ids for p in ports))
    if type(ports) is tuple and all(type(p) is str for p in ports):
        _PORTS_SEEN.put(id(ports), (ports, rack, switch_ids, ok), held_bytes(ports, each=ports))
    return ok


def _quick_env_ok(batch: RackBatch, rack: RackLimits) -> bool:
    """True only when _check_rack_env would find nothing (False may still be fine: the full check decides)."""
    env = batch.rack
    if env is None:
        return True
    found = _Found()
    _check_rack_env(batch, rack, found)
    return not found.problems and not found.dropped


def _bad_values(poll: _Poll) -> set[int]:
    """Indexes (into the poll) of the clear batches with an out-of-range value: one numpy pass per kind."""
    clear, gpu_rows, bounds, node_gpus, columns = poll.clear, poll.gpu_rows, poll.bounds, poll.node_gpus, poll.columns
    link_counts, link_states, link_rows = poll.link_counts, poll.link_states, poll.link_rows
    if not clear:
        return set()
    bad_rows = np.zeros(sum(gpu_rows), dtype=bool)
    bad_batches = np.zeros(len(clear), dtype=bool)
    if bad_rows.size and gpu_rows.count(gpu_rows[0]) == len(gpu_rows):
        # The usual poll (every batch as many GPU rows): the columns joined flat are (batch, field, row)
        # blocks, checked against (batch, field) bounds with no per-batch reshaping or repeated limits.
        shape = (len(clear), -1, gpu_rows[0])
        floats = np.concatenate([c.floats for c in columns], dtype=np.float64, casting="unsafe").reshape(shape)
        counts = np.concatenate([c.counts for c in columns], dtype=np.uint64, casting="unsafe").reshape(shape)
        hi = np.repeat(_FLOAT_HI[None, :], len(clear), axis=0)
        hi[:, _RACK_BOUND_AT] = np.fromiter(chain.from_iterable(bounds), np.float64).reshape(len(clear), -1)
        with np.errstate(invalid="ignore"):
            ok = floats >= _FLOAT_LO[:, None]
            ok &= floats <= hi[:, :, None]
            if not ok.all():   # out of range, or NaN (missing: passes)
                bad_batches |= (~ok & ~np.isnan(floats)).any(axis=(1, 2))
        bad_batches |= (counts > BIGINT_MAX).any(axis=(1, 2))
    elif bad_rows.size:
        per_batch = np.array(gpu_rows, dtype=np.intp)
        lim = np.repeat(np.array(bounds, dtype=np.float64), per_batch, axis=0)
        # (fields, rows) blocks of all clear batches: one concatenation per wire type
        floats = np.concatenate([c.float_block() for c in columns], axis=1, dtype=np.float64, casting="unsafe")
        counts = np.concatenate([c.count_block() for c in columns], axis=1, dtype=np.uint64, casting="unsafe")
        bad_rows |= (counts > BIGINT_MAX).any(axis=0)
        with np.errstate(invalid="ignore"):
            for f, v in zip(GPU_FLOAT_FIELDS, floats, strict=True):
                if f == "power_w":
                    lo, hi = 0.0, lim[:, 0]
                elif f == "sm_clock_mhz":
                    lo, hi = 0.0, lim[:, 1]
                elif f == "mem_clock_mhz":
                    lo, hi = 0.0, lim[:, 2]
                else:
                    lo, hi = FIXED_RANGES[f][:2]
                bad_rows |= ~((v >= lo) & (v <= hi)) & ~np.isnan(v)
    if bad_rows.size:
        # gpu_index: below the node's GPU count and unique within the node. Node n owns the slots
        # first[n] .. first[n] + gpus[n] - 1; a row takes slot first + index (clipped into its own node's
        # slots, an index out of range being flagged already), and a slot taken twice is a duplicate.
        idx = np.concatenate([c.gpu_index for c in columns]).astype(np.int64)
        gpus = np.array(node_gpus, dtype=np.int64)
        rows_per_node = node_rows(columns)
        row_gpus = np.repeat(gpus, rows_per_node)
        bad_rows |= idx >= row_gpus
        first = np.repeat(np.cumsum(gpus) - gpus, rows_per_node)
        slot = first + np.clip(idx, 0, np.maximum(row_gpus - 1, 0))
        bad_rows |= np.bincount(slot, minlength=int(gpus.sum()) + 1)[slot] > 1
    batch_of_row = np.repeat(np.arange(len(clear)), np.array(gpu_rows, dtype=np.intp))
    bad = set(batch_of_row[bad_rows].tolist()) | set(np.flatnonzero(bad_batches).tolist())
    if link_states:
        per_batch = np.array(link_rows, dtype=np.intp)
        states = np.concatenate(link_states)
        bad_links = (states < LINK_STATES[0]) | (states > LINK_STATES[-1])
        n_fields = len(LINK_COUNT_FIELDS)
        # all counters at once first; which ports only when one is too wide (rare)
        if np.concatenate(link_counts, dtype=np.uint64, casting="unsafe").max() > BIGINT_MAX:
            for m in range(n_fields):
                bad_links |= np.concatenate(link_counts[m::n_fields], dtype=np.uint64, casting="unsafe") > BIGINT_MAX
        link_batch = np.repeat(np.arange(len(clear)), per_batch)
        bad |= set(link_batch[bad_links].tolist())
    if poll.env_batch:   # the rack's scalars and PDU values, as _check_rack_env bounds them (NaN = missing)
        env_batch = np.array(poll.env_batch, dtype=np.intp)
        scalars = np.fromiter(chain.from_iterable(poll.env_scalars), np.float64).reshape(len(env_batch), -1)
        hi = np.repeat(_ENV_HI[None, :], len(scalars), axis=0)
        hi[:, -1] = poll.env_flow_hi
        with np.errstate(invalid="ignore"):
            bad_env = (~((scalars >= _ENV_LO) & (scalars <= hi)) & ~np.isnan(scalars)).any(axis=1)
            per_batch = np.fromiter(map(len, poll.pdu), np.intp, len(poll.pdu))
            pdu = np.concatenate(poll.pdu)
            bad_pdu = ~((pdu >= 0.0) & (pdu <= np.repeat(poll.pdu_hi, per_batch))) & ~np.isnan(pdu)
        bad |= set(env_batch[bad_env].tolist())
        bad |= set(np.repeat(env_batch, per_batch)[bad_pdu].tolist())
    return {clear[k] for k in bad}
