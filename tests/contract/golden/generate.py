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

from twin.telemetry.v1 import telemetry_pb2 as pb  # noqa: E402

T = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def records() -> dict[str, bytes]:
    batch = rack_batch(inventory("dgx-h100-su"), 1, T, 7, source="golden")
    samples = pb.TelemetrySamples(batch=batch, rejected_values=0)
    samples.ingested_time.FromDatetime(datetime(2025, 6, 1, 12, 0, 1, 500000, tzinfo=UTC))
    minimal = pb.RackTelemetryBatch(site_id="su-h100", rack_id="su1-0007", sequence=2**40)
    return {
        "rack_telemetry_batch_v1.bin": batch.SerializeToString(deterministic=True),
        "telemetry_samples_v1.bin": samples.SerializeToString(deterministic=True),
        "rack_telemetry_batch_minimal_v1.bin": minimal.SerializeToString(deterministic=True),
    }


if __name__ == "__main__":
    for name, data in records().items():
        (HERE / name).write_bytes(data)
        print(f"wrote {name} ({len(data)} bytes)")
