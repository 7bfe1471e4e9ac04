"""facility-sim /metrics: DCGM-exporter exposition format, field names, labels and the tick's values."""

import re

import aiohttp
import numpy as np

from twin.core.facility.spec import load_facility_spec
from twin.core.validation_data import feed_bytes
from twin.facility_sim.adapters.prometheus import CONTENT_TYPE, DCGM_FIELDS, DcgmRenderer, MetricsServer
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.layout import build_layout

SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)\{((?:[A-Za-z_][A-Za-z0-9_]*="[^"]*",?)*)\} (\S+)$')
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"')


def parse(text: str):
    """Minimal text-format 0.0.4 parser: (help, type, samples[(name, labels, value)])."""
    helps, types, samples = {}, {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            helps[name] = h
        elif line.startswith("# TYPE "):
            name, _, t = line[7:].partition(" ")
            types[name] = t
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            samples.append((m.group(1), dict(LABEL.findall(m.group(2))), float(m.group(3))))
    return helps, types, samples


def _tick(racks=2, metrics_racks=1):
    layout = build_layout(load_facility_spec("dgx-h100-su"), racks=racks)
    model = FacilityModel(layout.arrays, seed=11)
    state = model.initial_state()
    for k in range(4):
        state, tick = model.step(state, float(k), 1.0)
    return layout, tick, DcgmRenderer(layout, racks=metrics_racks)


def test_text_parses_with_real_field_names_labels_and_values():
    layout, tick, renderer = _tick()
    helps, types, samples = parse(renderer.render(tick))
    names = [f[0] for f in DCGM_FIELDS]
    assert set(helps) == set(types) == set(names) == {
        "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_PROF_SM_ACTIVE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"}
    assert types["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"] == "counter" and types["DCGM_FI_DEV_POWER_USAGE"] == "gauge"
    n_gpus = 32  # one DGX H100 rack: 4 nodes x 8 GPUs
    assert len(samples) == len(names) * n_gpus
    hosts = sorted({s[1]["Hostname"] for s in samples})
    assert hosts == layout.node_ids[:4]
    for name, labels, value in samples:
        assert {"gpu", "UUID", "device", "modelName", "Hostname"} <= set(labels)
        assert labels["device"] == f"nvidia{labels['gpu']}" and labels["UUID"].startswith("GPU-")
        assert labels["modelName"] == "NVIDIA H100 80GB HBM3"
        g = layout.node_ids.index(labels["Hostname"]) * 8 + int(labels["gpu"])
        attr, integer = next((f[3], f[4]) for f in DCGM_FIELDS if f[0] == name)
        expected = float(np.asarray(getattr(tick, attr))[g])
        if integer:
            assert value == round(expected), (name, labels, value, expected)
        else:
            assert abs(value - expected) <= 5e-7, (name, labels, value, expected)
    uuids = {s[1]["UUID"] for s in samples}
    assert len(uuids) == n_gpus


def test_label_names_match_a_real_dcgm_exporter_scrape():
    _, tick, renderer = _tick()
    _, _, ours = parse(renderer.render(tick))
    real_helps, real_types, real = parse(feed_bytes("dcgm/l40s-full-exposition.prom").decode())
    assert list(ours[0][1]) == list(real[0][1]), "same label names in the same order as dcgm-exporter"
    ours_help, ours_type, _ = parse(renderer.render(tick))
    for name in set(ours_help) & set(real_helps):
        assert (ours_help[name], ours_type[name]) == (real_helps[name], real_types[name])


async def test_http_endpoint_serves_latest_tick():
    _, tick, renderer = _tick()
    current = {"text": None}
    server = MetricsServer(lambda: current["text"], host="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            async with http.get(url + "/metrics") as r:
                assert r.status == 503
            current["text"] = renderer.render(tick)
            async with http.get(url + "/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == CONTENT_TYPE
                body = await r.text()
            async with http.get(url + "/healthz") as r:
                assert r.status == 200
    finally:
        await server.stop()
    assert body == current["text"]
    assert parse(body)[2]
