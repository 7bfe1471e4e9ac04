"""Prometheus text exposition parser: every real feed file parses; malformed input is rejected by line."""

from __future__ import annotations

import math

import pytest

from twin.core.validation_data import validation_dir
from twin.ingest.adapters.prometheus_text import ExpositionError, parse_exposition


def feed(rel: str) -> bytes:
    return (validation_dir() / "feeds" / rel).read_bytes()


def one(expo, name, **labels):
    got = [s for s in expo.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (name, labels, got)
    return got[0]


# -- real feeds ----------------------------------------------------------------------------------

def test_every_real_exposition_file_parses():
    files = sorted((validation_dir() / "feeds").glob("*/*.prom"))
    assert {f.name for f in files} == {
        "a100-mig-profiling.prom", "h100-8gpu-k8s-sampled.prom", "l40s-full-exposition.prom",
        "ib-hca-ports-treydock.prom", "ib-switch-ports-treydock.prom", "node-exporter-infiniband.prom",
    }
    for f in files:
        expo = parse_exposition(f.read_bytes())
        assert expo.samples and not expo.errors, f


def test_a100_mig_untyped_with_repeated_names():
    expo = parse_exposition(feed("dcgm/a100-mig-profiling.prom"))
    assert len(expo.samples) == 21 and expo.types == {} and expo.helps == {}
    assert len(expo.names()) == 17  # the 4 MIG series reuse names after a blank line
    p = one(expo, "DCGM_FI_DEV_POWER_USAGE")
    assert p.value == 409.692 and p.timestamp_ms is None and p.line == 5
    assert p.labels == {"gpu": "0", "UUID": "GPU-34319582-d595-d1c7-d1d2-179bcfa61660",
                        "device": "nvidia0", "Hostname": "ub20-a100-k8s"}
    mig = one(expo, "DCGM_FI_PROF_DRAM_ACTIVE", GPU_I_ID="13")
    assert mig.value == 0.800339 and mig.labels["GPU_I_PROFILE"] == "1g.5gb" and mig.line == 22
    assert one(expo, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION").value == 319159391


def test_h100_sampled_k8s_labels():
    expo = parse_exposition(feed("dcgm/h100-8gpu-k8s-sampled.prom"))
    assert len(expo.samples) == 30
    counts = {n: len(expo.by_name(n)) for n in expo.names()}
    assert counts == {"DCGM_FI_DEV_GPU_TEMP": 8, "DCGM_FI_DEV_POWER_USAGE": 8, "DCGM_FI_DEV_GPU_UTIL": 8,
                      "DCGM_FI_DEV_MEM_COPY_UTIL": 6}
    g0 = one(expo, "DCGM_FI_DEV_POWER_USAGE", gpu="0")
    assert g0.value == 113.611 and g0.labels["pod"] == "vllm-agg-0-vllmdecodeworker-s65j5"
    assert g0.labels["pod_uid"] == "" and g0.labels["modelName"] == "NVIDIA H100 80GB HBM3"
    assert "pod" not in one(expo, "DCGM_FI_DEV_POWER_USAGE", gpu="1").labels
    assert one(expo, "DCGM_FI_DEV_GPU_TEMP", gpu="7").value == 26


def test_l40s_full_exposition_help_and_types():
    expo = parse_exposition(feed("dcgm/l40s-full-exposition.prom"))
    assert len(expo.samples) == 23 and len(expo.types) == 23 and len(expo.helps) == 23
    assert expo.helps["DCGM_FI_DEV_SM_CLOCK"] == "SM clock frequency (in MHz)."
    assert expo.types["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == "counter"
    assert expo.types["DCGM_FI_PROF_PCIE_TX_BYTES"] == "gauge"
    assert one(expo, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION").value == 5551899580
    assert one(expo, "DCGM_FI_PROF_DRAM_ACTIVE").value == 0.000131
    assert one(expo, "DCGM_FI_DEV_POWER_USAGE").labels["DCGM_FI_DRIVER_VERSION"] == "595.58.03"


def test_infiniband_expositions():
    hca = parse_exposition(feed("network/ib-hca-ports-treydock.prom"))
    assert len(hca.samples) == 66 and len(hca.types) == 34
    assert one(hca, "infiniband_hca_port_transmit_data_bytes_total", guid="0x7cfe9003003b4b96").value == 148434707415420
    assert one(hca, "infiniband_hca_rate_bytes_per_second", guid="0x7cfe9003003b4bde").value == 1.25e10
    assert one(hca, "infiniband_hca_info", guid="0x7cfe9003003b4bde").labels["hca"] == "o0001 HCA-1"

    sw = parse_exposition(feed("network/ib-switch-ports-treydock.prom"))
    assert len(sw.samples) == 100 and len(sw.types) == 34
    assert one(sw, "infiniband_switch_port_transmit_discards_total", guid="0x506b4b03005c2740").value == 20046
    assert one(sw, "infiniband_switch_port_link_downed_total", guid="0x506b4b03005c2740").value == 1

    ne = parse_exposition(feed("network/node-exporter-infiniband.prom"))
    assert len(ne.samples) == 51 and len(ne.types) == 28
    assert one(ne, "node_infiniband_port_data_received_bytes_total", device="mlx4_0", port="1").value == 18527668
    assert one(ne, "node_infiniband_port_transmit_wait_total").value == 4294967295
    assert one(ne, "node_infiniband_info", device="i40iw0").labels["board_id"] == "I40IW Board ID"


# -- grammar ---------------------------------------------------------------------------------------

def test_escapes_special_values_timestamps_and_blanks():
    text = (
        '# HELP m A help with a \\\\ backslash\\nand a newline\n'
        '# TYPE m gauge\n'
        'm{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb",empty=""} 1.5e3 1700000000000\n'
        'm{k="nan"} NaN\n'
        'm{k="pinf"} +Inf\n'
        'm{k="ninf"} -Inf\n'
        '  m{k="spaces" , j = "x" ,}   -0.25   -12  \n'
        'no_labels 7\n'
        'colon:name{} 3\n'
        '# just a comment with TYPE words\n'
    )
    expo = parse_exposition(text)
    first = expo.samples[0]
    assert first.labels == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb", "empty": ""}
    assert first.value == 1500.0 and first.timestamp_ms == 1700000000000
    assert expo.helps["m"] == "A help with a \\ backslash\nand a newline"
    assert math.isnan(expo.samples[1].value)
    assert expo.samples[2].value == math.inf and expo.samples[3].value == -math.inf
    assert expo.samples[4].labels == {"k": "spaces", "j": "x"} and expo.samples[4].value == -0.25
    assert expo.samples[4].timestamp_ms == -12
    assert [(s.name, s.value, s.line) for s in expo.samples[5:]] == [("no_labels", 7.0, 8), ("colon:name", 3.0, 9)]


def test_crlf_and_missing_final_newline_are_tolerated():
    expo = parse_exposition(b"a 1\r\nb 2")
    assert [(s.name, s.value) for s in expo.samples] == [("a", 1.0), ("b", 2.0)]


def test_histogram_family_type_applies_to_suffixed_samples():
    text = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n"
    assert len(parse_exposition(text).samples) == 4
    with pytest.raises(ExpositionError, match="TYPE for h after its samples"):
        parse_exposition("h_sum 1\n# TYPE h summary\n")


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-c4529c8d', "unterminated value of label 'UUID'"),
        ('DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID', "expected '=' after label 'UUID'"),
        ('DCGM_FI_DEV_GPU_TEMP{gpu="0"', "unterminated label set"),
        ('DCGM_FI_DEV_GPU_TEMP{gpu="0"}', "missing value"),
        ("DCGM_FI_DEV_GPU_TEMP", "missing value"),
        ('m{a="x\\ty"} 1', "bad escape '\\t'"),
        ('m{a="x\\"} 1', "unterminated value of label 'a'"),
        ("m abc", "invalid sample value 'abc'"),
        ("m 1_000", "invalid sample value '1_000'"),
        ("m infinity", "invalid sample value 'infinity'"),
        ("m 0x10", "invalid sample value '0x10'"),
        ("m 1 12.5", "invalid timestamp '12.5'"),
        ("m 1 2 3", "unexpected text after the timestamp"),
        ('m{__name__="x"} 1', "reserved '__' prefix"),
        ('m{a="1",a="2"} 1', "label 'a' appears twice"),
        ('m{a="1" b="2"} 1', "expected ',' or '}' after label 'a'"),
        ('m{1a="1"} 1', "invalid label name"),
        ('m{a=1} 1', "expected '\"' to open the value of label 'a'"),
        ('m{a="1"}1', "expected a blank between the series and its value"),
        ("9metric 1", "expected a metric name"),
        ("me-tric 1", "invalid character '-' in metric name"),
        ("# TYPE m gauges", "unknown metric type 'gauges'"),
        ("# TYPE 1m gauge", "invalid metric name '1m'"),
        ("# HELP", "# HELP/# TYPE without a metric name"),
    ],
)
def test_malformed_lines_are_rejected_with_line_numbers(text, message):
    body = "ok_metric 1\n" + text + "\n"
    with pytest.raises(ExpositionError) as info:
        parse_exposition(body)
    err = info.value.errors[0]
    assert err.line == 2
    assert message in err.message, err
    assert "line 2" in str(info.value)


def test_duplicate_series_is_an_error_even_with_reordered_labels():
    text = 'm{a="1",b="2"} 1\nother 1\nm{b="2",a="1"} 1\n'
    with pytest.raises(ExpositionError, match=r"line 3: duplicate series \(first seen on line 1\)"):
        parse_exposition(text)


def test_duplicate_type_and_help_and_type_after_samples():
    with pytest.raises(ExpositionError, match="second TYPE for m"):
        parse_exposition("# TYPE m gauge\n# TYPE m gauge\nm 1\n")
    with pytest.raises(ExpositionError, match="second HELP for m"):
        parse_exposition("# HELP m a\n# HELP m b\nm 1\n")
    with pytest.raises(ExpositionError, match="TYPE for m after its samples"):
        parse_exposition("m 1\n# TYPE m gauge\n")


def test_collect_errors_keeps_good_lines_and_reports_every_bad_one():
    text = 'good 1\nbad{a="x\\q"} 2\nalso_good 3\nbroken{ 4\ngood 5\n'
    expo = parse_exposition(text, collect_errors=True)
    assert [(s.name, s.value) for s in expo.samples] == [("good", 1.0), ("also_good", 3.0)]
    assert [(e.line, e.message.split(" ")[0]) for e in expo.errors] == [(2, "bad"), (4, "invalid"), (5, "duplicate")]
    with pytest.raises(ExpositionError) as info:
        parse_exposition(text)
    assert len(info.value.errors) == 3 and "(+2 more)" in str(info.value)


def test_invalid_utf8_is_reported_with_its_line():
    with pytest.raises(ExpositionError, match="line 2: not valid UTF-8"):
        parse_exposition(b'a 1\nb{x="\xff"} 2\n')
