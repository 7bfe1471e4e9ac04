"""twin.jobs.v1 <-> domain: round trips on the Slurm fixtures, invalid messages name the field."""

from __future__ import annotations

import pytest

from twin.core import topics
from twin.core.validation_data import feed_bytes
from twin.jobs.adapters.codec import InvalidMessage, event_from_proto, event_to_proto, state_to_proto
from twin.jobs.adapters.slurm import job_spec_from, parse_sacct, parse_slurm_json
from twin.jobs.domain.book import JobBook, apply_event
from twin.jobs.domain.events import EventKind, JobEvent
from twin.jobs.domain.step import predict_step
from twin.jobs.v1 import jobs_pb2 as pb

SPEC_TEXT = ("gpu=H100-SXM layers=32 hidden=4096 ffn_hidden=14336 heads=32 kv_heads=8 vocab=128256 seq_len=8192 "
             "gated=true tp=2 pp=1 cp=1 micro_batch=1 global_batch=64 precision=fp8 recompute=full owner=ml")


def test_fixture_events_round_trip_through_the_topic_bytes() -> None:
    events = (parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-accounting.psv")).events
              + parse_slurm_json(feed_bytes("slurm/slurmdb-job-failed-25.11-v0.0.44.json")).events)
    for ev in events:
        raw = event_to_proto(ev).SerializeToString()
        back = event_from_proto(topics.JOBS_EVENTS.decode(raw))
        assert back == ev


def test_spec_round_trip() -> None:
    spec, attrs = job_spec_from(SPEC_TEXT, None, allocated_gpus=16)
    ev = JobEvent(job_id="7", kind=EventKind.SUBMITTED, time_s=1.5, spec=spec, attributes=attrs)
    msg = event_to_proto(ev)
    assert msg.spec.gpu_model == "H100-SXM" and msg.spec.precision == pb.PRECISION_FP8 and msg.spec.owner == "ml"
    assert event_from_proto(msg) == ev


@pytest.mark.parametrize("mutate, field", [
    (lambda m: setattr(m, "job_id", ""), "job_id"),
    (lambda m: setattr(m, "kind", pb.JOB_EVENT_KIND_UNSPECIFIED), "kind"),
    (lambda m: setattr(m, "kind", 99), "kind"),
    (lambda m: m.ClearField("event_time"), "event_time"),
    (lambda m: (setattr(m, "kind", pb.JOB_EVENT_KIND_FAILED), setattr(m, "failure_cause", 0)), "failure_cause"),
    (lambda m: setattr(m.spec.parallel, "tp", 3), "spec.parallel"),
    (lambda m: setattr(m.spec, "gpu_model", "TPU"), "spec.gpu_model"),
    (lambda m: (setattr(m, "kind", pb.JOB_EVENT_KIND_PROGRESS), setattr(m, "measured_step_time_s", 0.0)),
     "measured_step_time_s"),
])
def test_invalid_messages_name_the_field(mutate, field) -> None:
    spec, attrs = job_spec_from(SPEC_TEXT, None, allocated_gpus=16)
    msg = event_to_proto(JobEvent(job_id="7", kind=EventKind.SUBMITTED, time_s=1.0, spec=spec))
    mutate(msg)
    with pytest.raises(InvalidMessage) as info:
        event_from_proto(msg)
    assert info.value.field.startswith(field)


def test_state_carries_prediction_breakdown_and_phases() -> None:
    spec, _ = job_spec_from(SPEC_TEXT, None, allocated_gpus=16)
    book = JobBook()
    for ev in (JobEvent(job_id="7", kind=EventKind.SUBMITTED, time_s=1.0, spec=spec),
               JobEvent(job_id="7", kind=EventKind.STARTED, time_s=2.0, nodes=("n0", "n1"), n_gpus=16)):
        book = apply_event(book, ev)
    pred = predict_step(spec)
    msg = state_to_proto(book.jobs["7"], pred, 3.0, goodput_fraction=0.9)
    back = topics.JOBS_STATE.decode(msg.SerializeToString())
    assert back.status == pb.JOB_STATUS_RUNNING and back.predicted_step_time_s == pytest.approx(pred.step_time_s)
    assert back.power_w == pytest.approx(pred.mean_power_w * 16)
    assert {p.name for p in back.phases} >= {"gemm", "attention", "communication"}
    assert back.breakdown.exposed_tp_s == pytest.approx(pred.exposed_comm_s["tp"])


@pytest.mark.parametrize("fields", [
    {"step": 12, "measured_step_time_s": 1.5},
    {"step": 0, "measured_tokens_per_s": 2.5e5, "source": "sim", "cluster": "c", "user": "u", "reason": "r"},
    {"step": 7, "measured_step_time_s": 0.9, "measured_tokens_per_s": 1e5, "attributes": {"k": "v"}},
])
def test_progress_fast_path_builds_the_same_event_as_the_constructor(fields) -> None:
    """A PROGRESS report without spec or placement skips the dataclass constructor: the event it gives is equal,
    field by field, to the one ``JobEvent(...)`` builds, and the same bad report is refused the same way."""
    msg = pb.JobEvent(job_id="j1", kind=pb.JOB_EVENT_KIND_PROGRESS, **fields)
    msg.event_time.FromSeconds(1_800_000_000)
    ev = event_from_proto(msg)
    want = JobEvent("j1", EventKind.PROGRESS, 1_800_000_000.0, source=msg.source, cluster=msg.cluster,
                    user=msg.user, reason=msg.reason, attributes=dict(msg.attributes), step=msg.step,
                    step_time_s=msg.measured_step_time_s, tokens_per_s=msg.measured_tokens_per_s)
    assert ev == want and vars(ev) == vars(want)
    bad = pb.JobEvent(job_id="j1", kind=pb.JOB_EVENT_KIND_PROGRESS, step=1)
    bad.event_time.FromSeconds(1_800_000_000)
    with pytest.raises(InvalidMessage) as err:
        event_from_proto(bad)
    assert err.value.field == "measured_step_time_s"


@pytest.mark.parametrize("seconds,nanos", [(1_795_952_404, -1), (-62_135_596_801, 0), (253_402_300_800, 0)])
@pytest.mark.parametrize("kind", [pb.JOB_EVENT_KIND_PROGRESS, pb.JOB_EVENT_KIND_STARTED])
def test_an_event_time_protobuf_cannot_represent_is_rejected_naming_event_time(kind, seconds, nanos):
    """Found by the jobs fuzzer: the PROGRESS fast path raised protobuf's ValueError (a consumer crash, not a
    DLQ reason) for a Timestamp with negative nanos."""
    msg = pb.JobEvent(job_id="j", kind=kind, source="test", measured_step_time_s=1.0)
    msg.event_time.seconds, msg.event_time.nanos = seconds, nanos
    with pytest.raises(InvalidMessage) as err:
        event_from_proto(msg)
    assert err.value.field == "event_time"


def test_the_state_time_parts_are_the_timestamps_for_every_instant_in_any_order() -> None:
    """``view_to_proto``'s state time (``_ts_parts``, the last instant's kept) is ``_ts`` of each instant."""
    from twin.jobs.adapters import codec as c

    instants = [1_800_000_000.0, 1_800_000_000.25, 1_800_000_000.0, -1.5, 0.0, 1_799_999_999.999999999, 1e9 + 1e-9]
    for seconds in instants + instants[::-1]:
        ts = c._ts(seconds)
        assert c._ts_parts(seconds) == (ts.seconds, ts.nanos)
