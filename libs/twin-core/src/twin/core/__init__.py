"""Shared building blocks of every twin service: envelope, topics, kafka, db, grpc, telemetry."""
