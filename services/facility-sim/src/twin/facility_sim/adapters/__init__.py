"""I/O at the edges: protobuf codec, Kafka publisher, Prometheus text endpoint, fault injection."""
