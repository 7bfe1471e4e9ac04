"""Regenerate the golden protobuf records: `.venv/bin/python tests/contract/golden/generate.py`.

Only run this when a proto change is intended; tests/contract/test_topics.py asserts the stored bytes
still decode to the values written down there (a wire-compatibility check against old producers).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ for ingest_factory

from ingest_factory import inventory, rack_batch  # noqa: E402

from twin.power.v1 import power_pb2 as ppb  # noqa: E402
from twin.telemetry.v1 import telemetry_pb2 as pb  # noqa: E402

T = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def power_records() -> dict[str, bytes]:
    """power.state.v1 (a rack and the site), power.alerts.v1, power.plans.v1, grid.events.v1."""
    rack = ppb.PowerState(
        site_id="su-h100", entity_id="su1-0001", scope=ppb.POWER_SCOPE_RACK, input_power_w=36512.5,
        output_power_w=36512.5, rating_w=50000.0, headroom_w=13487.5, utilization=0.73025, powered=True,
        source=ppb.VALUE_SOURCE_MIXED,
        rack=ppb.RackPowerDetail(gpu_power_w=22400.0, node_dc_power_w=34400.0, node_loss_w=2112.5, rack_loss_w=0.0,
                                 modelled_input_power_w=36400.0, measured_gpus=24, modelled_gpus=8,
                                 mean_sm_clock_mhz=1732.0, power_capped_gpus=32))
    rack.state_time.FromDatetime(T)
    site = ppb.PowerState(
        site_id="su-h100", entity_id="su-h100", scope=ppb.POWER_SCOPE_SITE, input_power_w=309278.75, powered=True,
        source=ppb.VALUE_SOURCE_MODELLED,
        site=ppb.SitePowerDetail(it_power_w=288000.0, facility_power_w=309278.75, pue=1.0739, feeds_power_w=309278.75,
                                 chain_loss_w=21278.75, ramp_w_per_s=-125.0, cooling_source=ppb.VALUE_SOURCE_UNSPECIFIED))
    site.state_time.FromDatetime(T)
    alert = ppb.PowerAlert(alert_id="a-1", site_id="su-h100", entity_id="ups-2", scope=ppb.POWER_SCOPE_UPS,
                           kind=ppb.ALERT_KIND_REDUNDANCY_LOST, severity=ppb.SEVERITY_WARNING, value=262500.0,
                           threshold=250000.0, message="ups-2 would carry 262.5 kW if ups-1 failed (rating 250 kW)")
    alert.alert_time.FromDatetime(T)
    plan = ppb.CurtailmentPlan(
        plan_id="p-1", site_id="su-h100", event_id="evt-ercot-0001", limit_w=289278.75, deadline_offset_s=60.0,
        duration_s=600.0, baseline_site_power_w=309278.75, capped_gpu_ids=[0, 1, 2], cap_w=[520.5, 520.5, 520.5],
        sources=[ppb.SourceDispatch(source_id="genset-1", kind=ppb.SOURCE_KIND_GENSET, power_w=10000.0,
                                    start_offset_s=20.0)],
        paused_job_ids=["job-0"], throughput_cost=0.0625, timeline_offset_s=[0.0, 59.0, 60.0],
        timeline_site_import_w=[309278.75, 289000.0, 289000.0], meets_limit=True, meets_at_offset_s=59.0,
        shortfall_w=0.0, steps=["cap 3 GPUs (lowest cap 520 W)"])
    plan.created_time.FromDatetime(T)
    event = ppb.GridEvent(event_id="evt-ercot-0001", program_id="ercot-ers-10", event_name="shed-20MW",
                          origin=ppb.GRID_EVENT_ORIGIN_OPENADR3)
    event.modified_time.FromDatetime(datetime(2026, 11, 29, 13, 41, tzinfo=UTC))
    for i, (start_h, start_m, kw) in enumerate(((14, 0, 80000.0), (14, 30, 90000.5))):
        iv = event.intervals.add(interval_id=i, duration_s=1800.0, import_limit_kw=kw)
        iv.start_time.FromDatetime(datetime(2026, 11, 29, start_h, start_m, tzinfo=UTC))
    simple = ppb.GridEvent(event_id="utility-dr/evening-peak", program_id="utility-dr", event_name="evening-peak",
                           intervals=[ppb.GridInterval(interval_id=0, duration_s=3600.0, simple_level=0)])
    return {
        "power_state_rack_v1.bin": rack.SerializeToString(deterministic=True),
        "power_state_site_v1.bin": site.SerializeToString(deterministic=True),
        "power_alert_v1.bin": alert.SerializeToString(deterministic=True),
        "curtailment_plan_v1.bin": plan.SerializeToString(deterministic=True),
        "grid_event_v1.bin": event.SerializeToString(deterministic=True),
        "grid_event_simple_level0_v1.bin": simple.SerializeToString(deterministic=True),
    }


def records() -> dict[str, bytes]:
    batch = rack_batch(inventory("dgx-h100-su"), 1, T, 7, source="golden")
    samples = pb.TelemetrySamples(batch=batch, rejected_values=0)
    samples.ingested_time.FromDatetime(datetime(2025, 6, 1, 12, 0, 1, 500000, tzinfo=UTC))
    minimal = pb.RackTelemetryBatch(site_id="su-h100", rack_id="su1-0007", sequence=2**40)
    return {
        "rack_telemetry_batch_v1.bin": batch.SerializeToString(deterministic=True),
        "telemetry_samples_v1.bin": samples.SerializeToString(deterministic=True),
        "rack_telemetry_batch_minimal_v1.bin": minimal.SerializeToString(deterministic=True),
        **power_records(),
    }


if __name__ == "__main__":
    for name, data in records().items():
        (HERE / name).write_bytes(data)
        print(f"wrote {name} ({len(data)} bytes)")
