"""GPU facts the step-time model needs: dense tensor peaks per precision, achievable GEMM fraction,
HBM bandwidth, SM count, power limits, NVLink and NIC bandwidth. Pure data, each number with its source.

Units in names: ``_tflops`` = 1e12 FLOP/s, ``_TBps``/``_GBps`` = 1e12/1e9 bytes/s, ``_w`` watts, ``_Gbps``
gigabits/s. Peaks are *dense* (no 2:4 sparsity), the denominator every MFU in the validation data uses.

Sources:

* [A100]  NVIDIA A100 datasheet: BF16 312 TFLOP/s dense, 108 SMs, HBM2e 2,039 GB/s (80 GB) / HBM2 1,555 GB/s
  (40 GB), 400 W (SXM4), NVLink 3: 12 links, 600 GB/s bidirectional.
* [H100]  NVIDIA H100 datasheet (SXM5): BF16 989 TFLOP/s, FP8 1,979 TFLOP/s dense, 132 SMs, HBM3 3.35 TB/s,
  700 W, NVLink 4: 18 links, 900 GB/s bidirectional. 989.4 = 132 SMs x 4 tensor cores x 1,024 FLOP/clk x 1.83 GHz
  (G. Lockwood, "peak FLOPS", glennklockwood.com/garden/peak-FLOPS).
* [H100-96] Meta Grand Teton H100 SXM 96 GB HBM2e, 2.4 TB/s, default 500 W limit (torchtitan benchmarks README,
  as quoted in the validation CSV note); compute as [H100] (same GH100 die, 132 SMs: assumed, not published).
* [H200]  NVIDIA H200 datasheet: compute as H100, HBM3e 4.8 TB/s, 700 W, NVLink 900 GB/s.
* [H800]  NVIDIA H800 SXM5 product brief: compute as H100, NVLink 400 GB/s bidirectional (8 links).
* [B200]  NVIDIA HGX B200 (1,000 W): BF16 2.25 PFLOP/s, FP8 4.5 PFLOP/s dense, HBM3e 8 TB/s, NVLink 5 1.8 TB/s
  bidirectional; 148 SMs (Blackwell B200 whitepaper).
* [GB200] NVIDIA GB200 NVL72: per GPU BF16 2.5 PFLOP/s, FP8 5 PFLOP/s dense, HBM3e 8 TB/s, 1,200 W, 72 GPUs in
  one NVLink 5 domain, 4 GPUs per compute tray.
* [GB300] NVIDIA GB300 NVL72: per GPU BF16 2.5 PFLOP/s, FP8 5 PFLOP/s dense (360 / 72), HBM3e 8 TB/s, 1,400 W,
  160 SMs, ConnectX-8 800 Gb/s per GPU.
* [MAMF]  S. Bekman, ml-engineering, compute/accelerator/README.md "Maximum Achievable Matmul FLOPS comparison
  table" (mean of 100 iterations at the best shape found): BF16 A100 SXM 86.9 %, H100 SXM 80.3 % ("H200 is the
  same"), B200 77.6 %, B300 78.6 %, GB200 72.9 %; FP8 H100 70.9 %, H200 73.4 %, B200 76.3 %, B300 74.5 %,
  GB200 72.3 % of the dense spec.
* [CAPTURE] shared/validation/gpu_power_public.csv (this project's reference capture, one H100 SXM 80 GB at its
  700 W limit): idle 118 W at 1,980 MHz; back-to-back bf16 8192^3 matmul 680.77 TFLOP/s at 698 W, SM clock held
  at 1,395 MHz by the SW power cap; HBM-bound copy 3.0 TB/s at 373 W. Sustained large-GEMM throughput on Hopper
  at 700 W is therefore 680.77 / 794.5 = 0.857 of the MAMF burst figure.
* [HPL]   G. Lockwood, "peak FLOPS" (glennklockwood.com/garden/peak-FLOPS): NVIDIA rates A100 HPL at the clock
  sustained at the power limit under dense tensor work, 1,305 MHz, against the 1,410 MHz boost clock.
* [NVLINK] usable NVLink payload ~82.4 % of raw signalling (18 x 20.6 GB/s of 18 x 25 GB/s on H100; NCCL
  src/graph/topo.h SM90_NVLINK_BW 20.6) -- the same factor the fabric twin uses.
* [NIC]   one NIC per GPU in the HGX/DGX and NVL72 reference designs: ConnectX-6 HDR 200 Gb/s (DGX A100),
  ConnectX-7 NDR 400 Gb/s (DGX H100/H200/B200, GB200 trays), ConnectX-8 800 Gb/s (GB300); ~92 % of line rate is
  payload on InfiniBand (headers, flow control; the fabric twin's ``infiniband`` efficiency).
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("bf16", "fp8")

#: Hopper sustained dense GEMM at the 700 W limit / MAMF burst ([CAPTURE]: 680.77 / 794.5)
HOPPER_SUSTAINED_GEMM_FRACTION = 680.77 / 794.5
#: Ampere sustained / burst clock under dense tensor work at the 400 W limit ([HPL]: 1305 / 1410 MHz); MAMF is a
#: short burst measurement, so sustained throughput scales by this ratio (as the H100 capture shows for Hopper)
AMPERE_SUSTAINED_FRACTION = 1305.0 / 1410.0
#: burst -> sustained tensor-throughput factor by architecture (Blackwell: no sustained measurement read: 1)
SUSTAINED_FRACTION = {"ampere": AMPERE_SUSTAINED_FRACTION, "hopper": HOPPER_SUSTAINED_GEMM_FRACTION,
                      "blackwell": 1.0}
#: usable NVLink payload / raw ([NVLINK])
NVLINK_PAYLOAD_EFFICIENCY = 0.824
#: usable InfiniBand payload / line rate ([NIC])
NIC_PAYLOAD_EFFICIENCY = 0.92
#: dynamic power ~ C V^2 f with V rising ~linearly with f across the DVFS range -> P_dyn ~ f^3 (classic CMOS
#: DVFS scaling, e.g. Weste & Harris, CMOS VLSI Design, ch. 5); used to turn a power cap into an SM clock.
DVFS_POWER_EXPONENT = 3.0
#: idle / board limit: 118 W of 700 W on the captured H100 ([CAPTURE]); used for GPUs without an idle capture
IDLE_FRACTION_OF_LIMIT = 118.0 / 700.0
#: HBM-bound phase power above idle relative to a dense-GEMM phase: (373 - 118) / (698 - 118) ([CAPTURE])
MEMORY_BOUND_ACTIVITY = (373.0 - 118.0) / (698.0 - 118.0)
#: achieved / spec HBM bandwidth of a streaming kernel: 3.0 of 3.35 TB/s ([CAPTURE] device copy)
HBM_EFFICIENCY = 3.0 / 3.35


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator model (dense peaks; per GPU)."""

    key: str
    peak_tflops: dict[str, float]          # precision -> dense spec peak
    gemm_fraction: dict[str, float]        # precision -> sustained large-GEMM throughput / spec peak
    sms: int
    hbm_TBps: float
    power_limit_w: float                   # default board power limit
    idle_w: float
    nvlink_GBps: float                     # usable per GPU per direction
    gpus_per_node: int
    nvlink_domain: int                     # GPUs sharing one NVLink fabric
    nic_Gbps: float                        # reference-design scale-out line rate per GPU
    arch: str                              # "ampere" | "hopper" | "blackwell"
    source: str

    def peak(self, precision: str) -> float:
        if precision not in self.peak_tflops:
            raise ValueError(f"{self.key} has no {precision} tensor cores (supports {sorted(self.peak_tflops)})")
        return self.peak_tflops[precision]

    @property
    def nic_GBps(self) -> float:
        return self.nic_Gbps / 8.0 * NIC_PAYLOAD_EFFICIENCY


def _gpu(key, bf16, fp8, frac_bf16, frac_fp8, sms, hbm, limit, nvl_raw, gpn, dom, nic, arch, src, idle=None):
    peaks = {"bf16": bf16} | ({"fp8": fp8} if fp8 else {})
    fracs = {"bf16": frac_bf16} | ({"fp8": frac_fp8} if fp8 else {})
    return GpuSpec(key, peaks, fracs, sms, hbm, limit, idle if idle is not None else IDLE_FRACTION_OF_LIMIT * limit,
                   nvl_raw * NVLINK_PAYLOAD_EFFICIENCY, gpn, dom, nic, arch, src)


_HOP = HOPPER_SUSTAINED_GEMM_FRACTION
_AMP = AMPERE_SUSTAINED_FRACTION
#: The catalogue. GEMM fractions = [MAMF] x the architecture's sustained factor: Hopper [CAPTURE] (dense training
#: GEMMs hold the 700 W cap), Ampere [HPL]; Blackwell = [MAMF] (no sustained measurement read).
GPUS: dict[str, GpuSpec] = {
    "a100-40gb": _gpu("a100-40gb", 312.0, None, 0.869 * _AMP, None, 108, 1.555, 400.0, 300.0, 8, 8, 200.0, "ampere",
                      "[A100] [MAMF] [HPL]"),
    "a100-80gb": _gpu("a100-80gb", 312.0, None, 0.869 * _AMP, None, 108, 2.039, 400.0, 300.0, 8, 8, 200.0, "ampere",
                      "[A100] [MAMF] [HPL]"),
    "h100-sxm": _gpu("h100-sxm", 989.4, 1978.9, 0.803 * _HOP, 0.709 * _HOP, 132, 3.35, 700.0, 450.0, 8, 8, 400.0,
                     "hopper", "[H100] [MAMF] [CAPTURE]", idle=118.0),
    # Grand Teton 96 GB part: the same die run at a 500 W default limit ([H100-96]); the power model derives its
    # clock from the 700 W capture (see ``clock_fraction_at_cap``).
    "h100-sxm-96gb": _gpu("h100-sxm-96gb", 989.4, 1978.9, 0.803 * _HOP, 0.709 * _HOP, 132, 2.4, 700.0, 450.0, 8, 8,
                          400.0, "hopper", "[H100-96] [H100] [MAMF] [CAPTURE]", idle=118.0),
    "h200": _gpu("h200", 989.4, 1978.9, 0.803 * _HOP, 0.734 * _HOP, 132, 4.8, 700.0, 450.0, 8, 8, 400.0, "hopper",
                 "[H200] [MAMF] [CAPTURE]"),
    "h800": _gpu("h800", 989.4, 1978.9, 0.803 * _HOP, 0.709 * _HOP, 132, 3.35, 700.0, 200.0, 8, 8, 400.0, "hopper",
                 "[H800] [MAMF] (as H100) [CAPTURE]"),
    "b200": _gpu("b200", 2250.0, 4500.0, 0.776, 0.763, 148, 8.0, 1000.0, 900.0, 8, 8, 400.0, "blackwell",
                 "[B200] [MAMF]"),
    "gb200": _gpu("gb200", 2500.0, 5000.0, 0.729, 0.723, 148, 8.0, 1200.0, 900.0, 4, 72, 400.0, "blackwell",
                  "[GB200] [MAMF]"),
    "gb300": _gpu("gb300", 2500.0, 5000.0, 0.786, 0.745, 160, 8.0, 1400.0, 900.0, 4, 72, 800.0, "blackwell",
                  "[GB300] [MAMF] (B300 fractions)"),
}

#: default power limit the GPU is *run* at when it differs from the board's rating ([H100-96]: 500 W)
DEFAULT_RUN_LIMIT_W: dict[str, float] = {"h100-sxm-96gb": 500.0}

_ALIASES = {
    "a100": "a100-80gb", "a100-80gb": "a100-80gb", "a100-sxm": "a100-80gb", "a100-40gb": "a100-40gb",
    "h100": "h100-sxm", "h100-sxm": "h100-sxm", "h100-sxm-80gb": "h100-sxm", "h100-sxm-96gb": "h100-sxm-96gb",
    "h200": "h200", "h800": "h800", "b200": "b200", "gb200": "gb200", "gb300": "gb300",
    "b200-gb200": "gb200",  # the GB200 NVL72 preset's name for its GPU (a B200 die of a GB200 superchip)
}


def gpu_spec(name: str) -> GpuSpec:
    """The catalogue entry for a GPU name as schedulers and CSVs spell it (``H100-SXM``, ``A100-80GB``...)."""
    key = _ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(sorted(_ALIASES))}")
    return GPUS[key]


def run_power_limit_w(gpu: GpuSpec) -> float:
    return DEFAULT_RUN_LIMIT_W.get(gpu.key, gpu.power_limit_w)


def clock_fraction_at_cap(gpu: GpuSpec, power_cap_w: float | None) -> float:
    """SM clock during dense compute under a power cap, relative to the clock at the board limit (<= 1).

    Dense training GEMMs hold the board limit ([CAPTURE]), so any lower cap lowers the clock: with
    P = P_idle + P_dyn and P_dyn ~ f^3 (``DVFS_POWER_EXPONENT``), f/f0 = ((cap - idle)/(limit - idle))^(1/3).
    A cap at or above the limit changes nothing (a cap never speeds a GPU up)."""
    if power_cap_w is None:
        return 1.0
    limit = gpu.power_limit_w
    cap = min(float(power_cap_w), limit)
    if cap <= gpu.idle_w:
        raise ValueError(f"power cap {power_cap_w} W is at or below the idle power {gpu.idle_w:.0f} W of {gpu.key}")
    return ((cap - gpu.idle_w) / (limit - gpu.idle_w)) ** (1.0 / DVFS_POWER_EXPONENT)
