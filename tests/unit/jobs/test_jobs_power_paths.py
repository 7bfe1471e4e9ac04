"""PDU / UPS / transformer / feed alerts in the jobs twin: the component is mapped to the racks below it (the facility
spec's power chain), the jobs on those racks are flagged (a capped / at-risk power path; checkpoint now when a
critical alert hits a component some of their racks have no path around), and the power twin's clear lifts it."""

from __future__ import annotations

import pytest
from test_jobs_dirty import setup  # same directory (rootdir-relative import)
from test_jobs_power_alerts import _deliver, _msg

from twin.core.facility import load_facility_spec
from twin.jobs.power_paths import PowerPath, power_paths, power_paths_of_spec
from twin.power.v1 import power_pb2 as pb

RACKS = [f"su1-{i:04d}" for i in range(8)]


def test_the_generated_chain_of_the_su_preset() -> None:
    pp = power_paths_of_spec(load_facility_spec("dgx-h100-su"))
    # one PDU per rack in inventory order, every PDU on one N+1 bus of 3 UPS units dual-fed from 2 transformers
    assert pp["pdu-5"] == PowerPath("pdu-5", frozenset({"su1-0004"}), frozenset({"su1-0004"}))
    assert pp["ups-bus"] == PowerPath("ups-bus", frozenset(RACKS), frozenset(RACKS))
    for c in ("ups-1", "ups-3", "tx-1", "tx-2", "feed-a", "feed-b"):
        assert pp[c].racks == frozenset(RACKS) and pp[c].sole == frozenset(), c


def test_dual_corded_racks_have_a_path_around_every_component() -> None:
    pp = power_paths_of_spec(load_facility_spec("gb200-nvl72-hall"))
    assert pp["pdu-a-a0"].racks == frozenset({"a-0000"}) and pp["pdu-a-a0"].sole == frozenset()
    assert len(pp["bus-a"].racks) == 16 and pp["bus-a"].sole == frozenset()
    assert pp["tx-b"].racks == pp["bus-b"].racks and pp["feed-b"].sole == frozenset()


def test_sole_paths_in_a_mixed_chain() -> None:
    parents = {"p1": ["g"], "p2": ["u2"], "p3": ["g", "u3"], "g": ["u1", "u2"], "u1": ["t1"], "u2": ["t1"],
               "u3": ["t2"], "t1": ["f1"], "t2": ["f2"]}
    pp = power_paths(parents, {"r1": ["p1"], "r2": ["p2"], "r3": ["p3"], "r4": ["p1", "p2"]})
    assert pp["g"] == PowerPath("g", frozenset({"r1", "r3", "r4"}), frozenset({"r1"}))    # r3: via u3; r4: via p2
    assert pp["u1"].sole == frozenset()                                                 # u2 is on the bus too
    assert pp["u2"] == PowerPath("u2", frozenset({"r1", "r2", "r3", "r4"}), frozenset({"r2"}))
    assert pp["t1"].sole == frozenset({"r1", "r2", "r4"}) and pp["f1"].sole == pp["t1"].sole
    assert pp["p1"].sole == frozenset({"r1"}) and pp["t2"].racks == frozenset({"r3"}) and pp["t2"].sole == frozenset()


def _power(twin, job_id: str) -> list[tuple[str, str]]:
    return [(f.entity_id, f.detail) for f in twin.jobs[job_id].flags if f.kind == "power_cap"]


def _checkpoints(twin, job_id: str) -> list[str]:
    return [r.entity_id for r in twin.jobs[job_id].recommendations if r.kind == "checkpoint_now"]


def test_a_pdu_alert_flags_the_jobs_on_its_rack_and_its_clear_lifts_it() -> None:
    twin, eng, clock, _ = setup()          # k runs on su1-0004 (pdu-5); j on 0000/0002; m on 0005/0006
    alert = _msg(clock.t, entity="pdu-5", scope=pb.POWER_SCOPE_PDU, kind=pb.ALERT_KIND_OVER_THRESHOLD)
    assert _deliver(eng, clock, alert) == ["k"]
    ((entity, detail),) = _power(twin, "k")
    assert entity == "pdu-5" and "su1-0004" in detail and "no path around it" in detail
    assert _checkpoints(twin, "k") == ["pdu-5"]
    assert _power(twin, "j") == [] and _power(twin, "m") == []
    # a clear older than the alert, or of another PDU: nothing; the matching clear: the flag goes at once
    assert _deliver(eng, clock, _msg(clock.t - 60, entity="pdu-5", scope=pb.POWER_SCOPE_PDU,
                                     kind=pb.ALERT_KIND_OVER_THRESHOLD, cleared=True, alert_id="c0")) == []
    assert _deliver(eng, clock, _msg(clock.t, entity="pdu-6", scope=pb.POWER_SCOPE_PDU,
                                     kind=pb.ALERT_KIND_OVER_THRESHOLD, cleared=True, alert_id="c1")) == []
    assert _deliver(eng, clock, _msg(clock.t, entity="pdu-5", scope=pb.POWER_SCOPE_PDU,
                                     kind=pb.ALERT_KIND_OVER_THRESHOLD, cleared=True, alert_id="c2")) == ["k"]
    assert _power(twin, "k") == [] and _checkpoints(twin, "k") == [] and twin.rack_alerts == {}


@pytest.mark.parametrize(("entity", "scope", "checkpoint"), [
    ("ups-2", pb.POWER_SCOPE_UPS, False),          # a unit of the N+1 bus: the others carry on
    ("ups-bus", pb.POWER_SCOPE_UPS_GROUP, True),   # every rack's only bus
    ("tx-1", pb.POWER_SCOPE_TRANSFORMER, False),   # every UPS is dual-fed
    ("feed-b", pb.POWER_SCOPE_FEED, False),
])
def test_an_alert_above_every_rack_flags_every_job(entity, scope, checkpoint) -> None:
    twin, eng, clock, _ = setup()
    assert _deliver(eng, clock, _msg(clock.t, entity=entity, scope=scope)) == ["j", "k", "m"]
    for job_id in ("j", "k", "m"):
        ((got, detail),) = _power(twin, job_id)
        assert got == entity and ("no path around it" in detail) == checkpoint
        assert _checkpoints(twin, job_id) == ([entity] if checkpoint else [])
    assert _deliver(eng, clock, _msg(clock.t, entity=entity, scope=scope, cleared=True, alert_id="c")) \
        == ["j", "k", "m"]
    assert all(_power(twin, j) == [] for j in ("j", "k", "m"))


def test_an_unknown_component_or_a_site_alert_concerns_no_job() -> None:
    twin, eng, clock, _ = setup()
    assert _deliver(eng, clock, _msg(clock.t, entity="ups-9", scope=pb.POWER_SCOPE_UPS)) == []
    assert _deliver(eng, clock, _msg(clock.t, entity="su-h100", scope=pb.POWER_SCOPE_SITE,
                                     kind=pb.ALERT_KIND_RAMP_TOO_FAST)) == []
    assert all(_power(twin, j) == [] for j in ("j", "k", "m"))


def test_without_a_clear_the_time_to_live_lifts_a_component_alert() -> None:
    twin, eng, clock, _ = setup()
    assert _deliver(eng, clock, _msg(clock.t, entity="pdu-1", scope=pb.POWER_SCOPE_PDU)) == ["j"]
    assert "j" in _deliver(eng, clock, dt=twin.settings.alert_ttl_s)
    assert _power(twin, "j") == []
