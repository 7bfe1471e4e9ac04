"""ingest: facility feeds in, validated telemetry out (TimescaleDB tables + telemetry.samples.v1)."""
