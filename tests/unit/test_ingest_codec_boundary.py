"""DESIGN §1: `adapters/codec.py` is the one place protobuf meets the ingest domain.

The feed adapters (DCGM, Redfish, InfiniBand, the HTTP receiver) make domain objects and call the
codec; none of them imports the generated telemetry protos or protobuf itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import twin.ingest.adapters as adapters_pkg

ADAPTERS = Path(adapters_pkg.__file__).parent
FEEDS = ["dcgm.py", "infiniband.py", "http_api.py", "redfish"]


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _files(name: str) -> list[Path]:
    p = ADAPTERS / name
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


def test_feed_adapters_do_not_touch_protobuf():
    offenders = {}
    for name in FEEDS:
        files = _files(name)
        assert files and all(f.exists() for f in files), name
        for f in files:
            bad = sorted(m for m in _imports(f) if m.startswith(("twin.telemetry", "google.protobuf")))
            if bad:
                offenders[str(f.relative_to(ADAPTERS))] = bad
    assert offenders == {}


def test_codec_is_where_protobuf_is():
    assert any(m.startswith("twin.telemetry") for m in _imports(ADAPTERS / "codec.py"))


def test_redfish_and_dcgm_results_are_domain_batches_encoded_by_the_codec():
    from datetime import UTC, datetime

    from twin.ingest.adapters import codec, dcgm, redfish
    from twin.ingest.domain.model import RackBatch

    t = datetime(2026, 1, 1, tzinfo=UTC)
    res = dcgm.dcgm_to_batches('DCGM_FI_DEV_POWER_USAGE{gpu="0",Hostname="h"} 100\n', rack_of_host={"h": "r"},
                               sample_time=t)
    assert all(isinstance(b, RackBatch) for b in res.rack_batches)
    assert res.batches == [codec.encode_batch(b) for b in res.rack_batches]
    doc = {"@odata.type": "#Sensor.v1_12_0.Sensor", "@odata.id": "/redfish/v1/Chassis/X/Sensors/F",
           "ReadingType": "LiquidFlowLPM", "ReadingUnits": "L/min", "Reading": 40}
    rf = redfish.parse_redfish(doc, rack_of_resource={"/redfish/v1/Chassis/X": "r"}, received_time=t)
    (b,) = rf.rack_batches
    assert isinstance(b, RackBatch) and b.rack is not None and b.rack.coolant_flow_lpm == 40
    assert codec.decode_batch(rf.batches[0]).rack.coolant_flow_lpm == 40
