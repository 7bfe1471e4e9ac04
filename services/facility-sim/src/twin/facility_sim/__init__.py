"""facility-sim: a simulated AI facility that streams telemetry like a real site (DESIGN §2).

One RackTelemetryBatch per rack per tick on `facility.telemetry.v1`, a DCGM-exporter-style
Prometheus endpoint, and optional labelled bad-data injection for testing ingest.

Layers: `domain/` (pure numpy model) ← `adapters/` (protobuf codec, Kafka publisher, Prometheus
text, fault injection) ← `app.py` (composition root) ← `__main__.py` (CLI).
"""
