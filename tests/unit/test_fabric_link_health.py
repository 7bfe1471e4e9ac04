"""Pure link-health updates: events, counters → rates → utilization."""

from __future__ import annotations

import numpy as np
import pytest

from twin.fabric.domain.link_health import (
    FLAP_CAPACITY_FACTOR,
    KIND_DEGRADED,
    KIND_DOWN,
    KIND_FLAPPING,
    KIND_UP,
    LinkHealth,
    LinkLayout,
    PortCounters,
    apply_link_events,
    apply_utilization,
    counter_rates,
    event_errors,
    utilization_from_rates,
)


def events(state, rows):
    idx, kind, cap, t = (np.array(c) for c in zip(*rows, strict=True))
    return apply_link_events(state, idx, kind, cap, t)


def test_healthy_state_is_read_only_and_full_capacity():
    s = LinkHealth.healthy(4)
    assert s.effective_capacity().tolist() == [1.0] * 4
    assert not s.impaired().any()
    with pytest.raises(ValueError):
        s.capacity_fraction[0] = 0.5


def test_down_then_up_restores_exactly_and_reports_changes():
    s0 = LinkHealth.healthy(5)
    s1, changed = events(s0, [(2, KIND_DOWN, 0.0, 10.0)])
    assert changed.tolist() == [2]
    assert s1.capacity_fraction.tolist() == [1, 1, 0, 1, 1]
    assert s0.capacity_fraction[2] == 1.0  # the old state is untouched
    s2, changed = events(s1, [(2, KIND_UP, 0.0, 11.0)])
    assert changed.tolist() == [2]
    np.testing.assert_array_equal(s2.effective_capacity(), s0.effective_capacity())
    assert s2.changed_time_s[2] == 11.0


def test_degraded_and_flapping_combine_like_sequential_application():
    s = LinkHealth.healthy(3)
    s, changed = events(s, [(0, KIND_DEGRADED, 0.25, 1.0), (0, KIND_FLAPPING, 0.0, 2.0), (1, KIND_FLAPPING, 0.0, 1.0),
                            (1, KIND_UP, 0.0, 3.0)])
    assert sorted(changed.tolist()) == [0]  # link 1 flapped and recovered inside the batch: no net change
    assert s.capacity_fraction[0] == 0.25 and s.flapping[0]
    assert s.effective_capacity()[0] == pytest.approx(0.25 * FLAP_CAPACITY_FACTOR)
    assert not s.flapping[1] and s.capacity_fraction[1] == 1.0
    # DOWN clears flapping, DEGRADED keeps it
    s2, _ = events(s, [(0, KIND_DOWN, 0.0, 4.0)])
    assert s2.capacity_fraction[0] == 0.0 and not s2.flapping[0]


def test_events_apply_in_time_order_not_arrival_order():
    s, _ = events(LinkHealth.healthy(2), [(0, KIND_UP, 0.0, 5.0), (0, KIND_DOWN, 0.0, 4.0)])
    assert s.capacity_fraction[0] == 1.0
    s, _ = events(LinkHealth.healthy(2), [(0, KIND_DOWN, 0.0, 4.0), (0, KIND_UP, 0.0, 5.0)])
    assert s.capacity_fraction[0] == 1.0


def test_stale_and_redelivered_events_do_not_roll_back():
    s, _ = events(LinkHealth.healthy(2), [(1, KIND_DOWN, 0.0, 10.0), (1, KIND_UP, 0.0, 20.0)])
    s2, changed = events(s, [(1, KIND_DOWN, 0.0, 10.0)])  # redelivery of the older DOWN
    assert changed.size == 0 and s2.capacity_fraction[1] == 1.0
    s3, changed = events(s, [(1, KIND_UP, 0.0, 20.0)])  # redelivery of the same event: idempotent
    assert changed.size == 0
    np.testing.assert_array_equal(s3.capacity_fraction, s.capacity_fraction)


def test_event_errors_name_the_field():
    errs = event_errors(np.array([KIND_DOWN, 0, KIND_DEGRADED, KIND_DEGRADED, KIND_DEGRADED]),
                        np.array([0.0, 0.0, 1.5, -0.1, np.nan]))
    assert errs[0] is None
    assert errs[1].startswith("kind:")
    assert all(e.startswith("capacity_fraction:") for e in errs[2:])


def test_out_of_range_index_raises():
    with pytest.raises(IndexError):
        events(LinkHealth.healthy(2), [(2, KIND_DOWN, 0.0, 1.0)])


def test_counter_rates_first_sample_gives_no_rate_then_delta_over_dt():
    c = PortCounters.empty(3)
    c, ports, tx, rx = counter_rates(c, np.array([0, 1]), np.array([100.0, 0.0]), np.array([50.0, 0.0]),
                                     np.array([10.0, 10.0]))
    assert ports.size == 0
    c, ports, tx, rx = counter_rates(c, np.array([0, 1]), np.array([1100.0, 400.0]), np.array([250.0, 0.0]),
                                     np.array([12.0, 11.0]))
    assert ports.tolist() == [0, 1]
    assert tx.tolist() == [500.0, 400.0]
    assert rx.tolist() == [100.0, 0.0]


def test_counter_rates_several_ticks_in_one_batch_reset_and_redelivery():
    c = PortCounters.empty(2)
    # three ticks of port 0, out of order; rate = last two ticks
    c, ports, tx, _ = counter_rates(c, np.array([0, 0, 0]), np.array([300.0, 100.0, 200.0]), np.zeros(3),
                                    np.array([3.0, 1.0, 2.0]))
    assert ports.tolist() == [0] and tx.tolist() == [100.0]
    # redelivered old tick: ignored entirely
    c2, ports, _, _ = counter_rates(c, np.array([0]), np.array([100.0]), np.zeros(1), np.array([1.0]))
    assert ports.size == 0 and c2.tx_bytes[0] == 300.0
    # counter reset: no rate, restart from the new value
    c3, ports, _, _ = counter_rates(c, np.array([0]), np.array([10.0]), np.zeros(1), np.array([4.0]))
    assert ports.size == 0 and c3.tx_bytes[0] == 10.0 and c3.time_s[0] == 4.0


def _layout():
    # 2 leaves x 2 uplinks (slots 0..3), 4 NICs (slots 4..7): NICs 0,1 on leaf 0, NICs 2,3 on leaf 1
    return LinkLayout(n_uplinks=4, n_nics=4, uplink_leaf=np.array([0, 0, 1, 1]), nic_leaf=np.array([0, 0, 1, 1]),
                      uplink_bytes_per_s=100.0, nic_bytes_per_s=50.0)


def test_nic_rates_set_only_their_nics():
    slots, util = utilization_from_rates(_layout(), np.array([4, 5]), np.array([40.0, 20.0]), np.array([10.0, 30.0]))
    got = dict(zip(slots.tolist(), util.tolist(), strict=True))
    assert got == pytest.approx({4: 0.8, 5: 0.6})
    # the NICs' bytes are the jobs' own traffic: never put on the leaf's uplinks as competing traffic
    assert not {0, 1, 2, 3} & set(got)


def test_direct_uplink_counters_set_their_uplink():
    slots, util = utilization_from_rates(_layout(), np.array([4, 1]), np.array([40.0, 90.0]), np.array([0.0, 10.0]))
    got = dict(zip(slots.tolist(), util.tolist(), strict=True))
    assert got == pytest.approx({4: 0.8, 1: 0.9})


def test_utilization_clipped_and_change_threshold():
    s = LinkHealth.healthy(3)
    s, moved = apply_utilization(s, np.array([0, 1]), np.array([2.0, 0.001]), 5.0, min_change=0.01)
    assert moved.tolist() == [0]
    assert s.utilization[0] == 1.0 and s.utilization[1] == 0.0
    assert s.changed_time_s[0] == 5.0 and s.impaired().tolist() == [True, False, False]
