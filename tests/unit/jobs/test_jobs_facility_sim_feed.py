"""facility-sim's job feed: the simulated training jobs as JobEvents the job twin accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twin.core.facility import load_facility_spec
from twin.facility_sim.adapters.jobs import JobFeed
from twin.facility_sim.domain.model import FacilityModel
from twin.facility_sim.layout import build_layout
from twin.jobs.adapters import codec
from twin.jobs.domain.events import EventKind
from twin.jobs.live import JobTwin
from twin.jobs.site import build_site_map

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_every_training_block_is_a_job_the_twin_accepts_and_follows() -> None:
    spec = load_facility_spec("dgx-h100-su")
    layout = build_layout(spec, racks=None, seed=3)
    model = FacilityModel(layout.arrays, seed=3)
    feed = JobFeed(layout, model.workloads, progress_every_s=10.0)
    w = model.workloads
    assert len(feed.jobs) == len(set(w.job[w.job >= 0].tolist())) > 0
    twin = JobTwin(build_site_map(spec))
    first = feed.events(0.0, T0)
    kinds = [(k, codec.job_event(m)[0].kind) for k, m in first]
    assert kinds[:2 * len(feed.jobs)] == [(j, k) for j, _ in feed.jobs for k in (EventKind.SUBMITTED, EventKind.STARTED)]
    for key, msg in first:
        ev, gpus = codec.job_event(msg)
        assert key == ev.job_id
        twin.apply(ev, gpus)   # every spec is consistent and every placement fits: no EventRejected
    assert len(twin.book.running()) == len(feed.jobs)
    for job_id, nodes in feed.jobs:
        rec = twin.book.jobs[job_id]
        assert rec.nodes == tuple(layout.node_ids[int(n)] for n in nodes) and rec.n_gpus == 8 * len(nodes)
    assert [m.kind for _, m in feed.events(5.0, T0 + timedelta(seconds=5))
            if m.kind == codec.pb.JOB_EVENT_KIND_PROGRESS] == []
    later = feed.events(10.0, T0 + timedelta(seconds=10))
    progress = [codec.job_event(m)[0] for _, m in later if m.kind == codec.pb.JOB_EVENT_KIND_PROGRESS]
    assert len(progress) == len(feed.jobs) and all(p.step_time_s >= 3.0 for p in progress)
    for _, m in later:
        twin.apply(codec.job_event(m)[0])
    assert all(twin.book.jobs[p.job_id].measured_step_time_s == p.step_time_s for p in progress)
