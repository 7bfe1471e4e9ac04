"""Fabric topology: NVLink scale-up domains and a rail-optimized scale-out fat-tree.

Pure data (frozen dataclasses) plus vectorized id mappings. Units are in the names:
``_GBps`` = gigabytes per second (1e9 B/s), ``_Gbps`` = gigabits per second, ``_s`` = seconds.

Hardware facts used by the presets (per GPU, per direction):

* NVLink 3 (A100): 12 links x 25 GB/s = 300 GB/s raw; NVLink 4 (H100/H200): 18 x 25 = 450 GB/s raw;
  NVLink 5 (B200/GB200): 18 x 50 = 900 GB/s raw. Usable payload bandwidth is ~82 % of raw
  (18 x ~20.6 GB/s ~= 370 GB/s on H100), ``NVLINK_PAYLOAD_EFFICIENCY``.
* NVLink SHARP (NVLS) exists on NVSwitch 3+ (H100/H200 HGX, GB200 NVL72). NCCL's own cost model
  scales NVLS bandwidth by an architecture efficiency (0.85 Hopper, 0.74 Blackwell).
* Scale-out: one 400 Gb/s NIC per GPU (DGX H100, IB NDR / Spectrum-X), 4 x 100 Gb/s EFA per GPU on
  AWS p5 (32 x 100G per node), 2 x 100 Gb/s RoCE per GPU on OCI BM.GPU.B4.8 (16 x 100G per node),
  one 200 Gb/s HDR NIC per GPU on DGX A100.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: usable NVLink payload bandwidth / raw signalling bandwidth (18 x 20.6 / 18 x 25 on H100)
NVLINK_PAYLOAD_EFFICIENCY = 0.824

ARCHS = ("ampere", "hopper", "blackwell")
HOST_CPUS = ("intel", "amd", "arm")


@dataclass(frozen=True)
class ScaleUp:
    """One NVLink/NVSwitch domain type.

    gpus_per_domain: GPUs that share one NVLink fabric (8 on HGX, 72 on GB200 NVL72).
    nvlink_bw_GBps_per_gpu: usable bandwidth per GPU per direction into the NVSwitch fabric.
    nvls: the switches do in-network reduction (NVLink SHARP).
    nvls_efficiency: fraction of nvlink bandwidth NVLS collectives reach (NCCL: .85 Hopper, .74 Blackwell).
    arch: GPU architecture ("ampere" | "hopper" | "blackwell"), selects NCCL protocol caps.
    hop_latency_s: extra latency per NVLink step beyond NCCL's per-step constants (0 inside a
        baseboard; multi-node NVLink goes through the same switch trays, so 0 by default too).
    gpu_latency_scale: GPU-side latency of NCCL's kernels (base and per-NVLink-step constants)
        relative to the Ampere/Hopper parts those constants were tuned on (see ``nvlink``).
    inter_domain_nics: NICs per NVLink domain that NCCL uses to talk to other domains, where NCCL caps it below
        one per head GPU (multi-node NVLink: ``MNNVL_GB200_INTER_DOMAIN_NICS``); None = no cap beyond
        NCCL_MAX_NVLS_ARITY.
    """

    gpus_per_domain: int
    nvlink_bw_GBps_per_gpu: float
    nvls: bool
    arch: str = "hopper"
    nvls_efficiency: float = 0.85
    hop_latency_s: float = 0.0
    gpu_latency_scale: float = 1.0
    inter_domain_nics: int | None = None

    def __post_init__(self) -> None:
        if not self.gpu_latency_scale > 0:
            raise ValueError(f"gpu_latency_scale must be > 0, got {self.gpu_latency_scale}")
        if self.gpus_per_domain < 1:
            raise ValueError(f"gpus_per_domain must be >= 1, got {self.gpus_per_domain}")
        if not self.nvlink_bw_GBps_per_gpu > 0:
            raise ValueError(f"nvlink_bw_GBps_per_gpu must be > 0, got {self.nvlink_bw_GBps_per_gpu}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if not 0 < self.nvls_efficiency <= 1:
            raise ValueError(f"nvls_efficiency must be in (0, 1], got {self.nvls_efficiency}")
        if self.inter_domain_nics is not None and self.inter_domain_nics < 1:
            raise ValueError(f"inter_domain_nics must be >= 1 or None, got {self.inter_domain_nics}")


@dataclass(frozen=True)
class ScaleOut:
    """Rail-optimized two-tier (leaf/spine) scale-out network.

    nic_bw_Gbps: line rate of one NIC; nics_per_gpu: NICs attached to each GPU (may be fractional).
    kind: "infiniband" | "roce" | "efa".
    efficiency: payload fraction of line rate reached by NCCL (headers, encoding, flow control).
    base_latency_s: extra per-message latency of the transport beyond NCCL's network constants
        (~0 for InfiniBand/RoCE verbs, ~20 us for EFA's SRD/libfabric path), added to every
        network step (twice for the Simple protocol where NCCL flushes GPU-direct receives: Ampere and earlier,
        Grace C2C hosts; see ``collectives.GDR_FLUSH_X``).
    per_hop_latency_s: one switch traversal (cut-through): a leaf-local path crosses 1 switch,
        a leaf-spine-leaf path 3.
    nodes_per_leaf: nodes whose rail-r NIC sits on the same rail-r leaf (a "leaf group" or SU).
    n_spines: spines each leaf has an uplink to.
    oversubscription: leaf downlink / uplink bandwidth (1.0 = non-blocking).
    ll_over_net: NCCL's LL/LL128 protocols may cross this network. They need 8-/128-byte stores to land in
        order; a transport without that guarantee runs Simple only (aws-ofi-nccl forces NCCL_PROTO=simple on
        EFA devices lacking 128-byte in-order delivery, e.g. p4d: src/platform-aws.cpp).
    reported_latency_s: the inter-node latency the NCCL net plugin reports (NCCL adds it to every network step
        of its own cost model, twice for Simple, and picks algorithms by that model). None = the transport's
        physical ``base_latency_s`` (NCCL's IB/socket transports report 0 extra).
    nccl_buffsize_bytes: NCCL_BUFFSIZE the jobs on this network run with (sets the Simple protocol's step and
        chunk). None = what NCCL runs with on this transport today: NCCL's default, or on EFA the 8 MiB that
        aws-ofi-nccl sets from v1.16.0 (``collectives.NCCL_BUFFSIZE_BY_TRANSPORT``).
    """

    nic_bw_Gbps: float
    nics_per_gpu: float = 1.0
    kind: str = "infiniband"
    efficiency: float = 0.92
    base_latency_s: float = 0.0
    per_hop_latency_s: float = 0.15e-6
    nodes_per_leaf: int = 32
    n_spines: int = 32
    oversubscription: float = 1.0
    ll_over_net: bool = True
    reported_latency_s: float | None = None
    nccl_buffsize_bytes: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("infiniband", "roce", "efa"):
            raise ValueError(f"kind must be 'infiniband', 'roce' or 'efa', got {self.kind!r}")
        if not self.nic_bw_Gbps > 0 or not self.nics_per_gpu > 0:
            raise ValueError("nic_bw_Gbps and nics_per_gpu must be > 0")
        if not 0 < self.efficiency <= 1:
            raise ValueError(f"efficiency must be in (0, 1], got {self.efficiency}")
        if self.nodes_per_leaf < 1 or self.n_spines < 1:
            raise ValueError("nodes_per_leaf and n_spines must be >= 1")
        if not self.oversubscription >= 1:
            raise ValueError(f"oversubscription must be >= 1, got {self.oversubscription}")
        if self.nccl_buffsize_bytes is not None and not self.nccl_buffsize_bytes > 0:
            raise ValueError(f"nccl_buffsize_bytes must be > 0, got {self.nccl_buffsize_bytes}")

    @property
    def bw_GBps_per_gpu(self) -> float:
        """Usable scale-out bandwidth per GPU per direction, GB/s."""
        return self.nic_bw_Gbps / 8.0 * self.nics_per_gpu * self.efficiency


@dataclass(frozen=True)
class FabricTopology:
    """A cluster: ``n_gpus`` GPUs, ``gpus_per_node`` per host, NVLink domains, a scale-out network.

    GPU ids are dense 0..n_gpus-1, node = gpu // gpus_per_node, NVLink domain =
    gpu // scale_up.gpus_per_domain (a domain holds whole nodes), leaf group = node // nodes_per_leaf.
    Rails: the GPU with local index r in its node uses the rail-r leaf of its leaf group.
    """

    name: str
    n_gpus: int
    gpus_per_node: int
    scale_up: ScaleUp
    scale_out: ScaleOut | None = None
    notes: str = field(default="", compare=False)
    #: host CPU vendor ("intel" | "amd" | "arm"): NCCL's proxy thread posts network operations from the host;
    #: its per-step cost and LL bandwidth cap differ by CPU (NCCL src/graph/tuning.cc getNetOverhead, llMaxBws).
    host_cpu: str = "intel"

    def __post_init__(self) -> None:
        if self.host_cpu not in HOST_CPUS:
            raise ValueError(f"host_cpu must be one of {HOST_CPUS}, got {self.host_cpu!r}")
        if self.n_gpus < 1 or self.gpus_per_node < 1:
            raise ValueError("n_gpus and gpus_per_node must be >= 1")
        if self.n_gpus % self.gpus_per_node:
            raise ValueError(f"n_gpus={self.n_gpus} is not a multiple of gpus_per_node={self.gpus_per_node}")
        g = self.scale_up.gpus_per_domain
        if g % self.gpus_per_node and self.gpus_per_node % g:
            raise ValueError(f"gpus_per_domain={g} must be a multiple or divisor of gpus_per_node={self.gpus_per_node}")
        if self.scale_out is None and self.n_gpus > g:
            raise ValueError("a topology larger than one NVLink domain needs a scale_out network")

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return self.n_gpus // self.gpus_per_node

    @property
    def gpus_per_domain(self) -> int:
        return min(self.scale_up.gpus_per_domain, self.n_gpus)

    @property
    def n_domains(self) -> int:
        return -(-self.n_gpus // self.scale_up.gpus_per_domain)

    @property
    def nodes_per_leaf(self) -> int:
        return self.scale_out.nodes_per_leaf if self.scale_out is not None else self.n_nodes

    @property
    def n_leaf_groups(self) -> int:
        return -(-self.n_nodes // self.nodes_per_leaf)

    @property
    def n_rails(self) -> int:
        return self.gpus_per_node

    @property
    def n_leaves(self) -> int:
        """Leaf switches: one per (leaf group, rail)."""
        return self.n_leaf_groups * self.n_rails if self.scale_out is not None else 0

    @property
    def n_spines(self) -> int:
        return self.scale_out.n_spines if self.scale_out is not None else 0

    # --- vectorized id maps ---------------------------------------------------------------------
    def node_of(self, gpu_ids: np.ndarray) -> np.ndarray:
        return np.asarray(gpu_ids) // self.gpus_per_node

    def domain_of(self, gpu_ids: np.ndarray) -> np.ndarray:
        return np.asarray(gpu_ids) // self.scale_up.gpus_per_domain

    def leaf_group_of(self, gpu_ids: np.ndarray) -> np.ndarray:
        return self.node_of(gpu_ids) // self.nodes_per_leaf

    def rail_of(self, gpu_ids: np.ndarray) -> np.ndarray:
        return np.asarray(gpu_ids) % self.gpus_per_node

    def leaf_of(self, gpu_ids: np.ndarray) -> np.ndarray:
        """Leaf switch index (leaf_group * n_rails + rail) of each GPU's NIC."""
        return self.leaf_group_of(gpu_ids) * self.n_rails + self.rail_of(gpu_ids)

    def resized(self, n_gpus: int, name: str | None = None) -> FabricTopology:
        """The same hardware with a different GPU count (rounded up to whole NVLink domains/nodes)."""
        unit = max(self.gpus_per_node, self.scale_up.gpus_per_domain) if n_gpus > self.gpus_per_domain else self.gpus_per_node
        n = -(-int(n_gpus) // unit) * unit
        return replace(self, n_gpus=n, name=name or f"{self.name}-{n}")


# --- builders ---------------------------------------------------------------------------------

def nvlink(generation: int, gpus_per_domain: int, *, nvls: bool | None = None) -> ScaleUp:
    """ScaleUp for an NVLink generation (3 = A100, 4 = H100/H200, 5 = B200/GB200).

    Blackwell's GPU-side collective latency is 1.3x Hopper's: the best 8-byte all-reduce NCCL reaches
    (symmetric kernels, same tuning) is ~3.0 us on 8x B200 vs ~2.3 us on 8x H200/H800
    (NVIDIA/nccl issue #1940, 2025-12); NCCL's latency constants were set on Ampere/Hopper.
    """
    table = {
        3: (12 * 25.0, "ampere", False, 0.85, 1.0),
        4: (18 * 25.0, "hopper", True, 0.85, 1.0),
        5: (18 * 50.0, "blackwell", True, 0.74, 3.0 / 2.3),
    }
    if generation not in table:
        raise ValueError(f"unknown NVLink generation {generation}; known: {sorted(table)}")
    raw, arch, has_nvls, eff, lat_scale = table[generation]
    return ScaleUp(
        gpus_per_domain=gpus_per_domain,
        nvlink_bw_GBps_per_gpu=raw * NVLINK_PAYLOAD_EFFICIENCY,
        nvls=has_nvls if nvls is None else nvls,
        arch=arch,
        nvls_efficiency=eff,
        gpu_latency_scale=lat_scale,
    )


def infiniband(nic_bw_Gbps: float = 400.0, nics_per_gpu: float = 1.0, **kw: float) -> ScaleOut:
    """InfiniBand (NDR 400G default; HDR = 200). Quantum-2 switch hop ~130 ns. Efficiency 0.92: NCCL reaches
    46-48 GB/s per NDR 400 Gb/s NIC (NVIDIA, nccl-tests issue #290), 46/50 = 0.92 taken."""
    kw.setdefault("per_hop_latency_s", 0.13e-6)
    return ScaleOut(nic_bw_Gbps=nic_bw_Gbps, nics_per_gpu=nics_per_gpu, kind="infiniband", efficiency=0.92, **kw)


def roce(nic_bw_Gbps: float = 400.0, nics_per_gpu: float = 1.0, **kw: float) -> ScaleOut:
    """RoCEv2 over Ethernet (Spectrum-class switch hop ~0.3-0.6 us). Efficiency 0.90: no published per-NIC
    NCCL figure found; the IB figure less the larger RoCEv2/UDP/IP header (~2 %) is assumed."""
    kw.setdefault("per_hop_latency_s", 0.5e-6)
    return ScaleOut(nic_bw_Gbps=nic_bw_Gbps, nics_per_gpu=nics_per_gpu, kind="roce", efficiency=0.90, **kw)


def efa(nic_bw_Gbps: float = 100.0, nics_per_gpu: float = 4.0, **kw: float) -> ScaleOut:
    """AWS Elastic Fabric Adapter (SRD over libfabric): ~20 us more per message than IB verbs. The aws-ofi-nccl
    plugin reports 75 us inter-node latency to NCCL on p4d/p4de/p5/p5e (35 us on p5en/p6; src/platform-aws.cpp,
    commit d87d61e0: "a value below 75 us is slightly better for large deployments, but makes NCCL choose the
    wrong algorithm for the 2 nodes case"), so NCCL's algorithm choice sees 75 us per network step.
    Efficiency 0.90: no published per-NIC NCCL figure for EFA found; assumed equal to RoCE."""
    kw.setdefault("per_hop_latency_s", 0.5e-6)
    kw.setdefault("base_latency_s", 20e-6)
    kw.setdefault("reported_latency_s", 75e-6)
    return ScaleOut(nic_bw_Gbps=nic_bw_Gbps, nics_per_gpu=nics_per_gpu, kind="efa", efficiency=0.90, **kw)


def hgx_cluster(n_gpus: int, *, nvlink_generation: int = 4, scale_out: ScaleOut | None = None,
                name: str | None = None) -> FabricTopology:
    """HGX/DGX-style cluster: 8 GPUs per node = one NVLink domain, one 400G IB NIC per GPU by default."""
    so = scale_out if scale_out is not None else infiniband(400.0)
    return FabricTopology(name=name or f"hgx-nvl{nvlink_generation}-{n_gpus}", n_gpus=int(n_gpus), gpus_per_node=8,
                          scale_up=nvlink(nvlink_generation, 8), scale_out=so)


#: NICs per GB200 NVL72 domain NCCL uses between multi-node-NVLink domains: 16 (NCCL 2.27.3 release notes, "MNNVL
#: improvements": "Increase to 16 the number of NICs used to communicate between MNNVL domains on GB200 systems").
#: Earlier releases used fewer (number not published); 16 is used for every version.
MNNVL_GB200_INTER_DOMAIN_NICS = 16


def inter_domain_nics(gpu_family: str, gpus_per_domain: int, gpus_per_node: int) -> int | None:
    """NCCL's cap on the NICs per NVLink domain used between domains: GB200 racks whose NVLink domain spans nodes
    (multi-node NVLink) take ``MNNVL_GB200_INTER_DOMAIN_NICS``; None (no cap) elsewhere."""
    if gpu_family == "gb200" and gpus_per_domain > gpus_per_node:
        return MNNVL_GB200_INTER_DOMAIN_NICS
    return None


def gb200_nvlink_domain(gpus_per_domain: int = 72) -> ScaleUp:
    """NVLink 5 scale-up of a GB200 NVL72 rack (multi-node NVLink), with NCCL's inter-domain NIC count."""
    return replace(nvlink(5, gpus_per_domain), inter_domain_nics=MNNVL_GB200_INTER_DOMAIN_NICS)


def nvl72_cluster(n_gpus: int, *, gpus_per_domain: int = 72, scale_out: ScaleOut | None = None,
                  name: str | None = None) -> FabricTopology:
    """GB200 NVL72-style cluster: trays of 4 GPUs, 72 GPUs (18 trays) per multi-node NVLink domain,
    one 400G NIC per GPU for scale-out. ``gpus_per_domain`` may be set to 64 for racks run with
    16 compute trays populated."""
    so = scale_out if scale_out is not None else infiniband(400.0, nodes_per_leaf=18)
    return FabricTopology(name=name or f"nvl72-{n_gpus}", n_gpus=int(n_gpus), gpus_per_node=4,
                          scale_up=gb200_nvlink_domain(gpus_per_domain), scale_out=so, host_cpu="arm")


def _presets() -> dict[str, FabricTopology]:
    return {
        "dgx-a100": FabricTopology("dgx-a100", 8 * 32, 8, nvlink(3, 8), infiniband(200.0),
                                   notes="DGX A100 SuperPOD SU: 8x HDR 200G per node", host_cpu="amd"),
        "a100-ib-hdr": FabricTopology("a100-ib-hdr", 8 * 32, 8, nvlink(3, 8), infiniband(200.0),
                                      notes="A100 nodes on HDR InfiniBand, 200G per GPU"),
        "dgx-h100": FabricTopology("dgx-h100", 8 * 32, 8, nvlink(4, 8), infiniband(400.0),
                                   notes="DGX H100 SuperPOD SU: 32 nodes, 8x NDR 400G per node, rail-optimized"),
        "hgx-h200": FabricTopology("hgx-h200", 8 * 32, 8, nvlink(4, 8), infiniband(400.0),
                                   notes="HGX H200: NVLink4 like H100, NDR 400G per GPU"),
        "hgx-b200": FabricTopology("hgx-b200", 8 * 32, 8, nvlink(5, 8), infiniband(400.0),
                                   notes="HGX/DGX B200: NVLink5 in the node, 8x 400G ConnectX-7 per node"),
        "aws-p5-efa": FabricTopology("aws-p5-efa", 8 * 32, 8, nvlink(4, 8), efa(100.0, 4.0),
                                     notes="p5.48xlarge: 32x100G EFAv2 per node (3.2 Tb/s)", host_cpu="amd"),
        "oci-a100-roce": FabricTopology("oci-a100-roce", 8 * 32, 8, nvlink(3, 8), roce(100.0, 2.0),
                                        notes="OCI BM.GPU.B4.8: 16x100G RoCEv2 per node", host_cpu="amd"),
        "gb200-nvl72": FabricTopology("gb200-nvl72", 72 * 8, 4, gb200_nvlink_domain(72), infiniband(400.0, nodes_per_leaf=18),
                                      notes="GB200 NVL72: 18 trays x 4 GPUs per NVLink domain, 400G NIC per GPU",
                                      host_cpu="arm"),
    }


PRESETS: dict[str, FabricTopology] = _presets()


def preset(name: str, n_gpus: int | None = None) -> FabricTopology:
    """A preset by name, optionally resized to ``n_gpus`` (rounded up to whole domains)."""
    if name not in PRESETS:
        raise ValueError(f"unknown topology preset {name!r}; known: {sorted(PRESETS)}")
    topo = PRESETS[name]
    return topo if n_gpus is None else topo.resized(n_gpus, name=f"{name}-{n_gpus}")
