"""The job twin's status line says so when another jobs process shares its consumer group: until the twin scales
out (services/jobs/README.md, "Still to do"), each process of such a pair sees only part of the site."""

from __future__ import annotations

from twin.core.kafka import ConsumerStats
from twin.jobs.app import JobsApp, JobsConfig


def _app(assigned: frozenset[int], partitions: int) -> JobsApp:
    stats = ConsumerStats()
    stats.assigned, stats.topic_partitions = assigned, partitions
    return JobsApp(config=JobsConfig(consume=False), events_stats=stats)


def test_a_process_holding_every_partition_has_no_warning():
    app = _app(frozenset(range(6)), 6)
    assert app.membership_warning() == ""
    assert "WARNING" not in app.status_line()


def test_before_the_first_assignment_nothing_is_claimed():
    assert _app(frozenset(), 0).membership_warning() == ""


def test_a_process_holding_some_partitions_says_another_shares_its_group():
    app = _app(frozenset({0, 2, 4}), 6)
    warning = app.membership_warning()
    assert "holds 3 of 6 jobs.events.v1 partitions" in warning
    assert "one jobs process per site" in warning
    assert warning in app.status_line()
