"""Fault injection, short version (bounded, loopback only): kill -9 ingest, fabric and the power, cooling and
jobs twins at random moments, take the dedicated PostgreSQL away and bring it back, a burst of bad records,
while the simulator produces. Then: every good batch stored exactly once, every bad record in the DLQ with a
reason, fabric's state equal to what its link events define, each twin's state equal to what a run without
faults computes from the same inputs (power's rack rows and site total, cooling's plant state for the last
tick, jobs' state of every job), no consumer left behind.
The longer run is bench/chaos.py (`make chaos`), which writes bench/results/chaos.json.
"""

from __future__ import annotations

import os

import pytest
from chaos_support import ChaosConfig, run_chaos

pytestmark = pytest.mark.timeout(900)


def test_services_recover_from_kills_database_outage_and_bad_burst(tmp_path):
    seed = int(os.environ.get("TWIN_CHAOS_SEED", "7"))
    cfg = ChaosConfig(duration_s=20.0, rate_hz=2.0, seed=seed, kills_per_service=1, db_outage_s=6.0, burst=40,
                      settle_timeout_s=120.0)
    result, logs = run_chaos(cfg, tmp_path)
    print(result.as_json())
    kinds = sorted(f.kind for f in result.faults)
    assert kinds == ["bad_burst", "db_outage", "kill9_cooling", "kill9_fabric", "kill9_ingest", "kill9_jobs",
                     "kill9_power"], kinds
    assert result.good > 0 and result.bad_expected >= cfg.burst
    assert result.problems() == [], f"{result.as_json()}\n{logs}"
    assert result.stored == result.good
    twins = result.twins
    assert twins["power"].detail["rack_ticks"] > 0 and twins["jobs"].detail["jobs"] > 0
    assert twins["cooling"].detail["plant_rows"] > 0
