"""A DCGM-exporter-style Prometheus endpoint serving the latest tick (GET /metrics, /healthz).

Same metric names, HELP texts, types, labels and value formatting as dcgm-exporter's default
counters (see shared/validation/feeds/dcgm/*.prom): one `# HELP`/`# TYPE` pair per metric, then one
sample per GPU with labels gpu, UUID, pci_bus_id, device, modelName, Hostname,
DCGM_FI_DRIVER_VERSION. Hostname is the node id (node ids embed the rack id; the real exporter has
no rack label). Integer fields (temperatures, clocks, utilization, XID, ECC) print as integers,
power and profiling ratios with six decimals, like the exporter.

A real exporter serves one host (8 GPUs on a DGX). Serving a whole 100k-GPU site from one endpoint
would be a 13 × 100,000-line scrape nobody runs, so the endpoint covers the first `metrics_racks`
racks (default 1 → 4 hosts, 32 GPUs on dgx-h100-su): a realistic scrape size for ingest tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiohttp import web

from twin.facility_sim.domain.model import Tick
from twin.facility_sim.layout import SiteLayout

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DRIVER_VERSION = "550.90.07"
MODEL_NAMES = {"H100-SXM": "NVIDIA H100 80GB HBM3", "B200-GB200": "NVIDIA GB200"}

# (DCGM field, Prometheus type, HELP text, Tick attribute, integer?) — dcgm-exporter's wording.
DCGM_FIELDS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "sm_clock_mhz", True),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", "mem_clock_mhz", True),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", "mem_temp_c", True),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "gpu_temp_c", True),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power_w", False),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "util_gpu_pct", True),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "util_mem_pct", True),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", "xid_errors", True),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "counter", "Total number of single-bit volatile ECC errors.",
     "ecc_sbe_total", True),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "counter", "Total number of double-bit volatile ECC errors.",
     "ecc_dbe_total", True),
    ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned.",
     "sm_active", False),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.",
     "tensor_active", False),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge",
     "Ratio of cycles the device memory interface is active sending or receiving data.", "dram_active", False),
)


def gpu_uuid(site_id: str, node_id: str, gpu: int) -> str:
    return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"twin://{site_id}/{node_id}/gpu{gpu}"))


def pci_bus_id(gpu: int) -> str:
    return f"00000000:{0x18 + 0x11 * gpu:02X}:00.0"


class DcgmRenderer:
    """Renders one tick for the GPUs of the first `racks` racks of a layout."""

    def __init__(self, layout: SiteLayout, racks: int = 1) -> None:
        a = layout.arrays
        n_racks = max(1, min(racks, a.n_racks))
        last_node = int(a.rack_first_node[n_racks - 1] + a.rack_nodes[n_racks - 1]) - 1
        self.gpu_end = int(a.node_first_gpu[last_node] + a.node_gpus[last_node])
        self.labels: list[str] = []
        for g in range(self.gpu_end):
            n = int(a.gpu_node[g])
            i = int(a.gpu_local_index[g])
            node_id = layout.node_ids[n]
            model = MODEL_NAMES.get(layout.gpu_model_names[n], f"NVIDIA {layout.gpu_model_names[n]}")
            self.labels.append(
                f'gpu="{i}",UUID="{gpu_uuid(layout.site_id, node_id, i)}",pci_bus_id="{pci_bus_id(i)}",'
                f'device="nvidia{i}",modelName="{model}",Hostname="{node_id}",'
                f'DCGM_FI_DRIVER_VERSION="{DRIVER_VERSION}"')

    def render(self, tick: Tick) -> str:
        lines: list[str] = []
        n = self.gpu_end
        for name, kind, help_text, attr, integer in DCGM_FIELDS:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            values = getattr(tick, attr)[:n]
            fmt = [str(int(round(float(v)))) for v in values] if integer else [f"{float(v):.6f}" for v in values]
            lines.extend(f"{name}{{{lab}}} {v}" for lab, v in zip(self.labels, fmt, strict=True))
        return "\n".join(lines) + "\n"


class MetricsServer:
    """aiohttp server: GET /metrics → latest text (503 before the first tick), GET /healthz."""

    def __init__(self, text: Callable[[], str | None], host: str = "0.0.0.0", port: int = 9400) -> None:
        self._text = text
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        return app

    async def _metrics(self, _: web.Request) -> web.Response:
        body = self._text()
        if body is None:
            return web.Response(status=503, text="no tick yet\n")
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # ephemeral port (tests): report the real one
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
