"""InfiniBand port-counter expositions → link samples (domain ``Links``) and per-rack batches.

Port counters of treydock/infiniband_exporter (``infiniband_{hca,switch}_port_*``) and of
node_exporter (``node_infiniband_port_*``) are read as **bytes**: both exporters already multiply
the IB PortXmitData/PortRcvData counters (units of 4 octets, per the IBA spec and Linux sysfs
``port_xmit_data``) by 4 before exposing them as ``*_bytes_total`` (checked: infiniband_exporter's
perfquery parser multiplies every ``*Data`` counter by 4; node_exporter's fixture 1.8527668e+07 =
4 × sysfs 4631917). Families that expose the raw sysfs names (``*port_xmit_data`` /
``*port_rcv_data``, no ``bytes`` in the name) are multiplied by 4 here. See ``IB_COUNTERS`` for the
full table.

No protobuf here: ``IbResult.links`` and ``link_batches`` go through ``codec``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from twin.ingest.adapters import codec
from twin.ingest.adapters.prometheus_text import Exposition, Sample, parse_exposition
from twin.ingest.domain.model import LINK_COUNT_FIELDS, GpuColumns, Links, RackBatch


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
    port_links: Links  # domain form: one entry per port with both data counters
    rejections: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def links(self):
        """The ports as a LinkSamples protobuf (made by the codec)."""
        return codec.encode_links(self.port_links)


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
    rejections: list[str] = []
    ignored: list[str] = []
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
            rejections.append(f"line {s.line}: {s.name} without device/guid and port labels")
            continue
        v = s.value
        if not math.isfinite(v) or v < 0 or v != int(v):
            rejections.append(f"line {s.line}: {s.name} {device}/{port}: {v!r} is not a counter value")
            continue
        acc = ports.setdefault((device, port), {})
        if counter.role in ("state", "phys_state"):
            acc[counter.role] = int(v)
        else:
            acc[counter.role] = acc.get(counter.role, 0) + int(v) * counter.scale
    port_ids: list[str] = []
    counts: dict[str, list[int]] = {f: [] for f in LINK_COUNT_FIELDS}
    states: list[int] = []
    for (device, port), acc in sorted(ports.items()):
        shown = names.get(device, device)
        if "tx_bytes" not in acc or "rx_bytes" not in acc:
            ignored.append(f"{shown}/{port}: no data counters")
            continue
        port_id = port_id_of(shown, port)
        if port_id is None:
            ignored.append(f"{shown}/{port}: no port id")
            continue
        port_ids.append(port_id)
        for f in LINK_COUNT_FIELDS:
            counts[f].append(acc.get(f, 0))
        states.append(_link_state(acc.get("state"), acc.get("phys_state")))
    links = Links(tuple(port_ids), {f: np.array(v, dtype=np.uint64) for f, v in counts.items()},
                  np.array(states, dtype=np.int64))
    return IbResult(links, rejections, ignored)


def _link_state(state: int | None, phys: int | None) -> int:
    if state is None:
        return codec.LINK_STATE_UNSPECIFIED
    if state == _STATE_DOWN:
        return codec.LINK_STATE_DOWN
    if state == _STATE_UP and (phys is None or phys == _PHYS_LINK_UP):
        return codec.LINK_STATE_UP
    return codec.LINK_STATE_DEGRADED  # init/armed/defer, or active with a sick PHY


def link_rack_batches(
    links: Links,
    *,
    rack_of_port: Callable[[str], str | None] | Mapping[str, str],
    sample_time: datetime,
    site_id: str = "",
    sequence: int = 0,
    source: str = "ib-exporter",
) -> tuple[list[RackBatch], list[str]]:
    """Split link samples into one domain batch per rack; returns (batches, port ids with no rack)."""
    lookup = rack_of_port.get if isinstance(rack_of_port, Mapping) else rack_of_port
    per_rack: dict[str, list[int]] = {}
    unknown: list[str] = []
    for i, pid in enumerate(links.port_id):
        rack = lookup(pid)
        if rack is None:
            unknown.append(pid)
            continue
        per_rack.setdefault(rack, []).append(i)
    batches = []
    for rack in sorted(per_rack):
        idx = np.array(per_rack[rack], dtype=np.intp)
        part = Links(tuple(links.port_id[i] for i in idx), {f: links.counters[f][idx] for f in LINK_COUNT_FIELDS},
                     links.link_state[idx])
        batches.append(RackBatch(site_id, rack, sample_time, sequence, source, GpuColumns.empty(), None, part))
    return batches, unknown


def link_batches(
    links: Links | object,
    *,
    rack_of_port: Callable[[str], str | None] | Mapping[str, str],
    sample_time: datetime,
    site_id: str = "",
    sequence: int = 0,
    source: str = "ib-exporter",
) -> tuple[list, list[str]]:
    """`link_rack_batches` encoded as RackTelemetryBatch protobufs by the codec, ready to publish.

    ``links`` is domain ``Links`` or a LinkSamples protobuf (``IbResult.links``; decoded by the codec).
    """
    domain = links if isinstance(links, Links) else codec.decode_links(links)
    batches, unknown = link_rack_batches(domain, rack_of_port=rack_of_port, sample_time=sample_time,
                                         site_id=site_id, sequence=sequence, source=source)
    return [codec.encode_batch(b) for b in batches], unknown
