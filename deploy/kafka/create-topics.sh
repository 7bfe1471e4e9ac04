#!/usr/bin/env bash
# Creates every Kafka topic of the twin, each with its dead-letter topic (`<topic>.dlq`), on the
# compose stack's Kafka (runs once in the `kafka-init` service, apache/kafka image).
#
# The TOPICS block must equal twin.core.topics (names, and partitions for each topic and its DLQ):
# tests/contract/test_compose.py checks it and prints the expected block when it drifts.
# The embedded stack and facility-sim create the same topics through the Kafka admin API instead.
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
KAFKA_TOPICS="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"
REPLICATION="${KAFKA_REPLICATION_FACTOR:-1}"

# name partitions
TOPICS="
# BEGIN TOPICS (generated from twin.core.topics.all_topic_names())
facility.telemetry.v1 12
telemetry.samples.v1 12
fabric.events.v1 3
fabric.state.v1 1
power.state.v1 12
power.alerts.v1 3
power.plans.v1 1
grid.events.v1 1
power.racks.v1 6
jobs.events.v1 6
jobs.state.v1 6
jobs.recommendations.v1 3
cooling.state.v1 12
cooling.alerts.v1 3
cooling.events.v1 3
cooling.racks.v1 6
facility.telemetry.v1.dlq 12
telemetry.samples.v1.dlq 12
fabric.events.v1.dlq 3
fabric.state.v1.dlq 1
power.state.v1.dlq 12
power.alerts.v1.dlq 3
power.plans.v1.dlq 1
grid.events.v1.dlq 1
power.racks.v1.dlq 6
jobs.events.v1.dlq 6
jobs.state.v1.dlq 6
jobs.recommendations.v1.dlq 3
cooling.state.v1.dlq 12
cooling.alerts.v1.dlq 3
cooling.events.v1.dlq 3
cooling.racks.v1.dlq 6
# END TOPICS
"

for attempt in $(seq 1 30); do
  if "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; then break; fi
  echo "waiting for Kafka at $BOOTSTRAP ($attempt/30)"; sleep 2
done

while read -r name partitions; do
  case "$name" in ""|"#"*) continue ;; esac
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor "$REPLICATION"
done <<< "$TOPICS"

echo "topics on $BOOTSTRAP:"
"$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --list
