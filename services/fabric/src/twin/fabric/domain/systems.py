"""System catalogue: GPU models and the shipped node/cluster shapes built from them, each number with its
source, and ``place_row``: a measurement row's stated facts -> a ``FabricTopology`` (or a reason it cannot be
placed). Pure (no I/O).

Rules of placement (issue 12): the topology is built from what the row states -- GPU model, a named system or
cloud shape, NIC count x speed, fabric kind. A named shape supplies its published facts; facts stated in the row
override nothing silently: a row whose GPU contradicts its named shape is not placed. A multi-node row whose
scale-out network is neither named nor stated is not placed. Nothing is ever mapped to different hardware.
Where a number the row does not state has to be assumed (e.g. one NIC per GPU for "IB HDR"), the assumption is
returned with the placement so reports can print it.

Sources (vendor datasheets / cloud documentation, read 2024-2026):

* [A100]  NVIDIA A100 Tensor Core GPU datasheet: NVLink 3, 12 links, 600 GB/s bidirectional per GPU.
* [H100]  NVIDIA H100 datasheet (SXM5): NVLink 4, 18 links, 900 GB/s bidirectional.
* [H200]  NVIDIA H200 datasheet: NVLink 900 GB/s (same NVLink 4 / NVSwitch baseboard as HGX H100).
* [H800]  NVIDIA H800 SXM5 product brief (China export part): NVLink 400 GB/s bidirectional (8 links).
* [H20]   NVIDIA HGX H20 product brief (China export part): NVLink 900 GB/s bidirectional (18 links).
* [B200]  NVIDIA DGX B200 datasheet: NVLink 5, 1.8 TB/s bidirectional per GPU, 8x ConnectX-7 400 Gb/s.
* [GB200] NVIDIA GB200 NVL72 page: 72 GPUs in one NVLink 5 domain, 1.8 TB/s per GPU; DGX GB200 compute tray:
  2 Grace + 4 B200, 4x ConnectX-7 400 Gb/s (one per GPU) for the compute fabric.
* [GB300] NVIDIA GB300 NVL72 page: 72 Blackwell Ultra GPUs, NVLink 5 1.8 TB/s, ConnectX-8 SuperNIC 800 Gb/s
  per GPU.
* [DGXA100] DGX A100 user guide: 8x ConnectX-6 HDR 200 Gb/s for the compute fabric.
* [DGXH100] DGX H100 user guide: 8x ConnectX-7 NDR 400 Gb/s (OSFP, 4 "Cedar" modules) compute fabric.
* [P4D]  AWS EC2 P4 instances page: p4d/p4de.24xlarge, 8x A100 (40/80 GB), 400 Gbps EFA (4x 100 Gbps).
* [P5]   AWS EC2 P5 instances page: p5.48xlarge 8x H100, 3,200 Gbps EFAv2 (32x 100 Gbps); p5e.48xlarge
  8x H200 same network; p5en.48xlarge 8x H200, 3,200 Gbps EFAv3 (16x 200 Gbps).
* [P6]   AWS EC2 P6 instances page: p6-b200.48xlarge 8x B200, 3,200 Gbps EFAv4 (8x 400 Gbps).
* [OFI]  aws/aws-ofi-nccl src/platform-aws.cpp (2026-08): the network latency the plugin reports to NCCL
  (75 us p4d/p4de/p5/p5e, 35 us p5en/p6) and the transport protocol (SENDRECV on p4d/p4de, RDMA on p5+); without
  128-byte in-order delivery the plugin forces NCCL_PROTO=simple, i.e. no LL/LL128 across EFA on p4d/p4de.
* [A3]   Google Cloud GPU machine types: a3-highgpu-8g 8x H100, 4x 200 Gbps GPUDirect-TCPX NICs (800 Gbps);
  a3-megagpu-8g 8x H100, 8x 200 Gbps GPUDirect-TCPXO (1,600 Gbps); a3-ultragpu-8g 8x H200, 8x 400 Gbps
  ConnectX-7 RoCE (3,200 Gbps); a4-highgpu-8g 8x B200, 8x 400 Gbps ConnectX-7 RoCE.
* [AZ]   Azure ND-series docs: ND A100 v4 / NDm A100 v4 8x A100, 8x 200 Gb/s HDR InfiniBand; ND H100 v5 and
  ND H200 v5 8x H100/H200, 8x 400 Gb/s NDR InfiniBand; ND GB200 v6 4x GB200 per VM, 4x 400 Gb/s NDR.
* [OCI]  Oracle Cloud bare-metal GPU shapes: BM.GPU4.8 / BM.GPU.B4.8 / BM.GPU.A100-v2.8 8x A100, 1,600 Gb/s
  RDMA (16x 100 Gb/s RoCEv2); BM.GPU.H100.8 / BM.GPU.H200.8 8x H100/H200, 3,200 Gb/s (16x 200 Gb/s RoCEv2);
  BM.GPU.GB200.4 4x GB200, 4x 400 Gb/s RoCEv2.
* [OCIQS] oracle-quickstart/oci-gpu-quickstarts at commit 6a0abdc7, hardware tables: nvidia/GB200/README-GB200.md
  BM.GPU.GB200-v3.4 4x B200 (GB200), Arm Neoverse V2 host, "RoCEv2 L3, 8 x 400 Gbps RDMA"; nvidia/GB300/README-GB300.md
  BM.GPU.GB300.4 4x GB300 per host in NVL72 racks of up to 18 hosts, Arm Neoverse V2 host, RDMA (RoCE) NICs
  "8 x 400 Gbps"; nvidia/B300/README-B300.md BM.GPU.B300.8 8x B300, 2x Intel Xeon Platinum 8592+, RDMA (RoCE)
  "8 x 2 x 400 Gb/s = 6.4 Tb/s".
* [DSV3] DeepSeek-V3 technical report (arXiv 2412.19437) section 3.2.2: H800 nodes, 8 GPUs on NVLink/NVSwitch,
  one 400 Gb/s InfiniBand NIC per GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .topology import (
    NVLINK_PAYLOAD_EFFICIENCY,
    FabricTopology,
    ScaleOut,
    efa,
    infiniband,
    inter_domain_nics,
    nvlink,
    roce,
)


@dataclass(frozen=True)
class GpuModel:
    """One GPU model's scale-up facts."""

    name: str
    nvlink_generation: int
    nvlink_raw_GBps: float  # per GPU per direction, raw signalling (bidirectional / 2)
    source: str


#: GPU models. nvlink_raw_GBps = datasheet bidirectional NVLink bandwidth / 2.
GPUS: dict[str, GpuModel] = {
    "a100": GpuModel("A100", 3, 300.0, "[A100] 600 GB/s bidir"),
    "a800": GpuModel("A800", 3, 200.0, "NVIDIA A800 SXM4 product brief: NVLink 400 GB/s bidir"),
    "h100": GpuModel("H100", 4, 450.0, "[H100] 900 GB/s bidir"),
    "h200": GpuModel("H200", 4, 450.0, "[H200] 900 GB/s bidir"),
    "h800": GpuModel("H800", 4, 200.0, "[H800] 400 GB/s bidir"),
    "h20": GpuModel("H20", 4, 450.0, "[H20] 900 GB/s bidir"),
    "b200": GpuModel("B200", 5, 900.0, "[B200] 1.8 TB/s bidir"),
    "b300": GpuModel("B300", 5, 900.0, "[GB300] Blackwell Ultra NVLink 5, 1.8 TB/s bidir"),
    "gb200": GpuModel("GB200", 5, 900.0, "[GB200] 1.8 TB/s bidir"),
    "gb300": GpuModel("GB300", 5, 900.0, "[GB300] 1.8 TB/s bidir"),
}


@dataclass(frozen=True)
class Network:
    """A scale-out network as published: NICs per node x line rate, kind, transport facts."""

    nics_per_node: int
    nic_Gbps: float
    kind: str  # "infiniband" | "roce" | "efa" | "tcpx" (Google GPUDirect-TCPX/O: known, not modelled)
    #: LL/LL128 usable across the network (False where the transport lacks 128-byte in-order delivery)
    ll_over_net: bool = True
    #: EFA generation (1-4); later generations have lower latency ([OFI] 75 us -> 35 us reported)
    efa_generation: int = 0
    source: str = ""


@dataclass(frozen=True)
class SystemSpec:
    """A node (or rack) shape: GPU model, GPUs per node, NVLink domain, scale-out network (None = unknown)."""

    key: str
    gpu: str
    gpus_per_node: int
    gpus_per_domain: int
    network: Network | None
    patterns: tuple[str, ...] = ()  # regexes on the row's lower-cased system + fabric text
    source: str = ""
    nvls: bool | None = None
    #: host CPU vendor (NCCL's proxy post overhead and LL cap depend on it); None = not published/stated
    host_cpu: str | None = None


def _efa(nics: int, gbps: float, gen: int, *, ll: bool, src: str) -> Network:
    return Network(nics, gbps, "efa", ll_over_net=ll, efa_generation=gen, source=src)


#: Named systems and cloud shapes, most specific first (first pattern match wins).
SYSTEMS: tuple[SystemSpec, ...] = (
    # --- AWS ------------------------------------------------------------------------------------
    SystemSpec("aws-p4d", "a100", 8, 8, _efa(4, 100.0, 1, ll=False, src="[P4D] 4x100G EFA; [OFI] SENDRECV, simple"),
               (r"\bp4de?\b", r"\bp4de?\.24xlarge"), "[P4D]"),
    SystemSpec("aws-p5en", "h200", 8, 8, _efa(16, 200.0, 3, ll=True, src="[P5] 16x200G EFAv3; [OFI] RDMA"),
               (r"\bp5en\b",), "[P5]"),
    SystemSpec("aws-p5e", "h200", 8, 8, _efa(32, 100.0, 2, ll=True, src="[P5] 32x100G EFAv2; [OFI] RDMA"),
               (r"\bp5e\b", r"\bp5e\.48xlarge"), "[P5]"),
    SystemSpec("aws-p5", "h100", 8, 8, _efa(32, 100.0, 2, ll=True, src="[P5] 32x100G EFAv2; [OFI] RDMA"),
               (r"\bp5\b", r"\bp5\.48xlarge"), "[P5]"),
    SystemSpec("aws-p6-b200", "b200", 8, 8, _efa(8, 400.0, 4, ll=True, src="[P6] 8x400G EFAv4; [OFI] RDMA"),
               (r"\bp6-b200\b",), "[P6]"),
    # --- Google Cloud -----------------------------------------------------------------------------
    SystemSpec("gcp-a3-high", "h100", 8, 8, Network(4, 200.0, "tcpx", source="[A3] 4x200G GPUDirect-TCPX"),
               (r"\ba3-highgpu", r"\ba3-high\b"), "[A3]"),
    SystemSpec("gcp-a3-mega", "h100", 8, 8, Network(8, 200.0, "tcpx", source="[A3] 8x200G GPUDirect-TCPXO"),
               (r"\ba3-mega",), "[A3]"),
    SystemSpec("gcp-a3-ultra", "h200", 8, 8, Network(8, 400.0, "roce", source="[A3] 8x400G CX-7 RoCE"),
               (r"\ba3-ultra",), "[A3]"),
    SystemSpec("gcp-a4", "b200", 8, 8, Network(8, 400.0, "roce", source="[A3] a4-highgpu-8g 8x400G RoCE"),
               (r"\ba4-highgpu",), "[A3]"),
    # --- Azure ------------------------------------------------------------------------------------
    SystemSpec("azure-nd-h100-v5", "h100", 8, 8, Network(8, 400.0, "infiniband", source="[AZ] 8x400G NDR"),
               (r"\bnd\s*h100\s*v5",), "[AZ]"),
    SystemSpec("azure-nd-h200-v5", "h200", 8, 8, Network(8, 400.0, "infiniband", source="[AZ] 8x400G NDR"),
               (r"\bnd\s*h200\s*v5",), "[AZ]"),
    SystemSpec("azure-nd-a100-v4", "a100", 8, 8, Network(8, 200.0, "infiniband", source="[AZ] 8x200G HDR"),
               (r"\bndm?\s*a100\s*v4",), "[AZ]"),
    SystemSpec("azure-nd-gb200-v6", "gb200", 4, 72, Network(4, 400.0, "infiniband", source="[AZ] 4x400G NDR"),
               (r"\bnd\s*gb200\s*v6",), "[AZ] [GB200]"),
    # --- Oracle Cloud -----------------------------------------------------------------------------
    SystemSpec("oci-bm-gpu-a100", "a100", 8, 8, Network(16, 100.0, "roce", source="[OCI] 16x100G RoCEv2"),
               (r"\bbm\.gpu4\.8\b", r"\bbm\.gpu\.b4\.8\b", r"\bbm\.gpu\.a100-v2\.8\b"), "[OCI]"),
    SystemSpec("oci-bm-gpu-h100", "h100", 8, 8, Network(16, 200.0, "roce", source="[OCI] 16x200G RoCEv2"),
               (r"\bbm\.gpu\.h100\.8\b",), "[OCI]"),
    SystemSpec("oci-bm-gpu-h200", "h200", 8, 8, Network(16, 200.0, "roce", source="[OCI] 16x200G RoCEv2"),
               (r"\bbm\.gpu\.h200\.8\b",), "[OCI]"),
    SystemSpec("oci-gb200-v3", "gb200", 4, 72, Network(8, 400.0, "roce", source="[OCIQS] BM.GPU.GB200-v3.4 8x400G RoCEv2"),
               (r"\bbm\.gpu\.gb200-v3\.4\b",), "[OCIQS] [GB200]"),
    SystemSpec("oci-gb300", "gb300", 4, 72, Network(8, 400.0, "roce", source="[OCIQS] BM.GPU.GB300.4 8x400G RoCE"),
               (r"\bbm\.gpu\.gb300\.4\b", r"\boci\b.*\bgb300\b"), "[OCIQS] [GB300]"),
    SystemSpec("oci-bm-gpu-b300", "b300", 8, 8, Network(16, 400.0, "roce", source="[OCIQS] BM.GPU.B300.8 16x400G RoCE"),
               (r"\bbm\.gpu\.b300\.8\b",), "[OCIQS]"),
    SystemSpec("oci-gb200", "gb200", 4, 72, Network(4, 400.0, "roce", source="[OCI] BM.GPU.GB200.4 4x400G RoCEv2"),
               (r"\boci\b.*\bgb200\b", r"\bbm\.gpu\.gb200"), "[OCI] [GB200]"),
    # --- NVIDIA reference systems -----------------------------------------------------------------
    SystemSpec("dgx-a100", "a100", 8, 8, Network(8, 200.0, "infiniband", source="[DGXA100] 8x200G HDR"),
               (r"\bdgx[\s-]*a100",), "[DGXA100]"),
    SystemSpec("dgx-h100", "h100", 8, 8, Network(8, 400.0, "infiniband", source="[DGXH100] 8x400G NDR"),
               (r"\bdgx[\s-]*h100",), "[DGXH100]"),
    SystemSpec("dgx-h200", "h200", 8, 8, Network(8, 400.0, "infiniband", source="DGX H200: same I/O as [DGXH100]"),
               (r"\bdgx[\s-]*h200",), "[DGXH100]"),
    SystemSpec("dgx-b200", "b200", 8, 8, Network(8, 400.0, "infiniband", source="[B200] 8x400G CX-7"),
               (r"\bdgx[\s-]*b200",), "[B200]"),
    SystemSpec("dgx-gb200", "gb200", 4, 72, Network(4, 400.0, "infiniband", source="[GB200] 4x400G CX-7 per tray"),
               (r"\bdgx[\s-]*gb200",), "[GB200]"),
    SystemSpec("dgx-gb300", "gb300", 4, 72, Network(4, 800.0, "infiniband", source="[GB300] CX-8 800G per GPU"),
               (r"\bdgx[\s-]*gb300",), "[GB300]"),
    SystemSpec("deepseek-h800", "h800", 8, 8, Network(8, 400.0, "infiniband", source="[DSV3] 1x400G IB per GPU"),
               (r"\bdeepseek\b",), "[DSV3]"),
)

#: Generic node shapes per GPU family, used when the row names no system: the NVLink side is fixed by the GPU
#: (HGX baseboard = 8 GPUs; GB200/GB300 = 4-GPU trays in a 72-GPU NVL72 domain [GB200] [GB300]); the scale-out
#: network must then be stated by the row.
GENERIC: dict[str, SystemSpec] = {
    "a100": SystemSpec("hgx-a100", "a100", 8, 8, None, source="[A100] HGX A100 8-GPU"),
    "a800": SystemSpec("hgx-a800", "a800", 8, 8, None, source="HGX A800 8-GPU"),
    "h100": SystemSpec("hgx-h100", "h100", 8, 8, None, source="[H100] HGX H100 8-GPU"),
    "h200": SystemSpec("hgx-h200", "h200", 8, 8, None, source="[H200] HGX H200 8-GPU"),
    "h800": SystemSpec("hgx-h800", "h800", 8, 8, None, source="[H800] HGX H800 8-GPU"),
    "h20": SystemSpec("hgx-h20", "h20", 8, 8, None, source="[H20] HGX H20 8-GPU"),
    "b200": SystemSpec("hgx-b200", "b200", 8, 8, None, source="[B200] HGX B200 8-GPU"),
    "b300": SystemSpec("hgx-b300", "b300", 8, 8, None, source="HGX B300 8-GPU [GB300]"),
    "gb200": SystemSpec("gb200-nvl72", "gb200", 4, 72, None, source="[GB200] NVL72"),
    "gb300": SystemSpec("gb300-nvl72", "gb300", 4, 72, None, source="[GB300] NVL72"),
}

#: Host CPU of each system (NCCL's proxy overhead and LL caps depend on the vendor), with its source.
HOST_CPU: dict[str, tuple[str, str]] = {
    "aws-p4d": ("intel", "[P4D] Intel Xeon (Cascade Lake)"),
    "aws-p5en": ("intel", "[P5] p5en: Intel Xeon (Sapphire Rapids)"),
    "aws-p5e": ("amd", "[P5] AMD EPYC 7R13"),
    "aws-p5": ("amd", "[P5] AMD EPYC 7R13"),
    "aws-p6-b200": ("intel", "[P6] Intel Xeon (Emerald Rapids)"),
    "gcp-a3-high": ("intel", "[A3] Intel Sapphire Rapids"),
    "gcp-a3-mega": ("intel", "[A3] Intel Sapphire Rapids"),
    "gcp-a3-ultra": ("intel", "[A3] Intel Emerald Rapids"),
    "gcp-a4": ("intel", "[A3] Intel Emerald Rapids"),
    "azure-nd-h100-v5": ("intel", "[AZ] Intel Sapphire Rapids"),
    "azure-nd-h200-v5": ("intel", "[AZ] Intel Sapphire Rapids"),
    "azure-nd-a100-v4": ("amd", "[AZ] AMD EPYC 7V12"),
    "azure-nd-gb200-v6": ("arm", "[GB200] Grace"),
    "oci-bm-gpu-a100": ("amd", "[OCI] AMD EPYC 7542 / 7J13"),
    "oci-bm-gpu-h100": ("intel", "[OCI] Intel Xeon 8480+"),
    "oci-bm-gpu-h200": ("intel", "[OCI] Intel Xeon 8480+"),
    "oci-gb200": ("arm", "[GB200] Grace"),
    "oci-gb200-v3": ("arm", "[OCIQS] Arm Neoverse V2 (Grace)"),
    "oci-gb300": ("arm", "[OCIQS] Arm Neoverse V2 (Grace)"),
    "oci-bm-gpu-b300": ("intel", "[OCIQS] Intel Xeon Platinum 8592+"),
    "dgx-a100": ("amd", "[DGXA100] AMD EPYC 7742"),
    "dgx-h100": ("intel", "[DGXH100] Intel Xeon 8480C"),
    "dgx-h200": ("intel", "[DGXH100] Intel Xeon 8480C"),
    "dgx-b200": ("intel", "[B200] Intel Xeon 8570"),
    "dgx-gb200": ("arm", "[GB200] Grace"),
    "dgx-gb300": ("arm", "[GB300] Grace"),
    "gb200-nvl72": ("arm", "[GB200] Grace"),
    "gb300-nvl72": ("arm", "[GB300] Grace"),
}
SYSTEMS = tuple(replace(s, host_cpu=HOST_CPU[s.key][0]) if s.key in HOST_CPU else s for s in SYSTEMS)
GENERIC = {k: replace(s, host_cpu=HOST_CPU[s.key][0]) if s.key in HOST_CPU else s for k, s in GENERIC.items()}

#: GPU model words, most specific first (so "gb200" is not read as "b200", "h200" not as "h20").
_GPU_PATTERNS: tuple[tuple[str, str], ...] = (
    ("gb300", r"gb300"), ("gb200", r"gb200"), ("b300", r"(?<!g)b300"), ("b200", r"(?<!g)b200"),
    ("h800", r"h800"), ("h200", r"h200"), ("h100", r"h100"), ("h20", r"h20(?!\d)"), ("a800", r"a800"),
    ("a100", r"a100"),
)
#: Scale-out transports the cost model has physics for.
MODELLED_TRANSPORTS = ("infiniband", "roce", "efa")
#: InfiniBand generation -> line rate (Gb/s): HDR 200, NDR 400, XDR 800 (IBTA roadmap).
_IB_RATE = {"hdr": 200.0, "ndr": 400.0, "xdr": 800.0, "edr": 100.0}


@dataclass(frozen=True)
class RowPlacement:
    """A row's topology and how it was derived."""

    system: str
    topology: FabricTopology
    facts: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = field(default=())


def gpu_of(text: str) -> str | None:
    """The GPU model key a free text names (None if it names none)."""
    t = text.lower()
    for key, pat in _GPU_PATTERNS:
        if re.search(pat, t):
            return key
    return None


def system_of(text: str) -> SystemSpec | None:
    """The named system / cloud shape a free text names (None if none)."""
    t = text.lower()
    for spec in SYSTEMS:
        if any(re.search(p, t) for p in spec.patterns):
            return spec
    return None


def stated_network(text: str) -> tuple[int | None, float | None, str | None]:
    """(NICs per node, line rate Gb/s, kind) as far as a fabric text states them ("32x100G", "400Gx8",
    "8x 400 Gb/s", "IB HDR", "RoCEv2", "EFA")."""
    t = text.lower()
    kind = None
    if re.search(r"\befa", t):
        kind = "efa"
    elif re.search(r"roce", t):
        kind = "roce"
    elif re.search(r"\bib\b|infiniband|\b[hnxe]dr\b", t):
        kind = "infiniband"
    nics = rate = None
    m = re.search(r"(\d+)\s*x\s*(\d+)\s*g(?:b)?", t)
    if m:
        nics, rate = int(m.group(1)), float(m.group(2))
    else:
        m = re.search(r"(\d+)\s*g(?:b(?:/s|ps)?)?\s*x\s*(\d+)", t)
        if m:
            rate, nics = float(m.group(1)), int(m.group(2))
    if rate is None:
        m = re.search(r"\b([hnxe]dr)\b", t)
        if m:
            rate = _IB_RATE[m.group(1)]
        else:
            m = re.search(r"(\d{3})\s*g(?:b(?:/s|ps)?)?\b", t)
            if m:
                rate = float(m.group(1))
    return nics, rate, kind


def _scale_out(net: Network, gpus_per_node: int) -> ScaleOut:
    per_gpu = net.nics_per_node / gpus_per_node
    if net.kind == "efa":
        # [OFI] the plugin reports 75 us (EFAv1/v2) vs 35 us (EFAv3+): later EFA generations have ~35/75 of the
        # earlier per-message latency; the EFAv2 base (ScaleOut.base_latency_s default of ``efa``) is scaled so.
        so = efa(net.nic_Gbps, per_gpu)
        if net.efa_generation >= 3:
            so = replace(so, base_latency_s=so.base_latency_s * 35.0 / 75.0, reported_latency_s=35e-6)
    elif net.kind == "roce":
        so = roce(net.nic_Gbps, per_gpu)
    else:
        so = infiniband(net.nic_Gbps, per_gpu)
    return replace(so, ll_over_net=net.ll_over_net)


def build_topology(spec: SystemSpec, n_nodes: int, network: Network | None, *, nvls: bool | None = None,
                   name: str | None = None) -> FabricTopology:
    """Topology of ``n_nodes`` nodes of ``spec`` (rounded up to whole NVLink domains) on ``network``."""
    gpu = GPUS[spec.gpu]
    up = nvlink(gpu.nvlink_generation, spec.gpus_per_domain,
                nvls=nvls if nvls is not None else spec.nvls)
    up = replace(up, nvlink_bw_GBps_per_gpu=gpu.nvlink_raw_GBps * NVLINK_PAYLOAD_EFFICIENCY)
    up = replace(up, inter_domain_nics=inter_domain_nics(spec.gpu, spec.gpus_per_domain, spec.gpus_per_node))
    n_gpus = n_nodes * spec.gpus_per_node
    unit = max(spec.gpus_per_node, spec.gpus_per_domain) if n_gpus > spec.gpus_per_domain else spec.gpus_per_node
    n_gpus = -(-n_gpus // unit) * unit
    so = _scale_out(network, spec.gpus_per_node) if network is not None else None
    return FabricTopology(name=name or f"{spec.key}-{n_gpus}", n_gpus=n_gpus, gpus_per_node=spec.gpus_per_node,
                          scale_up=up, scale_out=so, notes=spec.source, host_cpu=spec.host_cpu or "intel")


def _row_network(spec: SystemSpec, text: str, n_domains: int, facts: list[str],
                 assumptions: list[str]) -> tuple[Network | None, str | None]:
    """The scale-out network of a row: the named shape's, checked against what the row states, or the stated
    one for a generic node; (None, reason) when it cannot be known or modelled."""
    network = spec.network
    nics, rate, kind = stated_network(text)
    if network is not None:
        if network.kind not in MODELLED_TRANSPORTS and n_domains > 1:
            return None, (f"{spec.key}'s scale-out transport ({network.source}) has no model here; "
                          f"modelled: {', '.join(MODELLED_TRANSPORTS)}")
        names_both = re.search(r"ib\s*/\s*roce|roce\s*/\s*ib", text.lower()) is not None  # "IB/RoCE"
        if kind is not None and kind != network.kind and not names_both:
            return None, f"row states a {kind} fabric but {spec.key} has {network.kind}"
        if nics is not None and rate is not None and (nics, rate) != (network.nics_per_node, network.nic_Gbps):
            return None, (f"row states {nics}x{rate:g}G NICs but {spec.key} has "
                          f"{network.nics_per_node}x{network.nic_Gbps:g}G")
        return network, None
    if kind is not None or rate is not None:
        if kind is None:
            return None, "scale-out line rate stated but not the fabric kind (IB/RoCE/EFA)"
        if rate is None:
            return None, f"{kind} fabric stated without a NIC line rate"
        if nics is None:
            nics = spec.gpus_per_node
            assumptions.append(f"{nics} NICs per node (one per GPU, the HGX/NVL72 reference design; not stated)")
        facts.append(f"network {nics}x{rate:g}G {kind} (stated)")
        return Network(nics, rate, kind, source="stated by the row"), None
    if n_domains > 1:
        return None, f"multi-node row on {spec.key} but the scale-out network (kind, NICs x speed) is not stated"
    return None, None


def place_row(system_text: str, fabric_text: str, n_gpus: int, n_nodes: int) -> tuple[RowPlacement | None, str | None]:
    """Build the topology a measurement row states. Returns (placement, None) or (None, reason)."""
    text = f"{system_text} {fabric_text}"
    gpu = gpu_of(text)
    spec = system_of(text)
    facts, assumptions = [], []
    if spec is not None:
        if gpu is not None and gpu != spec.gpu:
            return None, f"row names GPU {gpu!r} but system {spec.key!r} has {spec.gpu!r}"
        facts.append(f"system {spec.key} ({spec.source})")
    elif gpu is not None:
        spec = GENERIC[gpu]
        facts.append(f"GPU {GPUS[gpu].name} ({GPUS[gpu].source}); generic {spec.key}")
    else:
        return None, f"no known GPU model or system in {system_text!r} / {fabric_text!r}"
    if n_nodes < 1 or n_gpus < 1 or n_gpus % n_nodes:
        return None, f"n_gpus={n_gpus} is not a multiple of n_nodes={n_nodes}"
    ppn = n_gpus // n_nodes
    if ppn > spec.gpus_per_node:
        return None, f"{ppn} GPUs per node exceeds the {spec.gpus_per_node} of {spec.key}"

    n_domains = -(-n_nodes * spec.gpus_per_node // spec.gpus_per_domain)
    if re.search(r"ib disabled|nvlink only|net disabled", text.lower()):
        # scale-out switched off: only an NVLink-domain run can be placed, and no network facts apply
        if n_domains > 1:
            return None, "scale-out disabled but the ranks span several NVLink domains"
        network = None
    else:
        network, reason = _row_network(spec, f"{fabric_text} {system_text}", n_domains, facts, assumptions)
        if reason is not None:
            return None, reason
    if n_domains > 1 and spec.host_cpu is None:
        # NCCL's own default for an unknown CPU is the Intel value (tuning.cc getNetOverhead returns 1.0 us)
        assumptions.append("host CPU not published: NCCL's default proxy overhead (1 us, as Intel) used")
    topo = build_topology(spec, n_nodes, network)
    return RowPlacement(spec.key, topo, tuple(facts), tuple(assumptions)), None
