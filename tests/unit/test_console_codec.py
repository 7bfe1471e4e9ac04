"""The console's alert events say when a cooling alert clears (cooling.alerts.v1 sends `cleared` once)."""

from __future__ import annotations

from twin.console.adapters import codec
from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import topics
from twin.core.stack_services import AlertTail


def alert(cleared: bool) -> cpb.CoolingAlert:
    a = cpb.CoolingAlert(alert_id="c-1", site_id="hall", entity_id="a-0003", scope=cpb.COOLING_SCOPE_RACK,
                         kind=cpb.ALERT_KIND_THROTTLE_PREDICTED, severity=cpb.SEVERITY_CRITICAL, cleared=cleared,
                         time_to_throttle_s=120.0, message="8 GPUs throttle in 2 min")
    a.alert_time.FromSeconds(1_790_000_000)
    return a


def test_a_cleared_alert_is_marked_on_the_page_and_on_the_stack_screen() -> None:
    assert codec.cooling_alert(alert(False))["cleared"] is False
    event = codec.cooling_alert(alert(True))
    assert event["cleared"] is True and event["entity"] == "a-0003" and event["severity"] == "critical"
    live = AlertTail.describe(topics.COOLING_ALERTS, alert(False))
    gone = AlertTail.describe(topics.COOLING_ALERTS, alert(True))
    assert live.endswith("cooling critical a-0003: 8 GPUs throttle in 2 min")
    assert gone.endswith("cooling cleared a-0003: no longer: 8 GPUs throttle in 2 min")


def test_pue_at_zero_it_power_is_shown_as_absent_never_as_zero_or_nan() -> None:
    from twinctl.cooling import pue_text

    idle = cpb.CoolingState(site_id="hall", entity_id="hall")
    idle.plant.cooling_power_w = 12_000.0  # fans and pumps run, no IT load: the cooling twin leaves PUE unset
    busy = cpb.CoolingState(site_id="hall", entity_id="hall")
    busy.plant.it_power_w = 1e6
    busy.plant.pue_cooling = 1.0625
    assert codec.cooling_state(idle)["pue_cooling"] is None
    assert codec.cooling_state(busy)["pue_cooling"] == 1.0625
    assert pue_text(idle.plant, "pue_cooling") == "n/a (no IT load)"
    assert pue_text(busy.plant, "pue_cooling") == "1.062"


def test_a_job_row_says_when_its_communication_came_from_the_own_estimate_and_why() -> None:
    from twin.jobs.v1 import jobs_pb2 as jpb

    own = codec.job_state(jpb.JobState(job_id="j", comm_source=jpb.COMM_SOURCE_OWN_ESTIMATE,
                                       comm_source_detail="UNAVAILABLE: connection refused"))
    assert own["own"] == "UNAVAILABLE: connection refused"
    assert codec.job_state(jpb.JobState(job_id="j", comm_source=jpb.COMM_SOURCE_OWN_ESTIMATE))["own"]
    for source in (jpb.COMM_SOURCE_FABRIC_TWIN, jpb.COMM_SOURCE_UNSPECIFIED):   # nothing sent: the row stays small
        assert "own" not in codec.job_state(jpb.JobState(job_id="j", comm_source=source, comm_source_detail="x"))
