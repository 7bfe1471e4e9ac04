"""DCGM-exporter scrapes → rack batches (domain ``RackBatch``; ``codec`` encodes them for publishing).

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
Real exporters report the machine's own host name (``dgx-a01``), not the twin's node id
(``su1-0000-n00``): ``load_host_map`` reads the ingest setting INGEST_DCGM_HOST_MAP, a JSON/YAML
file mapping host names (exactly, or by regular expression) to node ids, and
``host_resolver_from_inventory`` applies it before looking the node up in the facility.

The scrape loop runs on the service kit's ``twin.core.polling.poll_loop`` (interval, jitter, and an
exponential backoff when every URL of a tick failed). Empty scrapes leave a trace: a scrape that
answers 200 and parses but carries no series of a mapped DCGM field (an exporter that sees no GPU,
or one configured without these fields) is dead-lettered with the reason ``empty scrape: ...``
(the body kept for diagnosis, like every other bad scrape), counted in ``ScrapeStats.empty`` and
logged once when a URL turns empty (and again when it recovers).

InfiniBand port counters are parsed in ``infiniband.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from twin.core.clock import Clock
from twin.core.polling import PollStats, poll_loop
from twin.ingest.adapters import codec
from twin.ingest.adapters.prometheus_text import Exposition, ExpositionError, Sample, parse_exposition
from twin.ingest.domain.model import GpuColumns, NodeGpus, RackBatch

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


@dataclass(frozen=True)
class HostMap:
    """DCGM ``Hostname`` label → twin node id: exact names first, then regular expressions in order."""

    hosts: Mapping[str, str] = field(default_factory=dict)
    patterns: tuple[tuple[re.Pattern[str], str], ...] = ()  # (full-match regex, node id template)

    def node_of(self, host: str) -> str | None:
        """The node id ``host`` maps to, or None when no entry covers it."""
        node = self.hosts.get(host)
        if node is not None:
            return node
        for pattern, template in self.patterns:
            m = pattern.fullmatch(host)
            if m is not None:
                return m.expand(template)
        return None


def parse_host_map(data: Any, where: str = "host map") -> HostMap:
    """A HostMap from decoded JSON/YAML: ``{host: node_id}``, or
    ``{"hosts": {host: node_id}, "patterns": [{"match": regex, "node": template}, ...]}``
    (``template`` uses ``\\1`` / ``\\g<name>`` groups of the full match, e.g. match ``dgx-(\\d+)``,
    node ``su1-0000-n\\1``). Raises ValueError with the offending entry."""
    if data is None:
        return HostMap()
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    structured = set(data) <= {"hosts", "patterns"} and bool(data)
    hosts_raw = data.get("hosts", {}) if structured else data
    patterns_raw = data.get("patterns", []) if structured else []
    if not isinstance(hosts_raw, Mapping):
        raise ValueError(f"{where}: 'hosts' must be an object {{host: node id}}")
    hosts: dict[str, str] = {}
    for host, node in hosts_raw.items():
        if not isinstance(node, str) or not node:
            raise ValueError(f"{where}: node id for host {host!r} must be a non-empty string, got {node!r}")
        hosts[str(host)] = node
    if not isinstance(patterns_raw, list):
        raise ValueError(f"{where}: 'patterns' must be a list of {{match, node}} objects")
    patterns = []
    for i, entry in enumerate(patterns_raw):
        if not (isinstance(entry, Mapping) and isinstance(entry.get("match"), str)
                and isinstance(entry.get("node"), str)):
            raise ValueError(f"{where}: patterns[{i}] must be {{match: regex, node: template}}, got {entry!r}")
        try:
            pattern = re.compile(entry["match"])
        except re.error as exc:
            raise ValueError(f"{where}: patterns[{i}].match {entry['match']!r}: {exc}") from None
        patterns.append((pattern, entry["node"]))
    return HostMap(hosts, tuple(patterns))


def load_host_map(path: str | Path | None) -> HostMap:
    """Read the INGEST_DCGM_HOST_MAP file (``.json``, else YAML); None or "" → an empty map."""
    if not path:
        return HostMap()
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    return parse_host_map(data, str(path))


def host_resolver_from_inventory(inventory: Any, aliases: Mapping[str, str] | None = None,
                                 host_map: HostMap | None = None) -> HostResolver:
    """Hosts → placement from a ``twin.core.facility.Inventory``.

    A host is first mapped to a node id by ``aliases`` (exact host names, e.g. ``gpu-node-1``) and
    ``host_map`` (exact names, then regular expressions; see ``HostMap``); a host neither maps is
    taken as a node id itself (hosts named like twin node ids, ``<rack_id>-n<NN>``). A node id the
    facility does not have is unknown (None). Exact entries naming such nodes are logged once here.
    """
    node_to_rack: dict[str, str] = {}
    for rack in inventory.racks:
        for nid in inventory.node_ids(rack):
            node_to_rack[nid] = rack.rack_id
    host_map = host_map or HostMap()
    alias = {**host_map.hosts, **(aliases or {})}
    missing = sorted(n for n in set(alias.values()) if n not in node_to_rack)
    if missing:
        log.warning("DCGM host map names %d node id(s) the facility does not have (their hosts stay unknown): %s",
                    len(missing), ", ".join(missing[:10]))
    patterns = HostMap({}, host_map.patterns)

    def resolve(host: str) -> Placement | None:
        node = alias.get(host)
        if node is None:
            try:
                node = patterns.node_of(host)
            except (re.error, IndexError) as exc:  # a template naming a group its regex lacks
                log.warning("DCGM host map pattern failed for %r: %s", host, exc)
                node = None
        node = node if node is not None else host
        rack = node_to_rack.get(node)
        return Placement(rack, node) if rack is not None else None

    return resolve


# --------------------------------------------------------------------------------------------
# exposition → batches


@dataclass
class DcgmResult:
    rack_batches: list[RackBatch] = field(default_factory=list)  # domain form, one per rack
    unknown_hosts: dict[str, int] = field(default_factory=dict)  # host -> series dropped
    rejections: list[str] = field(default_factory=list)  # invalid values / series, with line numbers
    ignored: list[str] = field(default_factory=list)  # understood but not mapped (MIG series)
    ignored_fields: set[str] = field(default_factory=set)  # metric names not in DCGM_FIELDS
    missing: dict[str, list[str]] = field(default_factory=dict)  # node id -> proto fields absent

    @property
    def rejected_values(self) -> int:
        return len(self.rejections)

    @property
    def batches(self) -> list:
        """The rack batches as RackTelemetryBatch protobufs (made by the codec), ready to publish."""
        return [codec.encode_batch(b) for b in self.rack_batches]


@dataclass
class _NodeAcc:
    placement: Placement
    values: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    conflicts: set[tuple[int, str]] = field(default_factory=set)


_GPU_INDEX = re.compile(r"[0-9]{1,4}")  # a GPU index on one node; DCGM numbers them 0..N-1


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
        if not _GPU_INDEX.fullmatch(gpu_label):  # ASCII digits only ("²".isdigit() is True), and small
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

    by_rack: dict[str, list[NodeGpus]] = defaultdict(list)
    for node_id in sorted(nodes):
        acc = nodes[node_id]
        node, missing = _node_samples(node_id, acc)
        if missing:
            result.missing[node_id] = missing
        by_rack[acc.placement.rack_id].append(node)
    for rack_id in sorted(by_rack):
        seq = sequence.get(rack_id, 0) if isinstance(sequence, Mapping) else int(sequence)
        result.rack_batches.append(RackBatch(site_id, rack_id, sample_time, seq, source,
                                             GpuColumns.from_nodes(by_rack[rack_id]),
                                             None, codec.no_links()))
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


def _node_samples(node_id: str, acc: _NodeAcc) -> tuple[NodeGpus, list[str]]:
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
    values = {name: np.array(col, dtype=np.uint64 if name in _INTEGER_FIELDS else np.float64)
              for name, col in cols.items()}
    return NodeGpus(node_id, np.array(gpus, dtype=np.uint32), values), sorted(missing)


# --------------------------------------------------------------------------------------------
# scrape loop

Publish = codec.Publish
DeadLetter = Callable[[bytes, str, str], Awaitable[None]]


@dataclass
class ScrapeStats:
    """What the scrape loop did (the poll loop's own counters are in ``ScrapeStats.poll``)."""

    scrapes: int = 0  # URL fetches attempted
    failed: int = 0  # fetches that failed (error, timeout, non-200) or did not parse
    empty: int = 0  # scrapes that parsed but carried no mapped DCGM series (dead-lettered)
    published: int = 0  # rack batches published
    poll: PollStats = field(default_factory=PollStats)
    empty_urls: set[str] = field(default_factory=set)  # URLs whose last scrape was empty


class ScrapeTickFailed(RuntimeError):
    """Every URL of a tick failed: the poll loop backs off before the next tick."""


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
    stats: ScrapeStats | None = None,
    jitter: float = 0.1,
    max_backoff_s: float = 300.0,
) -> ScrapeStats:
    """Scrape every DCGM-exporter URL each ``interval_s`` and publish one batch per rack per tick.

    Runs on ``twin.core.polling.poll_loop``: ``interval_s`` ± ``jitter`` between ticks; when every
    URL of a tick failed, the next ticks back off exponentially (up to ``max_backoff_s``).
    A failed GET (connection error, timeout, non-200 status), a malformed exposition, an empty
    scrape, unknown hosts or rejected values → ``dead_letter(raw_bytes, reason, url)``; the loop
    never raises (except CancelledError) and returns when ``stop_event`` is set. All URLs of one
    tick are merged, so a rack spread over several exporters still gets one batch; ``sequence``
    counts ticks per rack.
    """
    resolve = as_host_resolver(rack_of_host)
    sequence: dict[str, int] = defaultdict(int)
    timeout = timeout_s if timeout_s is not None else max(1.0, interval_s)
    stats = stats or ScrapeStats()

    async def tick() -> None:
        await _scrape_once(urls, session, publish, dead_letter, resolve, clock, sequence, site_id, timeout, stats)

    await poll_loop(tick, interval_s=interval_s, stop=stop_event, name="dcgm", jitter=jitter,
                    max_backoff_s=max_backoff_s, stats=stats.poll)
    return stats


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
    stats: ScrapeStats | None = None,
) -> None:
    stats = stats if stats is not None else ScrapeStats()
    now = clock.now()
    fetched = await asyncio.gather(*(_fetch(session, u, timeout) for u in urls))
    samples: list[Sample] = []
    failed = 0
    for url, (body, error) in zip(urls, fetched, strict=True):
        stats.scrapes += 1
        if error is not None:
            failed += 1
            await _safe_dead_letter(dead_letter, body or b"", error, url)
            continue
        assert body is not None
        try:
            expo = parse_exposition(body)
        except ExpositionError as exc:
            failed += 1
            await _safe_dead_letter(dead_letter, body, str(exc), url)
            continue
        if not any(s.name in DCGM_FIELDS for s in expo.samples):
            await _empty_scrape(dead_letter, body, expo, url, stats)
            continue
        if url in stats.empty_urls:
            stats.empty_urls.discard(url)
            log.info("DCGM scrape of %s carries DCGM series again", url)
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
    stats.failed += failed
    if samples:
        merged = dcgm_to_batches(samples, rack_of_host=resolve, sample_time=now, site_id=site_id,
                                 sequence=sequence)
        for batch in merged.batches:  # encoded by the codec
            try:
                await publish(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("publish failed for rack %s", batch.rack_id)
                await _safe_dead_letter(dead_letter, batch.SerializeToString(), f"publish failed: {exc}", SOURCE)
                continue
            sequence[batch.rack_id] += 1
            stats.published += 1
    if urls and failed == len(urls):
        raise ScrapeTickFailed(f"all {len(urls)} DCGM scrape(s) failed")


async def _empty_scrape(dead_letter: DeadLetter, body: bytes, expo: Exposition, url: str,
                        stats: ScrapeStats) -> None:
    """A scrape that parsed but has no mapped DCGM series: dead-lettered, counted, logged on change."""
    others = sorted({s.name for s in expo.samples})
    reason = ("empty scrape: no series of a mapped DCGM field (" + ", ".join(sorted(DCGM_FIELDS)[:3]) + ", ...)"
              + (f"; {len(expo.samples)} other sample(s): {', '.join(others[:5])}" if others else "; no samples at all"))
    stats.empty += 1
    if url not in stats.empty_urls:
        stats.empty_urls.add(url)
        log.warning("DCGM scrape of %s is empty (%s); dead-lettered, and logged again when it recovers", url, reason)
    await _safe_dead_letter(dead_letter, body, reason, url)
