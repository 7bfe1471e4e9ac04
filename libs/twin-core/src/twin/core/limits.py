"""Every size limit of the twin, in one place, and how they relate (issue 8).

A record travels: HTTP body or simulator → protobuf record → producer → broker → consumer → handler,
or, when refused, → dead-letter topic (`<topic>.dlq`). Each hop has a limit; they are chosen so that
whatever a twin producer can send, the broker accepts, every consumer can fetch, and a refused
record can always be dead-lettered (in full, or as a bounded reference):

    RECORD_MAX_BYTES (992 KiB)          largest record VALUE (serialized protobuf) a twin service
                                        produces or accepts. Consumers refuse bigger records before
                                        decoding them and dead-letter them as references.
  + RECORD_OVERHEAD_BYTES (32 KiB)      key + headers + record-batch framing budget per record
                                        (CloudEvents + traceparent are ~0.3 KiB; the DLQ headers with
                                        a 4000-character reason ~4.5 KiB).
  = PRODUCER_MAX_REQUEST_BYTES (1 MiB)  aiokafka `max_request_size`: the producer refuses (locally,
                                        MessageSizeTooLargeError, never retriable) any record whose
                                        estimated size is larger. Equal to the Kafka default.
 <= BROKER_MAX_MESSAGE_BYTES            Kafka `message.max.bytes` / topic `max.message.bytes`
    (1 MiB + 12, the Kafka default)     (12 = log-entry overhead). The twin's topics need no override;
                                        a broker configured with a LARGER limit (or Tansu, which
                                        enforces none) lets foreign producers put bigger records on a
                                        topic, which is why consumers check RECORD_MAX_BYTES again.
 <= CONSUMER_MAX_PARTITION_FETCH_BYTES aiokafka `max_partition_fetch_bytes`: bytes per partition per
    (= BROKER_MAX_MESSAGE_BYTES)        fetch. Brokers (fetch v3+, KIP-74) still return a first record
                                        batch larger than this, so an oversized record is fetched
                                        (and dead-lettered) rather than skipped.
 <= CONSUMER_FETCH_MAX_BYTES (50 MiB)   aiokafka `fetch_max_bytes`: bytes per fetch response, all
                                        partitions; >= the widest topic (12 partitions) x the
                                        per-partition limit, so no partition starves.

    HTTP_MAX_BODY_BYTES (1 000 000)     ingest's HTTP receivers (Redfish push): larger bodies get 413
                                        unread. <= RECORD_MAX_BYTES because a refused body goes to the
                                        DLQ as the record value, in full.
    GRPC_MAX_MESSAGE_BYTES (64 MiB)     fabric gRPC request/response messages (both directions,
                                        server and clients). gRPC messages never go through Kafka, so
                                        this is independent of the Kafka limits; it bounds what one
                                        request or answer can make either side allocate (a maximal
                                        EstimateBatch answer is ~7 MB, above gRPC's 4 MiB default).

Dead-letter references. A record that is oversized, or whose full DLQ copy (value + original headers
+ DLQ headers) would not fit PRODUCER_MAX_REQUEST_BYTES, is dead-lettered as a reference: the
`dlq_*` headers (reason, source topic/partition/offset, original size) plus

    DLQ_PAYLOAD_PREFIX_BYTES (64 KiB)   the first bytes of the value (enough to identify the sender)
    DLQ_KEY_MAX_BYTES (1 KiB)           the key, truncated
    DLQ_HEADERS_MAX_BYTES (16 KiB)      the original headers, kept only if they total at most this
    DLQ_REASON_MAX_CHARS (4000)         the reason text, truncated

so a reference is at most ~86 KiB and always fits: DLQ_REFERENCE_MAX_BYTES < PRODUCER_MAX_REQUEST_BYTES.
`check()` verifies these relations; it runs at import, so an inconsistent edit fails loudly.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB

PRODUCER_MAX_REQUEST_BYTES = 1 * MIB
RECORD_OVERHEAD_BYTES = 32 * KIB
RECORD_MAX_BYTES = PRODUCER_MAX_REQUEST_BYTES - RECORD_OVERHEAD_BYTES  # 1_015_808
BROKER_MAX_MESSAGE_BYTES = 1 * MIB + 12  # 1_048_588, Apache Kafka's default message.max.bytes
CONSUMER_MAX_PARTITION_FETCH_BYTES = BROKER_MAX_MESSAGE_BYTES
CONSUMER_FETCH_MAX_BYTES = 50 * MIB  # Kafka's default fetch.max.bytes
WIDEST_TOPIC_PARTITIONS = 12  # facility.telemetry.v1 / telemetry.samples.v1 (twin.core.topics)

HTTP_MAX_BODY_BYTES = 1_000_000
GRPC_MAX_MESSAGE_BYTES = 64 * MIB

DLQ_PAYLOAD_PREFIX_BYTES = 64 * KIB
DLQ_KEY_MAX_BYTES = 1 * KIB
DLQ_HEADERS_MAX_BYTES = 16 * KIB
DLQ_REASON_MAX_CHARS = 4000
# The dlq_* headers themselves: the reason (<= 4 bytes per character) plus a few short fields.
DLQ_OWN_HEADERS_MAX_BYTES = 4 * DLQ_REASON_MAX_CHARS + 1 * KIB
DLQ_REFERENCE_MAX_BYTES = (DLQ_PAYLOAD_PREFIX_BYTES + DLQ_KEY_MAX_BYTES + DLQ_HEADERS_MAX_BYTES
                           + DLQ_OWN_HEADERS_MAX_BYTES + 1 * KIB)  # + record framing


def check() -> None:
    """Raise ValueError when the limits above contradict each other (see the module docstring)."""
    rules = [
        (RECORD_MAX_BYTES + RECORD_OVERHEAD_BYTES <= PRODUCER_MAX_REQUEST_BYTES,
         "a maximal record plus its overhead must fit the producer's max_request_size"),
        (PRODUCER_MAX_REQUEST_BYTES <= BROKER_MAX_MESSAGE_BYTES,
         "the broker must accept whatever the producer may send"),
        (BROKER_MAX_MESSAGE_BYTES <= CONSUMER_MAX_PARTITION_FETCH_BYTES,
         "one partition fetch must hold the largest message the broker accepts"),
        (WIDEST_TOPIC_PARTITIONS * CONSUMER_MAX_PARTITION_FETCH_BYTES <= CONSUMER_FETCH_MAX_BYTES,
         "one fetch must have room for every partition of the widest topic"),
        (HTTP_MAX_BODY_BYTES <= RECORD_MAX_BYTES,
         "a refused HTTP body must fit the DLQ as a record value"),
        (DLQ_PAYLOAD_PREFIX_BYTES < RECORD_MAX_BYTES, "the DLQ prefix must be smaller than a record"),
        (DLQ_OWN_HEADERS_MAX_BYTES <= RECORD_OVERHEAD_BYTES,
         "the DLQ headers must fit the per-record overhead budget"),
        (DLQ_REFERENCE_MAX_BYTES < PRODUCER_MAX_REQUEST_BYTES, "a DLQ reference must always be sendable"),
        (GRPC_MAX_MESSAGE_BYTES > 0, "gRPC messages need a bound"),
    ]
    broken = [why for ok, why in rules if not ok]
    if broken:
        raise ValueError("inconsistent size limits: " + "; ".join(broken))


check()
