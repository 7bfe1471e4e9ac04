"""Slurm feeds -> job events, on the real fixtures in shared/validation/feeds/slurm."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core.validation_data import feed_bytes
from twin.jobs.adapters.slurm import (
    SACCT_COLUMNS,
    SlurmRecordRejected,
    expand_hostlist,
    gpus_from_tres,
    job_spec_from,
    json_job_events,
    parse_sacct,
    parse_slurm_json,
    sacct_record_events,
    sort_events,
)
from twin.jobs.domain.events import EventKind, FailureCause

SPEC = ("twin: gpu=H100-SXM layers=32 hidden=4096 ffn_hidden=14336 heads=32 kv_heads=8 vocab=128256 "
        "seq_len=8192 gated=true tp=2 pp=1 cp=1 micro_batch=1 global_batch=64 precision=bf16 owner=ml-team "
        "priority=5")


def kinds(events, job_id):
    return [e.kind for e in events if e.job_id == job_id]


def test_sacct_accounting_fixture() -> None:
    res = parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-accounting.psv"))
    assert res.rejected == []
    ev = res.events
    assert kinds(ev, "4103947") == [EventKind.SUBMITTED, EventKind.STARTED, EventKind.FAILED]
    failed = [e for e in ev if e.job_id == "4103947" and e.kind == EventKind.FAILED][0]
    assert failed.cause == FailureCause.TIMEOUT and failed.exit_code == 1 and failed.signal == 0
    started = [e for e in ev if e.job_id == "4103947" and e.kind == EventKind.STARTED][0]
    assert started.n_nodes == 32 and len(started.nodes) == 32
    assert "d13n07" in started.nodes and "d13n08" in started.nodes and "d09n08s02" in started.nodes
    assert started.time_s == datetime(2015, 6, 28, 2, 55, 50, tzinfo=UTC).timestamp()
    cancelled = [e for e in ev if e.job_id == "4107166" and e.kind == EventKind.CANCELLED][0]
    assert cancelled.reason == "cancelled by 102216"
    assert kinds(ev, "4107219")[-1] == EventKind.FINISHED
    # Eligible "Unknown", 0 nodes / CPUs, only gres/gpu=2 in ReqTRES, two nodes listed
    gpu_job = [e for e in ev if e.job_id == "5692623" and e.kind == EventKind.STARTED][0]
    assert gpu_job.n_gpus == 2 and gpu_job.nodes == ("cpn-k16-35-01", "cpn-k16-37-01")


def test_sacct_phillips_excerpt_all_records_parse_with_gpus() -> None:
    res = parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-phillips-excerpt.psv"))
    assert res.rejected == []
    terminal = [e for e in res.events if e.kind not in (EventKind.SUBMITTED, EventKind.STARTED)]
    assert len(terminal) == 326
    assert sum(e.kind == EventKind.FAILED and e.cause == FailureCause.SOFTWARE for e in terminal) == 300
    with_gpus = {e.job_id for e in res.events if e.n_gpus == 2}
    assert "163485" in with_gpus and len(with_gpus) == 2
    hosts = [e for e in res.events if e.job_id == "165381" and e.kind == EventKind.STARTED][0].nodes
    assert hosts == ("cpn-f13-03-01", "cpn-f13-03-02", "cpn-f13-04-01", "cpn-f13-04-02", "cpn-f13-05-01",
                     "cpn-f13-05-02", "cpn-f13-06-01", "cpn-f13-06-02")


def test_sacct_job_arrays_and_utf8() -> None:
    res = parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-job-arrays.psv"))
    assert res.rejected == []
    assert {e.job_id for e in res.events} >= {"4103947_100", "4103947_[1-3]", "4103947_[1,5]"}
    utf = parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-utf8.psv"))
    assert utf.rejected == [] and utf.events[0].name == "aàb"


def test_slurm_json_fixtures_two_parser_versions() -> None:
    done = parse_slurm_json(feed_bytes("slurm/slurmdb-job-completed-24.05-v0.0.41.json"))
    assert done.rejected == []
    assert [e.kind for e in done.events] == [EventKind.SUBMITTED, EventKind.STARTED, EventKind.FINISHED]
    assert done.events[1].nodes == ("cn001",) and done.events[-1].time_s == 1747754470
    failed = parse_slurm_json(feed_bytes("slurm/slurmdb-job-failed-25.11-v0.0.44.json"))
    assert [e.kind for e in failed.events][-1] == EventKind.FAILED
    assert failed.events[-1].cause == FailureCause.SOFTWARE and failed.events[-1].exit_code == 1
    running = parse_slurm_json(feed_bytes("slurm/slurmdb-job-gpus-multinode-25.11-v0.0.44.json"))
    assert [e.kind for e in running.events] == [EventKind.SUBMITTED, EventKind.STARTED]
    started = running.events[1]
    # the test cluster accounts no GPU TRES: the count comes from the submit line (--gpus 8)
    assert started.nodes == ("gpu1", "gpu2") and started.n_nodes == 2 and started.n_gpus == 8


def test_replay_order_is_by_time_then_lifecycle() -> None:
    res = parse_sacct(feed_bytes("slurm/sacct-parsable2-xdmod-accounting.psv"))
    ordered = sort_events(res.events)
    assert [e.time_s for e in ordered] == sorted(e.time_s for e in ordered)


def test_job_spec_from_comment_and_environment() -> None:
    spec, attrs = job_spec_from(SPEC, None, allocated_gpus=16)
    assert spec is not None and spec.parallel.dp == 8 and spec.parallel.tp == 2 and spec.model.gated_ffn
    assert attrs == {"priority": "5", "owner": "ml-team"}
    env = {"TWIN_JOB_SPEC": SPEC.replace("tp=2", "tp=4"), "TWIN_JOB_OWNER": "infra"}
    spec2, attrs2 = job_spec_from("", env, allocated_gpus=16)
    assert spec2.parallel.tp == 4 and attrs2["owner"] == "infra"
    as_json = json.dumps({"gpu": "B200", "model": {"layers": 2, "hidden": 256, "ffn_hidden": 1024, "heads": 4,
                                                     "vocab": 1000, "seq_len": 128},
                          "training": {"global_batch": 8}})
    spec3, _ = job_spec_from(as_json, None, allocated_gpus=8)
    assert spec3.gpu == "b200" and spec3.parallel.dp == 8
    assert job_spec_from("nightly run, please be gentle", None) == (None, {})
    assert job_spec_from("see a=b", None) == (None, {})  # free text with '=' but no known key


@pytest.mark.parametrize("text, reason", [
    (SPEC.replace("heads=32 kv_heads=8", "heads=4 kv_heads=4").replace("tp=2", "tp=8"), "divisible by tp"),
    (SPEC.replace(" tp=2", " tp=3"), "not a multiple"),             # GPUs not a multiple of TP
    (SPEC + " dp=4", "n_gpus = 16"),                                 # dp*tp*pp*cp != allocated GPUs
    (SPEC.replace("layers=32 ", ""), "missing layers"),
    (SPEC + " colour=blue", "unknown key"),
    (SPEC.replace("tp=2", "tp=two"), "not a non-negative integer"),
    ('{"gpu": "H100-SXM", "layers": ', "JSON"),
])
def test_bad_job_specs_are_rejected_with_a_reason(text, reason) -> None:
    with pytest.raises(SlurmRecordRejected, match=reason):
        job_spec_from(text, None, allocated_gpus=16)


def _row(**over: str) -> list[str]:
    base = dict.fromkeys(SACCT_COLUMNS, "")
    base.update(JobID="42", JobIDRaw="42", Cluster="c", User="u", Submit="2025-01-01T00:00:00",
                Start="2025-01-01T00:01:00", End="2025-01-01T01:00:00", ExitCode="0:0", State="COMPLETED",
                NNodes="2", AllocTRES="cpu=8,gres/gpu:h100=16,node=2", NodeList="n[01-02]")
    base.update(over)
    return [base[c] for c in SACCT_COLUMNS]


def test_sacct_record_with_a_spec_in_a_header_comment_column() -> None:
    header = SACCT_COLUMNS + ("Comment",)
    events = sacct_record_events(_row() + [SPEC], header)
    assert all(e.spec is not None and e.spec.n_gpus == 16 for e in events)
    assert events[1].n_gpus == 16 and events[1].nodes == ("n01", "n02")
    text = "|".join(header) + "\n" + "|".join(_row() + [SPEC]) + "\n"
    res = parse_sacct(text)
    assert res.rejected == [] and len(res.events) == 3


@pytest.mark.parametrize("over, reason", [
    ({"Start": "yesterday"}, "ISO"),
    ({"End": "2024-12-31T00:00:00"}, "before"),
    ({"NNodes": "-1"}, "NNodes"),
    ({"ExitCode": "x"}, "ExitCode"),
    ({"NodeList": "n[01-"}, "unbalanced"),
    ({"State": "EXPLODED"}, "unknown job state"),
    ({"JobID": ""}, "empty JobID"),
    ({"JobID": "42.batch"}, "step"),
    ({"AllocTRES": "gres/gpu=lots"}, "GPU count"),
    ({"End": "Unknown"}, "without an end time"),
])
def test_bad_sacct_records_are_rejected(over, reason) -> None:
    with pytest.raises(SlurmRecordRejected, match=reason) as info:
        sacct_record_events(_row(**over))
    assert info.value.record  # the offending record travels with the rejection (DLQ)


def test_batch_parsers_keep_good_records_and_collect_rejects() -> None:
    text = "|".join(_row()) + "\n" + "bad|line\n" + "|".join(_row(JobID="43", JobIDRaw="43")) + "\n"
    res = parse_sacct(text)
    assert len(res.rejected) == 1 and "columns" in res.rejected[0].reason
    assert {e.job_id for e in res.events} == {"42", "43"}
    assert parse_sacct(b"\xff\xfe").rejected
    assert parse_slurm_json("not json").rejected and parse_slurm_json('{"jobs": 3}').rejected
    assert parse_slurm_json('{"jobs": [1, {"job_id": -1}]}').rejected


def test_hostlists_and_tres() -> None:
    assert expand_hostlist("d13n[03,05,07-08,16]") == ("d13n03", "d13n05", "d13n07", "d13n08", "d13n16")
    assert expand_hostlist("r[1-2]-n[1-2]") == ("r1-n1", "r1-n2", "r2-n1", "r2-n2")
    assert expand_hostlist("None assigned") == ()
    assert gpus_from_tres("billing=36,cpu=36,gres/gpu=2,mem=31000M") == 2
    assert gpus_from_tres("gres/gpu=8,gres/gpu:h100=8") == 8
    assert gpus_from_tres("cpu=4") is None
    with pytest.raises(SlurmRecordRejected):
        expand_hostlist("n[1-99999999]")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_sacct_text_yields_events_or_rejections_only(text: str) -> None:
    parse_sacct(text)  # never raises
    try:
        sacct_record_events(text.split("|"))
    except SlurmRecordRejected:
        pass


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=20)
job_keys = st.sampled_from(["job_id", "state", "time", "nodes", "tres", "comment", "exit_code", "array",
                            "environment", "allocation_nodes", "submit_line", "failed_node"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(job_keys, json_values, max_size=8))
def test_any_json_job_yields_events_or_a_rejection_only(job: dict) -> None:
    try:
        json_job_events(job)
    except SlurmRecordRejected:
        pass
    parse_slurm_json({"jobs": [job]})
