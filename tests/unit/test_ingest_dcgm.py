"""DCGM-exporter scrapes and IB port counters → RackTelemetryBatch, against the real feed files."""

from __future__ import annotations

import asyncio
import math
import socket
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from twin.core.clock import FixedClock
from twin.core.facility import build_inventory, load_facility_spec
from twin.core.validation_data import validation_dir
from twin.ingest.adapters import dcgm, infiniband
from twin.ingest.adapters.prometheus_text import ExpositionError
from twin.telemetry.v1 import telemetry_pb2

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NAN = math.nan


def feed(rel: str) -> bytes:
    return (validation_dir() / "feeds" / rel).read_bytes()


def same(a, b) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


H100_HOST = {"gpu-node-1": ("su1-0000", "su1-0000-n00")}


# -- DCGM -----------------------------------------------------------------------------------------

def test_h100_scrape_maps_to_one_batch_with_8_gpus():
    res = dcgm.dcgm_to_batches(feed("dcgm/h100-8gpu-k8s-sampled.prom"), rack_of_host=H100_HOST,
                               sample_time=T0, site_id="site-a", sequence=7)
    assert not res.rejections and not res.unknown_hosts
    assert len(res.batches) == 1
    b = res.batches[0]
    assert (b.site_id, b.rack_id, b.sequence, b.source) == ("site-a", "su1-0000", 7, "dcgm-exporter")
    assert b.sample_time.ToDatetime(tzinfo=UTC) == T0
    assert [n.node_id for n in b.nodes] == ["su1-0000-n00"]
    g = b.nodes[0].gpus
    assert list(g.gpu_index) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert list(g.power_w) == [113.611, 68.347, 65.709, 67.316, 68.717, 65.742, 67.328, 66.997]
    assert list(g.gpu_temp_c) == [30, 29, 26, 29, 28, 26, 28, 26]
    assert list(g.util_gpu_pct) == [0] * 8
    # MEM_COPY_UTIL is cut at gpu 5 in the source: gpus 6 and 7 are NaN, not 0
    assert same(list(g.util_mem_pct), [0, 0, 0, 0, 0, 0, NAN, NAN])
    for name in ("mem_temp_c", "sm_clock_mhz", "mem_clock_mhz", "sm_active", "tensor_active", "dram_active"):
        assert all(math.isnan(v) for v in getattr(g, name)), name
    assert list(g.xid_errors) == [0] * 8 and list(g.ecc_sbe_total) == [0] * 8
    assert res.missing["su1-0000-n00"] == sorted([
        "dram_active", "ecc_dbe_total", "ecc_sbe_total", "mem_clock_mhz", "mem_temp_c", "sm_active",
        "sm_clock_mhz", "tensor_active", "util_mem_pct", "xid_errors",
    ])
    # survives the wire
    again = telemetry_pb2.RackTelemetryBatch.FromString(b.SerializeToString())
    assert list(again.nodes[0].gpus.power_w) == list(g.power_w)


def test_a100_mig_scrape_uses_whole_gpu_series_and_lists_mig_instances():
    res = dcgm.dcgm_to_batches(feed("dcgm/a100-mig-profiling.prom"), rack_of_host={"ub20-a100-k8s": "r9-0001"},
                               sample_time=T0)
    (b,) = res.batches
    assert b.rack_id == "r9-0001" and b.nodes[0].node_id == "ub20-a100-k8s"  # str → node id = host
    g = b.nodes[0].gpus
    assert list(g.gpu_index) == [0]
    assert list(g.power_w) == [409.692] and list(g.gpu_temp_c) == [61] and list(g.mem_temp_c) == [69]
    assert list(g.sm_clock_mhz) == [1215] and list(g.mem_clock_mhz) == [1215]
    assert list(g.tensor_active) == [0.92926] and list(g.dram_active) == [0.690789]  # not the MIG 0.930433
    assert list(g.xid_errors) == [0]
    assert math.isnan(g.sm_active[0]) and math.isnan(g.util_gpu_pct[0])
    assert len(res.ignored) == 3 and all("MIG instance 13" in r for r in res.ignored)
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in res.ignored_fields and "DCGM_FI_DEV_FB_FREE" in res.ignored_fields


def test_l40s_full_exposition():
    res = dcgm.dcgm_to_batches(feed("dcgm/l40s-full-exposition.prom"), rack_of_host={"gpu1-wl8sg": "r2-0000"},
                               sample_time=T0)
    g = res.batches[0].nodes[0].gpus
    assert list(g.power_w) == [35.686] and list(g.gpu_temp_c) == [32] and list(g.mem_temp_c) == [0]
    assert list(g.sm_clock_mhz) == [210] and list(g.mem_clock_mhz) == [405]
    assert list(g.tensor_active) == [0.0] and list(g.dram_active) == [0.000131]
    assert math.isnan(g.sm_active[0])  # PROF_SM_ACTIVE is commented out in the exporter's default CSV


def test_unknown_hosts_are_reported_not_silently_dropped():
    res = dcgm.dcgm_to_batches(feed("dcgm/h100-8gpu-k8s-sampled.prom"), rack_of_host={}, sample_time=T0)
    assert res.batches == [] and res.unknown_hosts == {"gpu-node-1": 30}


def test_inventory_resolver_with_aliases():
    inv = build_inventory(load_facility_spec("dgx-h100-su"))
    resolve = dcgm.host_resolver_from_inventory(inv, aliases={"gpu-node-1": "su1-0001-n02"})
    assert resolve("gpu-node-1") == dcgm.Placement("su1-0001", "su1-0001-n02")
    assert resolve("su1-0003-n01") == dcgm.Placement("su1-0003", "su1-0003-n01")
    assert resolve("nope") is None
    res = dcgm.dcgm_to_batches(feed("dcgm/h100-8gpu-k8s-sampled.prom"), rack_of_host=resolve, sample_time=T0)
    assert res.batches[0].rack_id == "su1-0001" and res.batches[0].nodes[0].node_id == "su1-0001-n02"


def test_out_of_range_values_become_nan_and_are_rejected():
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",Hostname="h"} 150\n'
        'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="0",Hostname="h"} 1.5\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",Hostname="h"} -3\n'
        'DCGM_FI_DEV_XID_ERRORS{gpu="0",Hostname="h"} 3.5\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="0",Hostname="h"} +Inf\n'
        'DCGM_FI_DEV_SM_CLOCK{gpu="0",Hostname="h"} NaN\n'
        'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu="0",Hostname="h"} 4\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="x",Hostname="h"} 40\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="1"} 40\n'
    )
    res = dcgm.dcgm_to_batches(text, rack_of_host={"h": "r"}, sample_time=T0)
    g = res.batches[0].nodes[0].gpus
    assert math.isnan(g.util_gpu_pct[0]) and math.isnan(g.tensor_active[0]) and math.isnan(g.power_w[0])
    assert math.isnan(g.gpu_temp_c[0]) and math.isnan(g.sm_clock_mhz[0])
    assert list(g.xid_errors) == [0] and list(g.ecc_dbe_total) == [4]
    reasons = "\n".join(res.rejections)
    assert len(res.rejections) == 7
    for part in ("line 1: DCGM_FI_DEV_GPU_UTIL on h gpu 0: 150 % outside [0, 100]",
                 "line 2: DCGM_FI_PROF_PIPE_TENSOR_ACTIVE on h gpu 0: 1.5 ratio outside [0, 1]",
                 "-3 W outside", "3.5 is not an integer code", "inf is not a finite C value",
                 "line 8: DCGM_FI_DEV_GPU_TEMP on h: gpu label 'x' is not an index",
                 "line 9: DCGM_FI_DEV_GPU_TEMP has no Hostname label"):
        assert part in reasons, part


def test_shared_gpu_series_collapse_or_conflict():
    text = (
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",Hostname="h",pod="a"} 100\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",Hostname="h",pod="b"} 100\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="0",Hostname="h",pod="a"} 40\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="0",Hostname="h",pod="b"} 41\n'
        'DCGM_FI_DEV_GPU_TEMP{gpu="0",Hostname="h",pod="c"} 40\n'
    )
    res = dcgm.dcgm_to_batches(text, rack_of_host={"h": "r"}, sample_time=T0)
    g = res.batches[0].nodes[0].gpus
    assert list(g.power_w) == [100] and math.isnan(g.gpu_temp_c[0])
    assert res.rejections == ["line 4: DCGM_FI_DEV_GPU_TEMP on h gpu 0: conflicting series (40.0 vs 41.0)"]


def test_hosts_in_two_racks_give_two_batches_in_rack_order():
    text = "".join(
        f'DCGM_FI_DEV_POWER_USAGE{{gpu="{g}",Hostname="{h}"}} {p}\n'
        for h, g, p in [("b-n00", 1, 11), ("a-n01", 0, 20), ("b-n00", 0, 10), ("a-n00", 0, 30)]
    )
    res = dcgm.dcgm_to_batches(text, rack_of_host=lambda h: h.split("-")[0], sample_time=T0,
                               sequence={"a": 3, "b": 4})
    assert [(b.rack_id, b.sequence, [n.node_id for n in b.nodes]) for b in res.batches] == [
        ("a", 3, ["a-n00", "a-n01"]), ("b", 4, ["b-n00"])]
    assert list(res.batches[1].nodes[0].gpus.gpu_index) == [0, 1]
    assert list(res.batches[1].nodes[0].gpus.power_w) == [10, 11]


def test_malformed_scrape_raises():
    with pytest.raises(ExpositionError, match="line 1"):
        dcgm.dcgm_to_batches(b'DCGM_FI_DEV_GPU_TEMP{gpu="0",Hostname="h', rack_of_host={}, sample_time=T0)


# -- InfiniBand ---------------------------------------------------------------------------------------

def test_treydock_hca_ports_are_bytes_already():
    res = infiniband.ib_link_samples(feed("network/ib-hca-ports-treydock.prom"))
    links = res.links
    assert list(links.port_id) == ["o0002 HCA-1/1", "o0001 HCA-1/1"]  # guid order, names from hca_info
    assert list(links.tx_bytes) == [148434707415420, 36198369975904]
    assert list(links.rx_bytes) == [148901607811540, 39009938353200]
    assert list(links.tx_errors) == [0, 0] and list(links.rx_errors) == [0, 0]
    assert list(links.link_state) == [telemetry_pb2.LINK_STATE_UNSPECIFIED] * 2
    assert not res.rejections and not res.ignored


def test_treydock_switch_ports_errors():
    res = infiniband.ib_link_samples(feed("network/ib-switch-ports-treydock.prom"))
    links = res.links
    assert list(links.port_id) == ["ib-i4l1s01/1", "ib-i1l1s01/1", "ib-i1l1s01/2"]
    assert list(links.tx_bytes) == [715166628708940, 145192107443712, 104026280056104]
    assert list(links.rx_bytes) == [715049367846516, 49116115103004, 156315219973512]
    assert list(links.tx_errors) == [20046, 0, 0]  # PortXmitDiscards
    assert list(links.rx_errors) == [7, 0, 0]  # PortRcvSwitchRelayErrors


def test_node_exporter_ports_state_and_float_counters():
    res = infiniband.ib_link_samples(feed("network/node-exporter-infiniband.prom"),
                               port_id_of=lambda dev, port: f"su1-0000-n00/{dev}:{port}")
    links = res.links
    assert list(links.port_id) == ["su1-0000-n00/mlx4_0:1", "su1-0000-n00/mlx4_0:2"]
    # 1.493376e+07 and 1.8527668e+07 in the file: already bytes (= 4 × sysfs port_xmit_data/port_rcv_data)
    assert list(links.tx_bytes) == [14933760, 0] and list(links.rx_bytes) == [18527668, 0]
    assert list(links.tx_errors) == [5, 0] and list(links.rx_errors) == [0, 0]
    assert list(links.link_state) == [telemetry_pb2.LINK_STATE_UP] * 2
    assert res.ignored == ["i40iw0/1: no data counters"]


def test_raw_sysfs_word_counters_are_multiplied_by_4_and_states_mapped():
    text = (
        'ib_port_xmit_data{device="mlx5_0",port="1"} 1000\n'
        'ib_port_rcv_data{device="mlx5_0",port="1"} 250\n'
        'ib_port_xmit_data{device="mlx5_1",port="1"} 1\n'
        'ib_port_rcv_data{device="mlx5_1",port="1"} 1\n'
        'node_infiniband_state_id{device="mlx5_1",port="1"} 1\n'
        'ib_port_xmit_data{device="mlx5_2",port="1"} -1\n'
    )
    res = infiniband.ib_link_samples(text)
    assert list(res.links.tx_bytes) == [4000, 4] and list(res.links.rx_bytes) == [1000, 4]
    assert list(res.links.link_state) == [telemetry_pb2.LINK_STATE_UNSPECIFIED, telemetry_pb2.LINK_STATE_DOWN]
    assert len(res.rejections) == 1 and "-1.0 is not a counter value" in res.rejections[0]


def test_link_batches_split_by_rack_and_report_unknown_ports():
    res = infiniband.ib_link_samples(feed("network/ib-switch-ports-treydock.prom"))
    batches, unknown = infiniband.link_batches(res.links, rack_of_port={"ib-i1l1s01/1": "net-0000", "ib-i1l1s01/2": "net-0000"},
                                         sample_time=T0)
    assert unknown == ["ib-i4l1s01/1"]
    (b,) = batches
    assert b.rack_id == "net-0000" and list(b.links.port_id) == ["ib-i1l1s01/1", "ib-i1l1s01/2"]
    assert list(b.links.tx_bytes) == [145192107443712, 104026280056104]


# -- scrape loop against a real HTTP server --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_scrape_loop_publishes_and_dead_letters_without_crashing():
    h100 = feed("dcgm/h100-8gpu-k8s-sampled.prom")
    a100 = feed("dcgm/a100-mig-profiling.prom")

    async def metrics(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "h100":
            return web.Response(body=h100, content_type="text/plain")
        if name == "a100":
            return web.Response(body=a100, content_type="text/plain")
        if name == "broken":
            return web.Response(body=b'DCGM_FI_DEV_GPU_TEMP{gpu="0",Hostname="gpu-node-1"', content_type="text/plain")
        return web.Response(status=500, body=b"exporter exploded")

    app = web.Application()
    app.router.add_get("/{name}/metrics", metrics)
    published: list[telemetry_pb2.RackTelemetryBatch] = []
    dead: list[tuple[bytes, str, str]] = []
    stop = asyncio.Event()
    ticks = 0

    async def publish(batch):
        nonlocal ticks
        published.append(batch)
        ticks += 1
        if ticks == 1:
            raise RuntimeError("kafka is down")  # must not stop the loop
        if ticks >= 2:
            stop.set()

    async def dead_letter(raw, reason, source):
        dead.append((raw, reason, source))

    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        urls = [str(server.make_url(f"/{n}/metrics")) for n in ("h100", "a100", "broken", "fail")]
        urls.append(f"http://127.0.0.1:{_free_port()}/metrics")  # nothing listens there
        await asyncio.wait_for(
            dcgm.scrape_loop(urls, 0.01, session, publish, dead_letter, H100_HOST, FixedClock(T0), stop,
                             timeout_s=5),
            timeout=30,
        )
    assert len(published) == 2
    assert [b.sequence for b in published] == [0, 0]  # the failed publish did not count
    assert all(len(b.nodes[0].gpus.gpu_index) == 8 and b.rack_id == "su1-0000" for b in published)
    by_source: dict[str, list[str]] = {}
    for _raw, reason, source in dead:
        by_source.setdefault(source.rsplit("/", 2)[-2] if "/metrics" in source else source, []).append(reason)
    assert any("unknown host(s): ub20-a100-k8s" in r for r in by_source["a100"])
    assert any("line 1" in r and "truncated" in r for r in by_source["broken"])
    assert any(r == "scrape failed: HTTP 500" for r in by_source["fail"])
    assert any(r.startswith("scrape failed: Client") for src, rs in by_source.items() for r in rs
               if src not in ("a100", "broken", "fail", "dcgm-exporter"))
    assert any("publish failed: kafka is down" in r for r in by_source["dcgm-exporter"])
    raw_a100 = next(raw for raw, reason, _ in dead if "unknown host" in reason)
    assert raw_a100 == a100  # the original bytes go to the DLQ


# -- issue 8 item 6: empty scrapes, real host names; the loop on twin.core.polling ---------------------------

async def _serve_and_scrape(routes: dict[str, bytes | int], rack_of_host, until, **kw):
    """Run scrape_loop against a real local HTTP server until `until(published, dead)` holds."""
    async def metrics(request: web.Request) -> web.Response:
        body = routes[request.match_info["name"]]
        if isinstance(body, int):
            return web.Response(status=body, body=b"down")
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{name}/metrics", metrics)
    published, dead = [], []
    stop = asyncio.Event()

    async def publish(batch):
        published.append(batch)
        if until(published, dead):
            stop.set()

    async def dead_letter(raw, reason, source):
        dead.append((raw, reason, source))
        if until(published, dead):
            stop.set()

    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        urls = [str(server.make_url(f"/{n}/metrics")) for n in routes]
        stats = await asyncio.wait_for(
            dcgm.scrape_loop(urls, 0.01, session, publish, dead_letter, rack_of_host, FixedClock(T0), stop,
                             timeout_s=5, **kw), timeout=30)
    return published, dead, stats


async def test_empty_scrape_is_dead_lettered_counted_and_logged_once(caplog):
    empty = b"# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).\n# TYPE DCGM_FI_DEV_GPU_TEMP gauge\n"
    only_other = b'DCGM_FI_DEV_FB_FREE{gpu="0",Hostname="gpu-node-1"} 81000\n'
    _, dead, stats = await _serve_and_scrape(
        {"empty": empty, "other": only_other}, H100_HOST, lambda p, d: len(d) >= 4)
    by_url = {}
    for raw, reason, source in dead:
        by_url.setdefault(source.rsplit("/", 2)[-2], []).append((raw, reason))
    assert by_url["empty"][0] == (empty, "empty scrape: no series of a mapped DCGM field (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, "
                                         "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP, ...); no samples at all")
    assert by_url["other"][0][0] == only_other and "1 other sample(s): DCGM_FI_DEV_FB_FREE" in by_url["other"][0][1]
    assert stats.empty == len(dead) and stats.published == 0
    warnings = [r.getMessage() for r in caplog.records if "is empty" in r.getMessage()]
    assert len(warnings) == 2  # once per URL, not once per tick


async def test_scrape_loop_backs_off_when_every_url_fails():
    _, dead, stats = await _serve_and_scrape({"down": 503}, H100_HOST, lambda p, d: len(d) >= 3, jitter=0.0)
    assert [reason for _, reason, _ in dead][:3] == ["scrape failed: HTTP 503"] * 3
    assert stats.poll.failures >= 2 and stats.poll.consecutive_failures == stats.poll.failures
    assert "all 1 DCGM scrape(s) failed" in stats.poll.last_error
    assert stats.failed >= 3


REAL_HOSTS = b"".join(
    f'DCGM_FI_DEV_POWER_USAGE{{gpu="{g}",UUID="GPU-{h}-{g}",Hostname="{h}"}} {100 + g}\n'.encode()
    for h in ("dgx-a02", "dgx-a08", "gpu-node-1", "login-1") for g in range(2)
)


def test_host_map_exact_and_regex_map_real_hostnames_to_facility_nodes(tmp_path):
    (tmp_path / "hosts.yaml").write_text(
        "hosts:\n  gpu-node-1: su1-0002-n03\n"
        "patterns:\n  - match: 'dgx-a(\\d\\d)'\n    node: 'su1-0001-n\\1'\n")
    host_map = dcgm.load_host_map(tmp_path / "hosts.yaml")
    assert host_map.node_of("gpu-node-1") == "su1-0002-n03" and host_map.node_of("dgx-a02") == "su1-0001-n02"
    assert host_map.node_of("dgx-a7") is None and host_map.node_of("login-1") is None
    inv = build_inventory(load_facility_spec("dgx-h100-su"))
    resolve = dcgm.host_resolver_from_inventory(inv, host_map=host_map)
    res = dcgm.dcgm_to_batches(REAL_HOSTS, rack_of_host=resolve, sample_time=T0)
    assert [(b.rack_id, [n.node_id for n in b.nodes]) for b in res.batches] == [
        ("su1-0001", ["su1-0001-n02"]), ("su1-0002", ["su1-0002-n03"])]
    # dgx-a08 maps to su1-0001-n08, which a 4-node rack does not have: unknown, like login-1
    assert res.unknown_hosts == {"dgx-a08": 2, "login-1": 2}
    # a plain {host: node} file (JSON) works too, and hosts named like node ids still resolve
    (tmp_path / "hosts.json").write_text('{"gpu-node-1": "su1-0000-n01"}')
    resolve = dcgm.host_resolver_from_inventory(inv, host_map=dcgm.load_host_map(tmp_path / "hosts.json"))
    assert resolve("gpu-node-1") == dcgm.Placement("su1-0000", "su1-0000-n01")
    assert resolve("su1-0003-n02") == dcgm.Placement("su1-0003", "su1-0003-n02")
    assert dcgm.load_host_map(None).node_of("x") is None


@pytest.mark.parametrize(("text", "error"), [
    ("- a list\n", "expected an object"),
    ("hosts: {h: ''}\n", "non-empty string"),
    ("patterns: [{match: '(', node: x}]\n", "patterns\\[0\\].match"),
    ("patterns: [{match: a}]\n", "patterns\\[0\\] must be"),
])
def test_bad_host_maps_are_refused_with_the_entry(tmp_path, text, error):
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(ValueError, match=error):
        dcgm.load_host_map(tmp_path / "m.yaml")
