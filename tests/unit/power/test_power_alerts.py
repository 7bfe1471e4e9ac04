"""Alerts over a chain evaluation, and the grid event book (same id replaces, latest limit wins)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from twin.core.facility import load_facility_spec
from twin.power.domain import GridEvent, GridInterval, evaluate, import_limit_at, power_alerts, upsert
from twin.power.site import build_site_model


@pytest.fixture(scope="module")
def su():
    return build_site_model(load_facility_spec("dgx-h100-su"))


def kinds(alerts):
    return {(a.entity_id, a.kind, a.severity) for a in alerts}


def test_quiet_site_raises_nothing(su):
    net = su.network
    assert power_alerts(net, evaluate(net, np.full(net.n_racks, 20e3))) == []


def test_thresholds_redundancy_and_unpowered(su):
    net = su.network
    rack_w = np.full(net.n_racks, 30e3)
    rack_w[0] = 45e3                                             # pdu-1 at 90 %
    a = kinds(power_alerts(net, evaluate(net, rack_w)))
    assert ("pdu-1", "over_threshold", "warning") in a
    rack_w[0] = 55e3
    a = kinds(power_alerts(net, evaluate(net, rack_w)))
    assert ("pdu-1", "over_threshold", "critical") in a
    failed = np.zeros(net.n_comp, dtype=bool)
    failed[net.index_of("ups-1")] = True
    a = kinds(power_alerts(net, evaluate(net, np.full(net.n_racks, 30e3), failed=failed)))
    assert ("ups-bus", "redundancy_lost", "critical") in a and ("ups-1", "unpowered", "critical") in a
    failed[[net.index_of(u) for u in ("ups-2", "ups-3")]] = True
    a = kinds(power_alerts(net, evaluate(net, np.full(net.n_racks, 30e3), failed=failed)))
    assert {(r, "unpowered", "critical") for r in net.rack_ids} <= a


def test_loss_of_redundancy_warning_before_any_failure(su):
    net = su.network
    # 8 racks x 63.7 kW: each of the three 250 kW UPS units carries ~175 kW, ~262 kW if a partner failed
    st = evaluate(net, np.full(net.n_racks, 63.7e3))
    a = kinds(power_alerts(net, st, threshold=2.0))
    assert {("ups-1", "redundancy_lost", "warning"), ("ups-2", "redundancy_lost", "warning")} <= a


def test_ramp_and_suspect_sensor(su):
    net = su.network
    st = evaluate(net, np.full(net.n_racks, 20e3))
    assert not power_alerts(net, st, minute_change_w=1e6)   # the feeds state no ramp limit
    from dataclasses import replace
    ramp_net = replace(net, feed_max_ramp_w_per_s=np.array([1e3, 1e3]))   # 2 kW/s: 120 kW per minute
    assert not power_alerts(ramp_net, st, minute_change_w=-119e3)
    a = power_alerts(ramp_net, st, minute_change_w=130e3)
    assert [(x.kind, x.value, x.threshold) for x in a] == [("ramp_too_fast", pytest.approx(130e3), 120e3)]
    meas = np.full(net.n_racks, np.nan)
    meas[3] = 30e3
    a = power_alerts(net, st, rack_measured_w=meas, rack_modelled_w=np.full(net.n_racks, 20e3))
    assert [(x.entity_id, x.kind) for x in a] == [("su1-0003", "suspect_sensor")]


def test_event_book_replaces_by_id_and_latest_limit_wins():
    t0 = datetime(2026, 11, 29, 14, tzinfo=UTC)

    def ev(eid, kw, start_min, dur_min):
        return GridEvent(eid, "p", eid, (GridInterval(0, t0 + timedelta(minutes=start_min), dur_min * 60.0, kw),))

    book = upsert((), ev("a", 80_000, 0, 60))
    book = upsert(book, ev("b", 90_000, 30, 60))
    assert import_limit_at(book, t0 + timedelta(minutes=10)) == (80_000, "a")
    assert import_limit_at(book, t0 + timedelta(minutes=40)) == (90_000, "b")     # overlap: the latest
    book = upsert(book, ev("a", 70_000, 0, 60))                                    # same id replaces, now latest
    assert len(book) == 2 and import_limit_at(book, t0 + timedelta(minutes=40)) == (70_000, "a")
    assert import_limit_at(book, t0 + timedelta(minutes=100)) == (None, None)
