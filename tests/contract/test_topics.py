"""Contract: every registry topic round-trips its message through the wire format, codecs and envelope;
golden records written by earlier code still decode to the values written down here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin.core import topics
from twin.core.envelope import Envelope, new_envelope
from twin.core.faust_app import ProtobufCodec, codec_name, register_codec
from twin.telemetry.v1 import telemetry_pb2 as pb

GOLDEN = Path(__file__).parent / "golden"


def sample_message(topic: topics.Topic):
    """A non-empty message of the topic's type, with its key field set (field names from the registry)."""
    msg = topic.message_type()
    target, *path = topic.key.split(".")
    holder = msg
    for part in [target, *path][:-1]:
        holder = getattr(holder, part)
    setattr(holder, ([target, *path])[-1], "entity-1")
    return msg


@pytest.mark.parametrize("topic", topics.ALL, ids=lambda t: t.name)
def test_every_topic_round_trips(topic: topics.Topic):
    msg = sample_message(topic)
    assert topic.decode(msg.SerializeToString()) == msg
    env = new_envelope(topic.ce_type, "contract")
    assert Envelope.from_headers(env.to_headers()).type == topic.ce_type
    codec = ProtobufCodec(topic.message_type)
    assert codec.loads(codec.dumps(msg)) == msg
    assert register_codec(topic) == codec_name(topic) == f"protobuf:{topic.ce_type}"
    assert topic.partitions >= 1
    assert topic.dlq in topics.all_topic_names(include_dlq=True)


def test_faust_codec_rejects_foreign_bytes_and_types():
    codec = ProtobufCodec(pb.RackTelemetryBatch)
    with pytest.raises(ValueError, match="not a twin.telemetry.v1.RackTelemetryBatch"):
        codec.loads(b"\xff\xff\xff")
    with pytest.raises(TypeError):
        codec.dumps(pb.TelemetrySamples())


def test_golden_rack_telemetry_batch():
    m = pb.RackTelemetryBatch.FromString((GOLDEN / "rack_telemetry_batch_v1.bin").read_bytes())
    assert (m.site_id, m.rack_id, m.sequence, m.source) == ("su-h100", "su1-0001", 7, "golden")
    assert m.sample_time.ToDatetime(tzinfo=UTC) == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert [n.node_id for n in m.nodes] == ["su1-0001-n00", "su1-0001-n01", "su1-0001-n02", "su1-0001-n03"]
    g = m.nodes[2].gpus
    assert list(g.gpu_index) == list(range(8))
    assert (g.power_w[5], g.gpu_temp_c[5], g.sm_clock_mhz[5], g.tensor_active[5]) == (664.5, 30.4, 410.0, 0.821)
    assert list(g.ecc_sbe_total) == [3, 3, 2, 4, 0, 0, 0, 1]
    assert list(m.rack.pdu_input_power_w) == [9007.0, 9107.0, 9207.0]
    assert (m.rack.inlet_air_temp_c, m.rack.coolant_flow_lpm) == (24.0, 120.0)
    assert list(m.links.port_id) == [f"su1-0001-n00/nic{k}" for k in range(4)]
    assert list(m.links.tx_bytes) == [1000000007000, 1000000007001, 1000000007002, 1000000007003]
    assert list(m.links.link_state) == [pb.LINK_STATE_UP] * 3 + [pb.LINK_STATE_DEGRADED]


def test_golden_telemetry_samples_wraps_the_batch():
    s = pb.TelemetrySamples.FromString((GOLDEN / "telemetry_samples_v1.bin").read_bytes())
    b = pb.RackTelemetryBatch.FromString((GOLDEN / "rack_telemetry_batch_v1.bin").read_bytes())
    assert s.batch == b
    assert s.ingested_time.ToDatetime(tzinfo=UTC) == datetime(2025, 6, 1, 12, 0, 1, 500000, tzinfo=UTC)
    assert s.rejected_values == 0


def test_golden_minimal_batch():
    m = pb.RackTelemetryBatch.FromString((GOLDEN / "rack_telemetry_batch_minimal_v1.bin").read_bytes())
    assert (m.site_id, m.rack_id, m.sequence) == ("su-h100", "su1-0007", 2**40)
    assert not m.HasField("sample_time") and not m.nodes and not m.HasField("rack")


def test_golden_files_match_the_generator():
    """The generator is deterministic: regenerating must give the stored bytes (else regenerate on purpose)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("golden_generate", GOLDEN / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, data in module.records().items():
        assert (GOLDEN / name).read_bytes() == data, name
