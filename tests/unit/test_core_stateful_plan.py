"""twin.core.stateful.plan_batch: what one batch writes, publishes and dead-letters (no broker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from twin.core.kafka import Record
from twin.core.stateful import Emit, JsonState, ProtobufState, Stored, output_digest, plan_batch
from twin.core.topics import Topic
from twin.telemetry.v1 import telemetry_pb2 as pb

OUT = Topic("test.out", pb.RackTelemetryBatch, "rack_id", 3)
CODEC = JsonState()


def rec(key: str | None, power_w: float, offset: int) -> Record:
    msg = pb.RackTelemetryBatch(site_id="s", rack_id=key or "", rack=pb.RackSamples(pdu_input_power_w=[power_w]))
    return Record("test.in", 0, offset, key, msg.SerializeToString(), [], 0, msg, None, None)  # type: ignore[arg-type]


def max_step(states: Mapping[str, dict], records: Sequence[Record]):
    new: dict[str, dict] = {}
    for r in records:
        w = r.message.rack.pdu_input_power_w[0]
        if w < 0:
            raise ValueError(f"negative {r.key}")
        s = new.get(r.key) or states.get(r.key) or {"n": 0, "max_w": 0.0}
        new[r.key] = {"n": s["n"] + 1, "max_w": max(s["max_w"], w)}
    return new, {k: pb.RackTelemetryBatch(rack_id=k, rack=pb.RackSamples(pdu_input_power_w=[s["max_w"]]))
                 for k, s in new.items()}


def state_of(plan, key):
    return CODEC.decode(Stored.unpack(plan.writes[key]).state)


def published(plan):
    return [(p.key, pb.RackTelemetryBatch.FromString(p.value).rack.pdu_input_power_w[0]) for p in plan.publish]


def test_stored_value_roundtrip_and_version():
    s = Stored(42, output_digest("k", b"v"), b'{"a":1}')
    assert Stored.unpack(s.pack()) == s
    with pytest.raises(ValueError, match="version"):
        Stored.unpack(b"\x02" + s.pack()[1:])


def test_first_batch_writes_state_and_publishes_last_output_per_key():
    plan = plan_batch(max_step, CODEC, OUT, {}, [rec("r1", 10, 0), rec("r1", 30, 1), rec("r2", 5, 2)])
    assert state_of(plan, "r1") == {"n": 2, "max_w": 30.0} and state_of(plan, "r2") == {"n": 1, "max_w": 5.0}
    assert sorted(published(plan)) == [("r1", 30.0), ("r2", 5.0)]
    assert Stored.unpack(plan.writes["r1"]).offset == 1


def test_unchanged_output_is_not_published_but_state_still_written():
    first = plan_batch(max_step, CODEC, OUT, {}, [rec("r1", 30, 0)])
    second = plan_batch(max_step, CODEC, OUT, first.writes, [rec("r1", 20, 1)])
    assert second.publish == [] and second.unchanged == 1
    assert state_of(second, "r1") == {"n": 2, "max_w": 30.0}


def test_replayed_records_are_not_applied_twice():
    first = plan_batch(max_step, CODEC, OUT, {}, [rec("r1", 10, 0), rec("r1", 20, 1)])
    replay = plan_batch(max_step, CODEC, OUT, first.writes, [rec("r1", 10, 0), rec("r1", 20, 1), rec("r1", 25, 2)])
    assert replay.skipped == 2 and replay.applied == 1
    assert state_of(replay, "r1") == {"n": 3, "max_w": 25.0}


def test_failing_record_is_isolated_and_the_rest_applied():
    records = [rec("r1", 10, 0), rec("r2", 5, 1), rec("r3", -1, 2), rec("r1", 40, 3)]
    plan = plan_batch(max_step, CODEC, OUT, {}, records)
    assert [(r.key, reason) for r, reason in plan.dead] == [("r3", "step: ValueError('negative r3')")]
    assert state_of(plan, "r1") == {"n": 2, "max_w": 40.0} and state_of(plan, "r2") == {"n": 1, "max_w": 5.0}
    assert "r3" not in plan.writes


def test_keys_outside_the_batch_are_refused():
    def foreign(states, records):
        return {"elsewhere": {"x": 1}}, {}

    plan = plan_batch(foreign, CODEC, OUT, {}, [rec("r1", 1, 0)])
    assert plan.writes == {} and "not in its batch" in plan.dead[0][1]


def test_wrong_output_type_and_missing_key_are_dead_lettered():
    def wrong(states, records):
        return {}, {r.key: pb.RackSamples() for r in records}

    plan = plan_batch(wrong, CODEC, OUT, {}, [rec("r1", 1, 0), rec(None, 1, 1)])
    reasons = sorted(reason.split(":")[0] for _, reason in plan.dead)
    assert reasons == ["key", "step"]


def test_emit_publishes_under_the_aggregate_key_and_none_deletes():
    def to_site(states, records):
        return {r.key: {"w": 1} for r in records}, {r.key: Emit("site-a", r.message) for r in records}

    plan = plan_batch(to_site, CODEC, OUT, {}, [rec("r1", 1, 0)])
    assert [p.key for p in plan.publish] == ["site-a"] and plan.publish[0].state_key == "r1"

    def delete(states, records):
        return {r.key: None for r in records}, {}

    gone = plan_batch(delete, CODEC, OUT, plan.writes, [rec("r1", 1, 1)])
    assert gone.writes == {"r1": None}


def test_protobuf_state_codec():
    codec = ProtobufState(pb.RackSamples)
    state = pb.RackSamples(pdu_input_power_w=[1.0, 2.0])
    assert codec.decode(codec.encode(state)) == state


def test_make_app_sends_one_record_per_batch_unless_turned_off():
    from twin.core.faust_app import make_app
    from twin.core.settings import Settings

    on = make_app("t", Settings.from_env("t", {}), id="t-on")
    off = make_app("t", Settings.from_env("t", {"TWIN_FAUST_ONE_RECORD_PER_BATCH": "0"}), id="t-off")
    assert on.conf.producer_max_batch_size == 1
    assert off.conf.producer_max_batch_size == 16384  # faust's default
