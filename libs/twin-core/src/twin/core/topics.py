"""The one registry of Kafka topics: name, message type, key and partitions (DESIGN §4).

Producers, consumers, topic creation and contract tests all read this module; nothing else
spells a topic name.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from twin.cooling.v1 import cooling_pb2
from twin.fabric.v1 import fabric_pb2
from twin.jobs.v1 import jobs_pb2
from twin.power.v1 import power_pb2
from twin.telemetry.v1 import telemetry_pb2

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str
    message_type: type[Message]
    key: str  # the entity id field the key is taken from (documentation + contract tests)
    partitions: int = 6

    @property
    def ce_type(self) -> str:
        return self.message_type.DESCRIPTOR.full_name

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    def decode(self, value: bytes) -> Message:
        # a new message parsed from `value` (DecodeError when undecodable), as message_type() + ParseFromString,
        # in one call (one per consumed record)
        return self.message_type.FromString(value)


FACILITY_TELEMETRY = Topic("facility.telemetry.v1", telemetry_pb2.RackTelemetryBatch, key="rack_id", partitions=12)
TELEMETRY_SAMPLES = Topic("telemetry.samples.v1", telemetry_pb2.TelemetrySamples, key="batch.rack_id", partitions=12)
FABRIC_EVENTS = Topic("fabric.events.v1", fabric_pb2.LinkEvent, key="link_id", partitions=3)
FABRIC_STATE = Topic("fabric.state.v1", fabric_pb2.FabricState, key="site_id", partitions=1)
# power: per-rack state keyed by rack (entity_id = rack id), component and site totals keyed by their own
# id (the second aggregation stage); alerts by the entity they concern; plans by site; grid events by id
POWER_STATE = Topic("power.state.v1", power_pb2.PowerState, key="entity_id", partitions=12)
POWER_ALERTS = Topic("power.alerts.v1", power_pb2.PowerAlert, key="entity_id", partitions=3)
POWER_PLANS = Topic("power.plans.v1", power_pb2.CurtailmentPlan, key="site_id", partitions=1)
GRID_EVENTS = Topic("grid.events.v1", power_pb2.GridEvent, key="event_id", partitions=1)
# The power twin's second stage: each rack's state re-keyed by site, so one process owns a site's totals.
POWER_RACKS = Topic("power.racks.v1", power_pb2.PowerState, key="site_id", partitions=6)
# jobs: scheduler/framework events, per-job state and recommendations, all keyed by job so one job's
# events stay ordered in one partition (the jobs twin keeps per-job state partitioned the same way)
JOBS_EVENTS = Topic("jobs.events.v1", jobs_pb2.JobEvent, key="job_id", partitions=6)
JOBS_STATE = Topic("jobs.state.v1", jobs_pb2.JobState, key="job_id", partitions=6)
JOBS_RECOMMENDATIONS = Topic("jobs.recommendations.v1", jobs_pb2.JobRecommendation, key="job_id", partitions=3)
# cooling: per-rack state keyed by rack (entity_id = rack id), CDU / loop / CRAH / air group / plant state keyed
# by their own id (the second aggregation stage); alerts by the entity they concern; equipment events by
# the CDU, CRAH or plant unit (site id for site-wide setpoint and ambient changes)
COOLING_STATE = Topic("cooling.state.v1", cooling_pb2.CoolingState, key="entity_id", partitions=12)
COOLING_ALERTS = Topic("cooling.alerts.v1", cooling_pb2.CoolingAlert, key="entity_id", partitions=3)
COOLING_EVENTS = Topic("cooling.events.v1", cooling_pb2.CoolingEvent, key="entity_id", partitions=3)
# The cooling twin's second stage: rack heat, rack GPU telemetry (after calibration), equipment batches and
# validated events re-keyed by site, so one process owns a site's network (CDU, loop, plant totals).
COOLING_RACKS = Topic("cooling.racks.v1", cooling_pb2.CoolingStageInput, key="site_id", partitions=6)

ALL: tuple[Topic, ...] = (
    FACILITY_TELEMETRY, TELEMETRY_SAMPLES, FABRIC_EVENTS, FABRIC_STATE, POWER_STATE, POWER_ALERTS, POWER_PLANS,
    GRID_EVENTS, POWER_RACKS, JOBS_EVENTS, JOBS_STATE, JOBS_RECOMMENDATIONS, COOLING_STATE, COOLING_ALERTS, COOLING_EVENTS,
    COOLING_RACKS,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL}


def all_topic_names(include_dlq: bool = True) -> list[str]:
    """Every topic to create, with a dead-letter topic beside each one consumers read."""
    names = [t.name for t in ALL]
    return names + [t.dlq for t in ALL] if include_dlq else names
