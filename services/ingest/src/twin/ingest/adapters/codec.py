"""Protobuf ↔ domain: the one place RackTelemetryBatch / TelemetrySamples meet the ingest domain."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from twin.ingest.domain.model import (
    GPU_COUNT_FIELDS,
    GPU_FLOAT_FIELDS,
    LINK_COUNT_FIELDS,
    BatchKey,
    Links,
    NodeGpus,
    RackBatch,
    RackEnv,
)
from twin.telemetry.v1 import telemetry_pb2 as pb

# Stable namespace for the ce_id of normalized records: the same batch always gets the same id, so a
# re-publication after a crash is recognisable downstream (sinks dedupe on ce_id).
SAMPLES_NAMESPACE = uuid.UUID("5d0c1f0e-8f7a-4b9e-9a51-7d1b2c3e4f60")


def timestamp_to_datetime(ts: Timestamp) -> datetime:
    return datetime.fromtimestamp(ts.seconds, tz=UTC).replace(microsecond=ts.nanos // 1000)


def datetime_to_timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def decode_batch(msg: pb.RackTelemetryBatch) -> RackBatch:
    """Domain form of one batch; arrays keep their received lengths (validation checks them)."""
    nodes = []
    for n in msg.nodes:
        g = n.gpus
        values: dict[str, np.ndarray] = {f: np.array(getattr(g, f), dtype=np.float64) for f in GPU_FLOAT_FIELDS}
        values.update({f: np.array(getattr(g, f), dtype=np.uint64) for f in GPU_COUNT_FIELDS})
        nodes.append(NodeGpus(n.node_id, np.array(g.gpu_index, dtype=np.uint32), values))
    rack = None
    if msg.HasField("rack"):
        r = msg.rack
        rack = RackEnv(np.array(r.pdu_input_power_w, dtype=np.float64), r.inlet_air_temp_c, r.outlet_air_temp_c,
                       r.coolant_supply_temp_c, r.coolant_return_temp_c, r.coolant_flow_lpm)
    lk = msg.links
    links = Links(tuple(lk.port_id), {f: np.array(getattr(lk, f), dtype=np.uint64) for f in LINK_COUNT_FIELDS},
                  np.array(lk.link_state, dtype=np.int64))
    sample_time = timestamp_to_datetime(msg.sample_time) if msg.HasField("sample_time") else None
    return RackBatch(msg.site_id, msg.rack_id, sample_time, int(msg.sequence), msg.source, tuple(nodes), rack, links)


def encode_batch(batch: RackBatch) -> pb.RackTelemetryBatch:
    msg = pb.RackTelemetryBatch(site_id=batch.site_id, rack_id=batch.rack_id, sequence=batch.sequence,
                                source=batch.source)
    if batch.sample_time is not None:
        msg.sample_time.CopyFrom(datetime_to_timestamp(batch.sample_time))
    for node in batch.nodes:
        n = msg.nodes.add(node_id=node.node_id)
        n.gpus.gpu_index.extend(node.gpu_index.tolist())
        for f in GPU_FLOAT_FIELDS + GPU_COUNT_FIELDS:
            getattr(n.gpus, f).extend(node.values[f].tolist())
    if batch.rack is not None:
        r = batch.rack
        msg.rack.pdu_input_power_w.extend(np.asarray(r.pdu_input_power_w, dtype=np.float64).tolist())
        msg.rack.inlet_air_temp_c = r.inlet_air_temp_c
        msg.rack.outlet_air_temp_c = r.outlet_air_temp_c
        msg.rack.coolant_supply_temp_c = r.coolant_supply_temp_c
        msg.rack.coolant_return_temp_c = r.coolant_return_temp_c
        msg.rack.coolant_flow_lpm = r.coolant_flow_lpm
    lk = batch.links
    if lk.port_id or len(lk.link_state) or any(len(v) for v in lk.counters.values()):
        msg.links.port_id.extend(lk.port_id)
        for f in LINK_COUNT_FIELDS:
            getattr(msg.links, f).extend(lk.counters[f].tolist())
        msg.links.link_state.extend(lk.link_state.tolist())
    return msg


def samples_message(source: pb.RackTelemetryBatch, ingested_time: datetime, rejected_values: int = 0
                    ) -> pb.TelemetrySamples:
    """The normalized record for telemetry.samples.v1 (whole-batch validation: the batch as received)."""
    out = pb.TelemetrySamples(rejected_values=rejected_values)
    out.batch.CopyFrom(source)
    out.ingested_time.CopyFrom(datetime_to_timestamp(ingested_time))
    return out


def samples_ce_id(key: BatchKey) -> str:
    t = key.sample_time.isoformat() if key.sample_time else "-"
    return str(uuid.uuid5(SAMPLES_NAMESPACE, f"{key.rack_id}|{t}|{key.sequence}"))
