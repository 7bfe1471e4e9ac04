"""DCGM-exporter scrapes and InfiniBand port-counter expositions → RackTelemetryBatch protobufs.

Mapping of DCGM fields (units checked against the exporter's own counter files,
shared/validation/feeds/dcgm/default-counters.csv and dcp-metrics-included.csv):

    DCGM field                          exporter unit      proto field (GpuSamples)   conversion
    DCGM_FI_DEV_POWER_USAGE             W                  power_w                    none
    DCGM_FI_DEV_GPU_TEMP                C                  gpu_temp_c                 none
    DCGM_FI_DEV_MEMORY_TEMP             C                  mem_temp_c                 none
    DCGM_FI_DEV_SM_CLOCK                MHz                sm_clock_mhz               none
    DCGM_FI_DEV_MEM_CLOCK               MHz                mem_clock_mhz              none
    DCGM_FI_DEV_GPU_UTIL                % (0..100)         util_gpu_pct               none
    DCGM_FI_DEV_MEM_COPY_UTIL           % (0..100)         util_mem_pct               none
    DCGM_FI_PROF_SM_ACTIVE              ratio 0..1         sm_active                  none
    DCGM_FI_PROF_PIPE_TENSOR_ACTIVE     ratio 0..1         tensor_active              none
    DCGM_FI_PROF_DRAM_ACTIVE            ratio 0..1         dram_active                none
    DCGM_FI_DEV_XID_ERRORS              last XID code      xid_errors (uint64)        must be an integer
    DCGM_FI_DEV_ECC_SBE_VOL_TOTAL       count              ecc_sbe_total (uint64)     must be an integer
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL       count              ecc_dbe_total (uint64)     must be an integer

The units of the exporter already match the proto, so no value is scaled; values outside the
field's physical range (a percentage above 100, a ratio above 1, negative power, ±Inf) are
*rejected*: they become NaN and are listed in ``DcgmResult.rejections``.

Missing data: a field a scrape does not carry for a GPU (the default exporter config has no
PROF_SM_ACTIVE; the h100 sample has only four families, the last cut at GPU 5) is NaN in the
float arrays. The uint64 arrays cannot hold NaN, so a missing XID/ECC value is 0 there; every
missing (node, field) is listed in ``DcgmResult.missing`` so a consumer can tell.

Series handling:
* every series needs a ``Hostname`` and an integer ``gpu`` label, else it is rejected;
* MIG-instance series (``GPU_I_ID`` label) are listed in ``ignored``: the whole-GPU series carry
  the GPU's values;
* other DCGM fields (FB_USED, PCIE_*, ENERGY, ...) and other labels (UUID, device, modelName,
  pci_bus_id, driver version, Kubernetes ``container/namespace/pod/pod_uid``) are not in the proto;
  they are ignored per field name (``ignored_fields``) without per-sample noise;
* two whole-GPU series for one (host, gpu, field) with equal values (one GPU shared by two pods)
  collapse to one; with different values the field is NaN and the conflict is a rejection.

Hosts → racks: ``rack_of_host`` is given by the caller (see ``as_host_resolver``). Series of a
host it does not know are kept out of every batch and counted in ``DcgmResult.unknown_hosts``;
``scrape_loop`` sends such scrapes to the dead-letter callback with the host names in the reason.

InfiniBand (``ib_link_samples``): port counters of treydock/infiniband_exporter
(``infiniband_{hca,switch}_port_*``) and of node_exporter (``node_infiniband_port_*``) are read
as **bytes**: both exporters already multiply the IB PortXmitData/PortRcvData counters (units of
4 octets, per the IBA spec and Linux sysfs ``port_xmit_data``) by 4 before exposing them as
``*_bytes_total`` (checked: infiniband_exporter's perfquery parser multiplies every ``*Data``
counter by 4; node_exporter's fixture 1.8527668e+07 = 4 × sysfs 4631917). Families that expose
the raw sysfs names (``*port_xmit_data`` / ``*port_rcv_data``, no ``bytes`` in the name) are
multiplied by 4 here. See ``IB_COUNTERS`` for the full table.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twin.core.clock import Clock
from twin.ingest.adapters.prometheus_text import Exposition, ExpositionError, Sample, parse_exposition
from twin.telemetry.v1 import telemetry_pb2

log = logging.getLogger(__name__)

SOURCE = "dcgm-exporter"

# --------------------------------------------------------------------------------------------
# DCGM field table


@dataclass(frozen=True)
class DcgmField:
    proto: str  # GpuSamples field
    integer: bool  # uint64 proto field
    lo: float
    hi: float
    unit: str


DCGM_FIELDS: dict[str, DcgmField] = {
    "DCGM_FI_DEV_POWER_USAGE": DcgmField("power_w", False, 0.0, math.inf, "W"),
    "DCGM_FI_DEV_GPU_TEMP": DcgmField("gpu_temp_c", False, -273.15, math.inf, "C"),
    "DCGM_FI_DEV_MEMORY_TEMP": DcgmField("mem_temp_c", False, -273.15, math.inf, "C"),
    "DCGM_FI_DEV_SM_CLOCK": DcgmField("sm_clock_mhz", False, 0.0, math.inf, "MHz"),
    "DCGM_FI_DEV_MEM_CLOCK": DcgmField("mem_clock_mhz", False, 0.0, math.inf, "MHz"),
    "DCGM_FI_DEV_GPU_UTIL": DcgmField("util_gpu_pct", False, 0.0, 100.0, "%"),
    "DCGM_FI_DEV_MEM_COPY_UTIL": DcgmField("util_mem_pct", False, 0.0, 100.0, "%"),
    "DCGM_FI_PROF_SM_ACTIVE": DcgmField("sm_active", False, 0.0, 1.0, "ratio"),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": DcgmField("tensor_active", False, 0.0, 1.0, "ratio"),
    "DCGM_FI_PROF_DRAM_ACTIVE": DcgmField("dram_active", False, 0.0, 1.0, "ratio"),
    "DCGM_FI_DEV_XID_ERRORS": DcgmField("xid_errors", True, 0.0, 2.0**64 - 1, "code"),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": DcgmField("ecc_sbe_total", True, 0.0, 2.0**64 - 1, "count"),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": DcgmField("ecc_dbe_total", True, 0.0, 2.0**64 - 1, "count"),
}
_PROTO_FIELDS = [f.proto for f in DCGM_FIELDS.values()]
_INTEGER_FIELDS = {f.proto for f in DCGM_FIELDS.values() if f.integer}
MIG_LABEL = "GPU_I_ID"

# --------------------------------------------------------------------------------------------
# hosts → (rack, node)


@dataclass(frozen=True)
class Placement:
    rack_id: str
    node_id: str


HostResolver = Callable[[str], "Placement | None"]
RackOfHost = Callable[[str], Any] | Mapping[str, Any]


def as_host_resolver(rack_of_host: RackOfHost) -> HostResolver:
    """Normalize the caller's host mapping into ``host -> Placement | None``.

    Accepted forms (a callable or a Mapping, looked up with the DCGM ``Hostname`` label):
    * returns/holds a ``Placement`` or a ``(rack_id, node_id)`` tuple: used as is;
    * returns/holds a ``str``: the rack id; the node id is then the host name itself (use this
      when hosts are named like twin node ids, ``<rack_id>-n<NN>``);
    * returns/holds ``None`` (or the Mapping has no key): unknown host.
    """
    lookup: Callable[[str], Any]
    if isinstance(rack_of_host, Mapping):
        table = rack_of_host
        lookup = table.get
    else:
        lookup = rack_of_host

    def resolve(host: str) -> Placement | None:
        got = lookup(host)
        if got is None:
            return None
        if isinstance(got, Placement):
            return got
        if isinstance(got, str):
            return Placement(got, host)
        if isinstance(got, tuple) and len(got) == 2 and all(isinstance(x, str) for x in got):
            return Placement(got[0], got[1])
        raise TypeError(f"rack_of_host({host!r}) returned {got!r}; expected rack id, (rack, node) or Placement")

    return resolve


def host_resolver_from_inventory(inventory: Any, aliases: Mapping[str, str] | None = None) -> HostResolver:
    """Hosts → placement from a ``twin.core.facility.Inventory``.

    A host named like a twin node id (``<rack_id>-n<NN>``) resolves directly; ``aliases`` maps real
    host names (``gpu-node-1``) to twin node ids. Anything else is unknown (None).
    """
    node_to_rack: dict[str, str] = {}
    for rack in inventory.racks:
        for nid in inventory.node_ids(rack):
            node_to_rack[nid] = rack.rack_id
    alias = dict(aliases or {})

    def resolve(host: str) -> Placement | None:
        node = alias.get(host, host)
        rack = node_to_rack.get(node)
        return Placement(rack, node) if rack is not None else None

    return resolve


# --------------------------------------------------------------------------------------------
# exposition → batches


@dataclass
class DcgmResult:
    batches: list[telemetry_pb2.RackTelemetryBatch] = field(default_factory=list)
    unknown_hosts: dict[str, int] = field(default_factory=dict)  # host -> series dropped
    rejections: list[str] = field(default_factory=list)  # invalid values / series, with line numbers
    ignored: list[str] = field(default_factory=list)  # understood but not mapped (MIG series)
    ignored_fields: set[str] = field(default_factory=set)  # metric names not in DCGM_FIELDS
    missing: dict[str, list[str]] = field(default_factory=dict)  # node id -> proto fields absent

    @property
    def rejected_values(self) -> int:
        return len(self.rejections)


@dataclass
class _NodeAcc:
    placement: Placement
    values: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    conflicts: set[tuple[int, str]] = field(default_factory=set)


def dcgm_to_batches(
    scrape: Exposition | str | bytes | Iterable[Sample],
    *,
    rack_of_host: RackOfHost,
    sample_time: datetime,
    site_id: str = "",
    sequence: Mapping[str, int] | int = 0,
    source: str = SOURCE,
) -> DcgmResult:
    """One RackTelemetryBatch per rack found in a DCGM-exporter scrape (or several merged scrapes).

    ``scrape`` may be raw exposition text/bytes (parsed strictly: raises ExpositionError), a parsed
    Exposition or any iterable of samples (e.g. several scrapes concatenated). ``sequence`` is the
    batch sequence number, per rack (a Mapping rack → seq) or one int for all.
    """
    if isinstance(scrape, (str, bytes, bytearray)):
        samples: Iterable[Sample] = parse_exposition(scrape).samples
    elif isinstance(scrape, Exposition):
        samples = scrape.samples
    else:
        samples = scrape
    resolve = as_host_resolver(rack_of_host)
    result = DcgmResult()
    nodes: dict[str, _NodeAcc] = {}
    placements: dict[str, Placement | None] = {}
    for s in samples:
        spec = DCGM_FIELDS.get(s.name)
        if spec is None:
            result.ignored_fields.add(s.name)
            continue
        host = s.labels.get("Hostname")
        if not host:
            result.rejections.append(f"line {s.line}: {s.name} has no Hostname label")
            continue
        if MIG_LABEL in s.labels:
            result.ignored.append(
                f"line {s.line}: {s.name} MIG instance {s.labels.get(MIG_LABEL)} of {host} gpu "
                f"{s.labels.get('gpu')} (whole-GPU series carry the GPU's values)"
            )
            continue
        gpu_label = s.labels.get("gpu", "")
        if not gpu_label.isdigit():
            result.rejections.append(f"line {s.line}: {s.name} on {host}: gpu label {gpu_label!r} is not an index")
            continue
        if host not in placements:
            placements[host] = resolve(host)
        placement = placements[host]
        if placement is None:
            result.unknown_hosts[host] = result.unknown_hosts.get(host, 0) + 1
            continue
        gpu = int(gpu_label)
        value, why = _check_value(s.value, spec)
        if why:
            result.rejections.append(f"line {s.line}: {s.name} on {host} gpu {gpu}: {why}")
            value = math.nan
        acc = nodes.get(placement.node_id)
        if acc is None:
            acc = nodes[placement.node_id] = _NodeAcc(placement)
        elif acc.placement.rack_id != placement.rack_id:
            result.rejections.append(
                f"line {s.line}: node {placement.node_id} placed in racks {acc.placement.rack_id} and {placement.rack_id}"
            )
            continue
        per_gpu = acc.values[gpu]
        if spec.proto in per_gpu and (gpu, spec.proto) not in acc.conflicts:
            old = per_gpu[spec.proto]
            if not _same(old, value):
                acc.conflicts.add((gpu, spec.proto))
                per_gpu[spec.proto] = math.nan
                result.rejections.append(
                    f"line {s.line}: {s.name} on {host} gpu {gpu}: conflicting series ({old} vs {value})"
                )
            continue
        if (gpu, spec.proto) not in acc.conflicts:
            per_gpu[spec.proto] = value

    by_rack: dict[str, list[telemetry_pb2.NodeSamples]] = defaultdict(list)
    for node_id in sorted(nodes):
        acc = nodes[node_id]
        node, missing = _node_samples(node_id, acc)
        if missing:
            result.missing[node_id] = missing
        by_rack[acc.placement.rack_id].append(node)
    for rack_id in sorted(by_rack):
        seq = sequence.get(rack_id, 0) if isinstance(sequence, Mapping) else int(sequence)
        batch = telemetry_pb2.RackTelemetryBatch(site_id=site_id, rack_id=rack_id, sequence=seq, source=source)
        batch.sample_time.FromDatetime(sample_time)
        batch.nodes.extend(by_rack[rack_id])
        result.batches.append(batch)
    return result


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _check_value(value: float, spec: DcgmField) -> tuple[float, str | None]:
    if math.isnan(value):
        return value, None  # explicit "no data" from the exporter; stays missing
    if math.isinf(value):
        return math.nan, f"{value} is not a finite {spec.unit} value"
    if not spec.lo <= value <= spec.hi:
        return math.nan, f"{value:g} {spec.unit} outside [{spec.lo:g}, {spec.hi:g}]"
    if spec.integer and value != int(value):
        return math.nan, f"{value} is not an integer {spec.unit}"
    return value, None


def _node_samples(node_id: str, acc: _NodeAcc) -> tuple[telemetry_pb2.NodeSamples, list[str]]:
    gpus = sorted(acc.values)
    cols: dict[str, list[Any]] = {name: [] for name in _PROTO_FIELDS}
    missing: set[str] = set()
    for g in gpus:
        row = acc.values[g]
        for name in _PROTO_FIELDS:
            v = row.get(name, math.nan)
            if math.isnan(v):
                missing.add(name)
                cols[name].append(0 if name in _INTEGER_FIELDS else math.nan)
            else:
                cols[name].append(int(v) if name in _INTEGER_FIELDS else float(v))
    gs = telemetry_pb2.GpuSamples(gpu_index=gpus, **cols)
    return telemetry_pb2.NodeSamples(node_id=node_id, gpus=gs), sorted(missing)


# --------------------------------------------------------------------------------------------
# scrape loop

Publish = Callable[[telemetry_pb2.RackTelemetryBatch], Awaitable[None]]
DeadLetter = Callable[[bytes, str, str], Awaitable[None]]


async def scrape_loop(
    urls: Sequence[str],
    interval_s: float,
    session: Any,  # aiohttp.ClientSession
    publish: Publish,
    dead_letter: DeadLetter,
    rack_of_host: RackOfHost,
    clock: Clock,
    stop_event: asyncio.Event,
    *,
    site_id: str = "",
    timeout_s: float | None = None,
) -> None:
    """Scrape every DCGM-exporter URL each ``interval_s`` and publish one batch per rack per tick.

    A failed GET (connection error, timeout, non-200 status), a malformed exposition, unknown
    hosts or rejected values → ``dead_letter(raw_bytes, reason, url)``; the loop never raises
    (except CancelledError) and returns when ``stop_event`` is set. All URLs of one tick are merged,
    so a rack spread over several exporters still gets one batch; ``sequence`` counts ticks per rack.
    """
    resolve = as_host_resolver(rack_of_host)
    sequence: dict[str, int] = defaultdict(int)
    timeout = timeout_s if timeout_s is not None else max(1.0, interval_s)
    while not stop_event.is_set():
        started = clock.monotonic()
        try:
            await _scrape_once(urls, session, publish, dead_letter, resolve, clock, sequence, site_id, timeout)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not stop ingestion
            log.exception("dcgm scrape tick failed")
        wait = max(0.0, interval_s - (clock.monotonic() - started))
        try:
            await asyncio.wait_for(stop_event.wait(), timeout=wait)
        except TimeoutError:
            pass


async def _fetch(session: Any, url: str, timeout: float) -> tuple[bytes | None, str | None]:
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url) as resp:
                body = await resp.read()
                if resp.status != 200:
                    return body, f"scrape failed: HTTP {resp.status}"
                return body, None
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return None, f"scrape failed: timeout after {timeout:g} s"
    except Exception as exc:  # aiohttp.ClientError, OSError, invalid URL, ...
        return None, f"scrape failed: {type(exc).__name__}: {exc}"


async def _safe_dead_letter(dead_letter: DeadLetter, raw: bytes, reason: str, source: str) -> None:
    try:
        await dead_letter(raw, reason, source)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("dead_letter failed for %s (%s)", source, reason)


async def _scrape_once(
    urls: Sequence[str],
    session: Any,
    publish: Publish,
    dead_letter: DeadLetter,
    resolve: HostResolver,
    clock: Clock,
    sequence: dict[str, int],
    site_id: str,
    timeout: float,
) -> None:
    now = clock.now()
    fetched = await asyncio.gather(*(_fetch(session, u, timeout) for u in urls))
    samples: list[Sample] = []
    for url, (body, error) in zip(urls, fetched, strict=True):
        if error is not None:
            await _safe_dead_letter(dead_letter, body or b"", error, url)
            continue
        assert body is not None
        try:
            expo = parse_exposition(body)
        except ExpositionError as exc:
            await _safe_dead_letter(dead_letter, body, str(exc), url)
            continue
        # Per-URL check so the raw body that carried a problem is the one dead-lettered.
        check = dcgm_to_batches(expo, rack_of_host=resolve, sample_time=now, site_id=site_id)
        problems = []
        if check.unknown_hosts:
            problems.append("unknown host(s): " + ", ".join(sorted(check.unknown_hosts)))
        if check.rejections:
            problems.append(f"{len(check.rejections)} rejected value(s): " + "; ".join(check.rejections[:5]))
        if problems:
            await _safe_dead_letter(dead_letter, body, " | ".join(problems), url)
        samples.extend(expo.samples)
    if not samples:
        return
    merged = dcgm_to_batches(samples, rack_of_host=resolve, sample_time=now, site_id=site_id, sequence=sequence)
    for batch in merged.batches:
        try:
            await publish(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("publish failed for rack %s", batch.rack_id)
            await _safe_dead_letter(dead_letter, batch.SerializeToString(), f"publish failed: {exc}", SOURCE)
            continue
        sequence[batch.rack_id] += 1


# --------------------------------------------------------------------------------------------
# InfiniBand port counters → LinkSamples


@dataclass(frozen=True)
class IbCounter:
    role: str  # tx_bytes | rx_bytes | tx_errors | rx_errors | state | phys_state
    scale: int = 1  # 4 for counters in 4-octet units


_TREYDOCK = {
    "transmit_data_bytes_total": IbCounter("tx_bytes"),
    "receive_data_bytes_total": IbCounter("rx_bytes"),
    "transmit_discards_total": IbCounter("tx_errors"),
    "transmit_constraint_errors_total": IbCounter("tx_errors"),
    "receive_errors_total": IbCounter("rx_errors"),
    "receive_remote_physical_errors_total": IbCounter("rx_errors"),
    "receive_switch_relay_errors_total": IbCounter("rx_errors"),
    "receive_constraint_errors_total": IbCounter("rx_errors"),
}
# metric name -> counter; errors are the sum of the listed error counters of the port.
IB_COUNTERS: dict[str, IbCounter] = {
    **{f"infiniband_hca_port_{k}": v for k, v in _TREYDOCK.items()},
    **{f"infiniband_switch_port_{k}": v for k, v in _TREYDOCK.items()},
    "node_infiniband_port_data_transmitted_bytes_total": IbCounter("tx_bytes"),
    "node_infiniband_port_data_received_bytes_total": IbCounter("rx_bytes"),
    "node_infiniband_port_discards_transmitted_total": IbCounter("tx_errors"),
    "node_infiniband_port_constraint_errors_transmitted_total": IbCounter("tx_errors"),
    "node_infiniband_port_errors_received_total": IbCounter("rx_errors"),
    "node_infiniband_port_constraint_errors_received_total": IbCounter("rx_errors"),
    "node_infiniband_state_id": IbCounter("state"),
    "node_infiniband_physical_state_id": IbCounter("phys_state"),
}
# Raw sysfs / perfquery names count 4-octet words (IBA PortXmitData/PortRcvData).
_RAW_WORDS = re.compile(r"(?:^|_)port_(xmit|rcv)_data$")

# IB PortInfo PortState: 1 Down, 2 Init, 3 Armed, 4 Active, 5 ActiveDefer;
# PortPhysicalState 5 = LinkUp.
_STATE_UP = 4
_STATE_DOWN = 1
_PHYS_LINK_UP = 5


def default_port_id(device: str, port: str) -> str:
    return f"{device}/{port}"


@dataclass
class IbResult:
    links: telemetry_pb2.LinkSamples
    rejections: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def ib_link_samples(
    scrape: Exposition | str | bytes | Iterable[Sample],
    *,
    port_id_of: Callable[[str, str], str | None] = default_port_id,
) -> IbResult:
    """LinkSamples from an InfiniBand port-counter exposition (treydock or node_exporter).

    A port is identified by its device (treydock: the ``guid`` label, replaced by the switch/HCA
    name from ``*_info`` when present; node_exporter: the ``device`` label) and ``port`` label;
    ``port_id_of(device, port)`` turns that into the twin's port id (``<node_id>/<nic>`` or
    ``<switch_id>/<port>``) and may return None to drop a port on purpose (listed in ``ignored``).
    Ports without both data counters are listed in ``ignored`` (e.g. node_exporter's i40iw0 only
    has state and rate). Counter values must be non-negative integers (float spellings such as
    1.8527668e+07 are accepted when integral). Link state comes from node_exporter's state ids;
    treydock exports no state, so its ports are LINK_STATE_UNSPECIFIED.
    """
    if isinstance(scrape, (str, bytes, bytearray)):
        samples: Iterable[Sample] = parse_exposition(scrape).samples
    elif isinstance(scrape, Exposition):
        samples = scrape.samples
    else:
        samples = list(scrape)
    samples = list(samples)
    names: dict[str, str] = {}
    for s in samples:
        if s.name in ("infiniband_hca_info", "infiniband_switch_info") and "guid" in s.labels:
            label = s.labels.get("hca") or s.labels.get("switch")
            if label:
                names[s.labels["guid"]] = label
    result = IbResult(telemetry_pb2.LinkSamples())
    ports: dict[tuple[str, str], dict[str, int]] = {}
    for s in samples:
        counter = IB_COUNTERS.get(s.name)
        if counter is None and _RAW_WORDS.search(s.name):
            counter = IbCounter("tx_bytes" if "_xmit_" in s.name else "rx_bytes", scale=4)
        if counter is None:
            continue
        device = s.labels.get("device") or s.labels.get("guid")
        port = s.labels.get("port")
        if not device or not port:
            result.rejections.append(f"line {s.line}: {s.name} without device/guid and port labels")
            continue
        v = s.value
        if not math.isfinite(v) or v < 0 or v != int(v):
            result.rejections.append(f"line {s.line}: {s.name} {device}/{port}: {v!r} is not a counter value")
            continue
        acc = ports.setdefault((device, port), {})
        if counter.role in ("state", "phys_state"):
            acc[counter.role] = int(v)
        else:
            acc[counter.role] = acc.get(counter.role, 0) + int(v) * counter.scale
    for (device, port), acc in sorted(ports.items()):
        shown = names.get(device, device)
        if "tx_bytes" not in acc or "rx_bytes" not in acc:
            result.ignored.append(f"{shown}/{port}: no data counters")
            continue
        port_id = port_id_of(shown, port)
        if port_id is None:
            result.ignored.append(f"{shown}/{port}: no port id")
            continue
        links = result.links
        links.port_id.append(port_id)
        links.tx_bytes.append(acc["tx_bytes"])
        links.rx_bytes.append(acc["rx_bytes"])
        links.tx_errors.append(acc.get("tx_errors", 0))
        links.rx_errors.append(acc.get("rx_errors", 0))
        links.link_state.append(_link_state(acc.get("state"), acc.get("phys_state")))
    return result


def _link_state(state: int | None, phys: int | None) -> int:
    if state is None:
        return telemetry_pb2.LINK_STATE_UNSPECIFIED
    if state == _STATE_DOWN:
        return telemetry_pb2.LINK_STATE_DOWN
    if state == _STATE_UP and (phys is None or phys == _PHYS_LINK_UP):
        return telemetry_pb2.LINK_STATE_UP
    return telemetry_pb2.LINK_STATE_DEGRADED  # init/armed/defer, or active with a sick PHY


def link_batches(
    links: telemetry_pb2.LinkSamples,
    *,
    rack_of_port: Callable[[str], str | None] | Mapping[str, str],
    sample_time: datetime,
    site_id: str = "",
    sequence: int = 0,
    source: str = "ib-exporter",
) -> tuple[list[telemetry_pb2.RackTelemetryBatch], list[str]]:
    """Split LinkSamples into one batch per rack; returns (batches, port ids with no rack)."""
    lookup = rack_of_port.get if isinstance(rack_of_port, Mapping) else rack_of_port
    per_rack: dict[str, telemetry_pb2.LinkSamples] = {}
    unknown: list[str] = []
    for i, pid in enumerate(links.port_id):
        rack = lookup(pid)
        if rack is None:
            unknown.append(pid)
            continue
        dst = per_rack.setdefault(rack, telemetry_pb2.LinkSamples())
        dst.port_id.append(pid)
        dst.tx_bytes.append(links.tx_bytes[i])
        dst.rx_bytes.append(links.rx_bytes[i])
        dst.tx_errors.append(links.tx_errors[i])
        dst.rx_errors.append(links.rx_errors[i])
        dst.link_state.append(links.link_state[i])
    batches = []
    for rack in sorted(per_rack):
        b = telemetry_pb2.RackTelemetryBatch(site_id=site_id, rack_id=rack, sequence=sequence, source=source)
        b.sample_time.FromDatetime(sample_time)
        b.links.CopyFrom(per_rack[rack])
        batches.append(b)
    return batches, unknown
