"""Dedupe inside a poll, the codec round trip, and table column assembly."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from ingest_factory import inventory, rack_batch

from twin.ingest.adapters.codec import decode_batch, encode_batch, samples_ce_id, samples_message
from twin.ingest.domain.dedupe import split_duplicates
from twin.ingest.domain.rows import GPU_COLUMNS, gpu_columns, link_columns, rack_columns
from twin.telemetry.v1 import telemetry_pb2 as pb

T = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_split_duplicates_keeps_first_occurrence():
    assert split_duplicates(["a", "b", "a", "c", "b", "a"]) == ([0, 1, 3], [2, 4, 5])
    assert split_duplicates([]) == ([], [])


def test_batch_keys_identify_duplicates():
    inv = inventory()
    a, b = decode_batch(rack_batch(inv, 0, T, 5)), decode_batch(rack_batch(inv, 0, T, 5, seed=99))
    c = decode_batch(rack_batch(inv, 0, T, 6))
    assert split_duplicates([a.key, b.key, c.key]) == ([0, 2], [1])


def test_codec_round_trip_is_lossless():
    msg = rack_batch(inventory(), 3, T, 17)
    batch = decode_batch(msg)
    assert batch.rack_id == "su1-0003" and batch.sequence == 17 and batch.sample_time == T
    assert batch.nodes[1].values["power_w"][4] == msg.nodes[1].gpus.power_w[4]
    assert batch.nodes[0].values["ecc_sbe_total"].dtype == np.uint64
    assert encode_batch(batch) == msg


def test_codec_keeps_missing_parts_missing():
    msg = pb.RackTelemetryBatch(site_id="s", rack_id="r", sequence=1)
    batch = decode_batch(msg)
    assert batch.sample_time is None and batch.rack is None and batch.nodes == () and batch.links.port_id == ()
    assert encode_batch(batch) == msg


def test_samples_message_and_deterministic_ce_id():
    msg = rack_batch(inventory(), 0, T, 1)
    out = samples_message(msg, T, rejected_values=0)
    assert out.batch == msg and out.ingested_time.ToDatetime(tzinfo=UTC) == T
    key = decode_batch(msg).key
    assert samples_ce_id(key) == samples_ce_id(decode_batch(pb.RackTelemetryBatch.FromString(msg.SerializeToString())).key)
    assert samples_ce_id(key) != samples_ce_id(decode_batch(rack_batch(inventory(), 0, T, 2)).key)


def test_columns_for_tables():
    inv = inventory()
    batches = [decode_batch(rack_batch(inv, r, T, 1)) for r in range(2)]
    gpu = gpu_columns(batches)
    assert tuple(gpu.columns) == GPU_COLUMNS and len(gpu) == 64
    assert gpu.columns["node_id"][8] == "su1-0000-n01" and gpu.columns["gpu_index"][8] == 0
    assert gpu.columns["power_w"][40] == batches[1].nodes[1].values["power_w"][0]
    assert gpu.columns["time"][0] == np.datetime64("2025-06-01T12:00:00.123456")
    rack = rack_columns(batches)
    assert len(rack) == 2 and rack.columns["pdu_l2_power_w"][1] == 9101.0
    links = link_columns(batches)
    assert len(links) == 8 and links.columns["link_state"].tolist()[:4] == [1, 1, 1, 3]
