"""Regression: one of a leaf's two uplinks down on the GB200 NVL72 hall at 4:1 (the e2e `spine-failure` scenario)
must give the same finite answer whatever the NIC counters said and in whatever order events and counter samples
arrive. Before the fix the NIC counters (the jobs' own traffic) were spread onto the leaf's uplinks as competing
traffic: a communication-phase sample (NICs at 85 % of line rate, facility-sim's PHASE_ACTIVITY) put a 4:1 leaf's
uplinks above 100 %, clipped to 1, and the core answered infinity, healthy or not; a compute-phase sample (3 %)
left them idle. Which sample came last decided the answer."""

from __future__ import annotations

import asyncio
import itertools
import math

import numpy as np
import pytest
import yaml

from twin.core.facility import build_inventory, load_facility_spec
from twin.core.facility.spec import PRESETS_DIR
from twin.fabric.adapters.repository import InMemoryStateStore
from twin.fabric.adapters.topology import LinkIndex, fabric_topology
from twin.fabric.domain import estimate, placement_from_gpu_ids
from twin.fabric.domain.link_health import KIND_DOWN, KIND_UP
from twin.fabric.live_state import LiveFabricState

LINK = "leaf-r0-g0/spine0"
COMM_SHARE, COMPUTE_SHARE = 0.85, 0.03  # facility-sim's node_comm in its communication / compute phases


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    spec = yaml.safe_load((PRESETS_DIR / "gb200-nvl72-hall.yaml").read_text())
    spec["fabric"].update(spines=2, oversubscription=4.0)  # as tests/e2e/test_scenarios.py runs it
    path = tmp_path_factory.mktemp("hall") / "hall.yaml"
    path.write_text(yaml.safe_dump(spec))
    inv = build_inventory(load_facility_spec(str(path)))
    return LinkIndex(inv), fabric_topology(inv), spec["fabric"]["nic_gbps"] * 1e9 / 8


def _jobs(topo):
    rack = topo.scale_up.gpus_per_domain
    return {"ar-2racks": ("all_reduce", 1 << 28, np.arange(2 * rack)),
            "a2a-4racks": ("alltoall", 1 << 28, np.arange(4 * rack)),
            "ar-8racks": ("all_reduce", 1 << 30, np.arange(8 * rack))}


def _times(live: LiveFabricState, topo) -> dict[str, float]:
    ls = live.snapshot().link_state
    return {k: float(estimate(topo, c, s, placement_from_gpu_ids(topo, ids, ls)).time_s)
            for k, (c, s, ids) in _jobs(topo).items()}


def _run(hall, steps) -> dict[str, float]:
    index, topo, nic_Bps = hall
    live = LiveFabricState("hall", index, topo, InMemoryStateStore())
    nics = np.arange(index.n_uplinks, index.n_links)[index.nic_exists]
    total = np.zeros(nics.size)

    async def go():
        nonlocal total
        for kind, arg in steps:
            if kind == "counters":  # one sampling interval of 1 s at this share of line rate, times t, t + 1
                t0, share = arg
                await live.apply_counters(nics, total, total, np.full(nics.size, t0))
                total = total + nic_Bps * share
                await live.apply_counters(nics, total, total, np.full(nics.size, t0 + 1.0))
            else:
                t, what = arg
                await live.apply_events(index.slots(LINK), np.array([what]), np.array([0.0]), np.array([t]))
        return _times(live, topo)

    return asyncio.run(go())


def test_healthy_answer_ignores_the_jobs_own_nic_traffic(hall):
    idle = _run(hall, [])
    busy = _run(hall, [("counters", (100.0, COMM_SHARE))])
    assert all(math.isfinite(v) for v in busy.values()), busy
    assert busy == idle


def test_one_uplink_down_gives_one_finite_answer_in_any_order(hall):
    down = ("event", (150.0, KIND_DOWN))
    answers = []
    for last in (COMPUTE_SHARE, COMM_SHARE):  # the newest counter sample caught a compute or a communication phase
        samples = [("counters", (100.0, COMPUTE_SHARE)), ("counters", (200.0, COMM_SHARE)),
                   ("counters", (300.0, last))]
        answers += [_run(hall, list(order)) for order in itertools.permutations([down, *samples])]
    first = answers[0]
    assert all(math.isfinite(v) for v in first.values()), first
    assert all(a == first for a in answers)
    healthy = _run(hall, [])
    assert all(first[k] >= healthy[k] for k in first)  # a lost uplink never speeds a job up
    assert first["a2a-4racks"] > healthy["a2a-4racks"]  # alltoall puts all its nodes' traffic on the uplinks


def test_a_later_up_restores_the_healthy_answer_exactly(hall):
    healthy = _run(hall, [("counters", (100.0, COMM_SHARE))])
    restored = _run(hall, [("event", (150.0, KIND_DOWN)), ("counters", (200.0, COMM_SHARE)),
                           ("event", (250.0, KIND_UP))])
    assert restored == healthy
