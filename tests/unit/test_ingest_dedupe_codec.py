"""Dedupe inside a poll, the codec round trip, and table column assembly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from ingest_factory import inventory, rack_batch

from twin.ingest.adapters.codec import (
    SAMPLES_NAMESPACE,
    decode_batch,
    decode_batches,
    encode_batch,
    no_links,
    samples_ce_id,
    samples_message,
)
from twin.ingest.domain.dedupe import split_duplicates
from twin.ingest.domain.model import (
    GPU_FIELDS,
    GPU_FLOAT_FIELDS,
    BatchKey,
    GpuColumns,
    NodeGpus,
    RackBatch,
    RackEnv,
    node_rows,
)
from twin.ingest.domain.rows import (
    GPU_COLUMNS,
    LINK_SAMPLE_COLUMNS,
    gpu_columns,
    link_columns,
    link_sample_columns,
    rack_columns,
)
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


def test_samples_ce_id_is_uuid5_of_the_batch_key():
    """Sinks dedupe on ce_id across restarts and versions: it stays uuid5(SAMPLES_NAMESPACE, key)."""
    for key in (BatchKey("su1-0001", T, 17), BatchKey("räck-é", T.replace(microsecond=0), 0), BatchKey("r", None, 2**40)):
        t = key.sample_time.isoformat() if key.sample_time else "-"
        assert samples_ce_id(key) == str(uuid.uuid5(SAMPLES_NAMESPACE, f"{key.rack_id}|{t}|{key.sequence}"))


def test_samples_ce_id_over_many_keys_and_times():
    """The cached isoformat (one per sample_time object) and the hex-digest UUID: uuid5 of the key for times
    met again (the same object, an equal one, alternating), None, other offsets, naive and microsecond times,
    and sequences of every size; a cached time's text is never handed to another time."""
    from datetime import timedelta, timezone

    rng = np.random.default_rng(5)
    times = [T, T.replace(microsecond=0), T.astimezone(timezone(timedelta(hours=2))), T.replace(tzinfo=None),
             datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None]
    times += [T + timedelta(microseconds=int(x)) for x in rng.integers(0, 10**9, 20)]
    for n in range(3000):
        t = times[int(rng.integers(0, len(times)))] if n % 7 else times[n % len(times)]
        if t is not None and n % 5 == 0:
            t = t + timedelta(0)   # an equal time, another object
        key = BatchKey(f"r{int(rng.integers(0, 50))}-ü", t, int(rng.integers(0, 2**63, dtype=np.uint64)) * 2 + 1 >> int(rng.integers(0, 65)))
        text = t.isoformat() if t is not None else "-"
        assert samples_ce_id(key) == str(uuid.uuid5(SAMPLES_NAMESPACE, f"{key.rack_id}|{text}|{key.sequence}"))


def test_varint_of_every_width():
    from twin.ingest.adapters.codec import _varint

    def spec(n: int) -> bytes:   # protobuf encoding spec: 7 bits a byte, low group first, MSB: more follow
        out = [n >> 7 * i & 0x7F for i in range(max(1, (n.bit_length() + 6) // 7))]
        return bytes([b | 0x80 for b in out[:-1]] + out[-1:])
    for n in [*range(0, 20000), 2**21 - 1, 2**21, 2**35, 2**63, 2**64 - 1]:
        assert _varint(n) == spec(n), n


def test_samples_message_frames_the_received_bytes_like_a_copy():
    """The handler frames the record's bytes as received; the record must be the one CopyFrom builds,
    byte for byte (lengths of 1-, 2- and 3-byte varints, and an empty batch)."""
    big = rack_batch(inventory(), 0, T, 1)
    big.source = "x" * 2**14
    for msg in (rack_batch(inventory(), 0, T, 1), big, pb.RackTelemetryBatch(rack_id="r"), pb.RackTelemetryBatch()):
        for rejected in (0, 3):
            copied = pb.TelemetrySamples(rejected_values=rejected)
            copied.batch.CopyFrom(msg)
            copied.ingested_time.FromDatetime(T)
            framed = samples_message(msg.SerializeToString(), T, rejected_values=rejected)
            assert framed.SerializeToString() == copied.SerializeToString()
            assert samples_message(msg, T, rejected).SerializeToString() == copied.SerializeToString()
    assert len(big.SerializeToString()) >= 2**14


def test_columns_for_tables():
    inv = inventory()
    batches = [decode_batch(rack_batch(inv, r, T, 1)) for r in range(2)]
    gpu = gpu_columns(batches)
    assert tuple(gpu.columns) == GPU_COLUMNS and len(gpu) == 64
    assert gpu.columns["node_id"][8] == b"su1-0000-n01" and gpu.columns["gpu_index"][8] == 0
    assert gpu.columns["rack_id"][40] == b"su1-0001"   # ids as UTF-8 bytes: COPY takes them as they are
    assert gpu.columns["power_w"][40] == batches[1].nodes[1].values["power_w"][0]
    assert gpu.columns["time"][0] == np.datetime64("2025-06-01T12:00:00.123456")
    rack = rack_columns(batches)
    assert len(rack) == 2 and rack.columns["pdu_l2_power_w"][1] == 9101.0
    links = link_columns(batches)
    assert len(links) == 8 and links.columns["link_state"].tolist()[:4] == [1, 1, 1, 3]


def test_rack_rows_split_phases_from_one_total():
    """PDU values per rack: none, one total (phases unknown), or phases summed into the total (a phase
    not measured leaves no partial total); past the third phase nothing is stored."""
    nan = float("nan")
    pdus = [[], [30_000.0], [10.0, 20.0], [1.0, 2.0, 3.0], [1.0, nan, 3.0], [1.0, 2.0, 3.0, 4.0]]
    batches = [RackBatch("s", f"r{i}", T, 1, "test", GpuColumns.empty(),
                         RackEnv(np.array(p), 20.0 + i, 30.0, 25.0, 35.0, float(i)), no_links())
               for i, p in enumerate(pdus)]
    batches.insert(2, RackBatch("s", "no-rack", T, 1, "test", GpuColumns.empty(), None, no_links()))
    cols = rack_columns(batches).columns
    phases = np.stack([cols["pdu_l1_power_w"], cols["pdu_l2_power_w"], cols["pdu_l3_power_w"]], axis=1)
    expected = [[nan] * 3, [nan] * 3, [10.0, 20.0, nan], [1.0, 2.0, 3.0], [1.0, nan, 3.0], [1.0, 2.0, 3.0]]
    assert np.array_equal(phases, expected, equal_nan=True)
    assert np.array_equal(cols["pdu_input_power_w"], [nan, 30_000.0, 30.0, 6.0, nan, 6.0], equal_nan=True)
    assert cols["rack_id"].tolist() == [f"r{i}".encode() for i in range(6)]
    assert cols["inlet_air_temp_c"].tolist() == [20.0 + i for i in range(6)]
    assert cols["coolant_flow_lpm"].tolist() == [float(i) for i in range(6)]
    assert (cols["time"] == np.datetime64("2025-06-01T12:00:00.123456")).all()
    assert len(rack_columns([])) == 0


def test_link_sample_rows_carry_the_port_keys():
    inv = inventory()
    batches = [decode_batch(rack_batch(inv, r, T, 1)) for r in range(2)]
    batches.insert(1, RackBatch("s", "r", T, 1, "test", GpuColumns.empty(), None, no_links()))
    keys = [np.array([10, 11, 12, 13]), np.empty(0, np.int32), np.array([20, 21, 22, 23])]
    cols = link_sample_columns(batches, keys).columns
    assert tuple(cols) == LINK_SAMPLE_COLUMNS and cols["port_key"].tolist() == [10, 11, 12, 13, 20, 21, 22, 23]
    assert cols["tx_bytes"].tolist() == batches[0].links.counters["tx_bytes"].tolist() + \
        batches[2].links.counters["tx_bytes"].tolist()
    assert cols["link_state"].tolist()[:4] == [1, 1, 1, 3] and cols["link_state"].dtype == np.int16
    assert (cols["time"] == np.datetime64("2025-06-01T12:00:00.123456")).all() and len(cols["time"]) == 8
    with pytest.raises(ValueError, match="rack su1-0001: 3 port keys for 4 ports"):
        link_sample_columns(batches, [keys[0], keys[1], keys[2][:3]])


def _same_batches(a, b) -> None:
    assert (a.key, a.site_id, a.source, a.links.port_id) == (b.key, b.site_id, b.source, b.links.port_id)
    assert [n.node_id for n in a.nodes] == [n.node_id for n in b.nodes]
    for x, y in zip(a.nodes, b.nodes, strict=True):
        assert x.gpu_index.dtype == y.gpu_index.dtype and np.array_equal(x.gpu_index, y.gpu_index)
        assert x.values.keys() == y.values.keys()
        for f in x.values:
            assert x.values[f].dtype == y.values[f].dtype
            assert np.array_equal(x.values[f], y.values[f], equal_nan=True), f


def test_wire_fast_path_decodes_like_the_containers(monkeypatch):
    """decode_batch reads packed GPU fields from the wire bytes, cutting nodes of a layout seen before
    with cached offsets; it must give what the protobuf containers give, also when a later node has
    the same length but another layout (a field one byte longer, the next one byte shorter)."""
    import twin.ingest.adapters.codec as codec

    inv = inventory()
    msgs = [rack_batch(inv, r, T, 1) for r in range(3)]
    odd = pb.RackTelemetryBatch()
    odd.CopyFrom(msgs[0])
    g = odd.nodes[1].gpus
    del g.power_w[-1]                      # 8 bytes shorter ...
    g.ecc_sbe_total.extend([0] * 8)        # ... and 8 bytes longer: same serialized length
    big = pb.RackTelemetryBatch()
    big.CopyFrom(msgs[1])
    big.nodes[0].gpus.ecc_sbe_total[2] = 300   # a two-byte varint: the container path
    msgs += [odd, big]
    fast = [decode_batch(m) for m in msgs]
    monkeypatch.setattr(codec, "_gpu_wire_parts", lambda gpus: None)
    monkeypatch.setattr(codec, "_TAGS", None)   # and no batch-level wire path: the protobuf containers alone
    slow = [decode_batch(m) for m in msgs]
    for a, b in zip(fast, slow, strict=True):
        _same_batches(a, b)


def test_a_poll_decodes_like_its_batches_one_by_one():
    """decode_batches converts each kind of number once for the whole poll: every batch must still get
    exactly its own values, whichever path (wire or containers) and shape its neighbours took, and a
    batch that cannot be decoded gets its error in its place."""
    inv = inventory()
    msgs = [rack_batch(inv, r, T, 1) for r in range(3)]
    ragged, wide, bad_time, empty = (pb.RackTelemetryBatch() for _ in range(4))
    ragged.CopyFrom(msgs[0])
    del ragged.nodes[2].gpus.mem_temp_c[0]
    del ragged.links.tx_errors[1]
    del ragged.rack.pdu_input_power_w[0]
    wide.CopyFrom(msgs[1])
    wide.nodes[3].gpus.xid_errors[5] = 2**40          # the container path for this batch only
    bad_time.CopyFrom(msgs[2])
    bad_time.sample_time.seconds = 2**40
    empty.rack_id = "r"
    poll = [msgs[0], ragged, wide, bad_time, empty, msgs[1], msgs[2]]
    polled = decode_batches(poll)
    assert isinstance(polled[3], ValueError) and "outside the Timestamp range" in str(polled[3])
    for m, b in zip(poll, polled, strict=True):
        if m is not bad_time:
            _same_batches(b, decode_batch(m))
            assert encode_batch(b) == m
    assert polled[1].gpus.value_offsets is not None and polled[0].gpus.value_offsets is None
    assert polled[1].links.counters["tx_errors"].tolist() == list(ragged.links.tx_errors)
    assert polled[5].rack.pdu_input_power_w.tolist() == list(msgs[1].rack.pdu_input_power_w)


def test_gpu_columns_from_nodes_and_back():
    """Feed adapters build batches from per-node samples; the flat columns keep every node's arrays
    (also ragged ones, which validation must still see per node) and give them back as node views."""
    batch = decode_batch(rack_batch(inventory(), 1, T, 3))
    again = GpuColumns.from_nodes(batch.nodes)
    assert again.value_offsets is None and again.node_ids == batch.gpus.node_ids
    assert np.array_equal(again.node_offsets, [0, 8, 16, 24, 32])
    for f in GPU_FIELDS:
        assert np.array_equal(again.values[f], batch.gpus.values[f], equal_nan=True)
    short = NodeGpus("n0", np.array([0, 1], np.uint32), {f: np.arange(2 if f != "power_w" else 1) for f in GPU_FIELDS})
    ragged = GpuColumns.from_nodes([short, batch.nodes[0]])
    assert ragged.value_offsets is not None and ragged.value_offsets["power_w"].tolist() == [0, 1, 9]
    views = ragged.nodes
    assert [len(n.values["power_w"]) for n in views] == [1, 8] and [len(n.gpu_index) for n in views] == [2, 8]
    assert views[0].values["xid_errors"].dtype == np.uint64 and views[1].values["power_w"][3] == \
        batch.nodes[0].values["power_w"][3]
    with pytest.raises(ValueError, match="not aligned"):   # no (fields, rows) view of ragged columns
        ragged.float_block()
    assert again.float_block().shape == (len(GPU_FLOAT_FIELDS), 32) and again.count_block()[2, 5] == \
        batch.nodes[0].values["ecc_dbe_total"][5]
    assert GpuColumns.from_nodes([]).nodes == () and len(GpuColumns.empty().gpu_index) == 0
    assert GpuColumns.empty().float_block().shape == (len(GPU_FLOAT_FIELDS), 0)


def test_node_rows_over_batches():
    inv = inventory()
    cols = [decode_batch(rack_batch(inv, r, T, 1)).gpus for r in range(2)]
    cols.insert(1, GpuColumns.empty())
    assert node_rows(cols).tolist() == [8] * 8 and node_rows([]).tolist() == []
