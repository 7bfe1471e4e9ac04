"""Assumed link states for one request (adapters/assumed.py): applied to a copy of the live health (capacity and
flapping replaced, utilization kept; leaf and spine ids expand like a LinkEvent's; a later entry wins), the live
snapshot untouched, the view equal to the live one once the same event is really applied, and bad entries named.
Over real gRPC: tests/integration/test_fabric_assumed_links.py."""

from __future__ import annotations

import asyncio
import math
from unittest import mock

import numpy as np
import pytest

from tests.facilities import small_leaf_facility
from twin.core.rpc import InvalidArgument
from twin.fabric.adapters.assumed import assumed_health, assumed_view
from twin.fabric.adapters.repository import InMemoryStateStore
from twin.fabric.app import FabricApp, FabricConfig
from twin.fabric.domain.link_health import KIND_DOWN, KIND_UP
from twin.fabric.v1 import fabric_pb2 as pb

UPLINK = "leaf-r0-g0/spine1"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> FabricApp:
    path = small_leaf_facility(tmp_path_factory.mktemp("facility"))
    app = FabricApp(FabricConfig(facility=str(path), consume=False))
    # no gRPC server: grpc.aio would need a current event loop, which earlier tests in the suite may have cleared
    with mock.patch("twin.fabric.app.fabric_grpc_server", lambda *a, **k: None):
        app.build(InMemoryStateStore())
    return app


def test_assumed_links_replace_capacity_and_flapping_of_the_named_slots_only(app) -> None:
    live = app.live
    index = live.index
    base = live.snapshot().health
    got = assumed_health(base, index, [pb.LinkHealth(link_id="leaf-r1-g2", capacity_fraction=0.5, utilization=0.9),
                                       pb.LinkHealth(link_id="leaf-r1-g2/spine3", capacity_fraction=0.0,
                                                     flapping=True)])
    leaf = index.slots("leaf-r1-g2")
    one = index.slots("leaf-r1-g2/spine3")
    assert leaf.size == 4 and set(one) <= set(leaf)
    others = np.setdiff1d(leaf, one)
    assert (got.capacity_fraction[others] == 0.5).all() and not got.flapping[others].any()
    assert got.capacity_fraction[one][0] == 0.0 and got.flapping[one][0], "the later entry wins"
    rest = np.setdiff1d(np.arange(base.n_links), leaf)
    assert (got.capacity_fraction[rest] == base.capacity_fraction[rest]).all()
    assert got.utilization is base.utilization, "utilization stays live"
    assert (base.capacity_fraction == 1.0).all(), "the live health untouched"


def test_the_assumed_view_equals_the_live_view_once_the_link_is_really_down(app) -> None:
    live = app.live
    v0 = live.snapshot().version
    down = pb.LinkHealth(link_id=UPLINK, capacity_fraction=0.0)
    view = assumed_view(live, [down])
    assert view.version == v0 and live.snapshot().version == v0
    assert view.link_state.uplink_capacity.min() == 0.0
    assert live.snapshot().link_state.uplink_capacity.min() == 1.0, "the live state untouched"
    assert assumed_view(live, [pb.LinkHealth(link_id=UPLINK, capacity_fraction=1.0)]).link_state \
        is live.snapshot().link_state, "an assumption equal to the live state: the live view"
    asyncio.run(live.apply_events(index_of(live, UPLINK), np.array([KIND_DOWN]), np.array([0.0]),
                                  np.array([1.0])))
    try:
        real = live.snapshot().link_state
        for name in ("uplink_capacity", "uplink_utilization", "nic_health"):
            assert np.array_equal(getattr(view.link_state, name), getattr(real, name)), name
    finally:
        asyncio.run(live.apply_events(index_of(live, UPLINK), np.array([KIND_UP]), np.array([1.0]), np.array([2.0])))
    assert live.snapshot().link_state.uplink_capacity.min() == 1.0


def index_of(live, link_id: str) -> np.ndarray:
    return live.index.slots(link_id)


@pytest.mark.parametrize("links, field", [
    ([pb.LinkHealth(link_id=UPLINK), pb.LinkHealth(link_id="leaf-r0-g9/spine1")], "assumed_links[1].link_id"),
    ([pb.LinkHealth(link_id="nope")], "assumed_links[0].link_id"),
    ([pb.LinkHealth(link_id="")], "assumed_links[0].link_id"),
    ([pb.LinkHealth(link_id=UPLINK, capacity_fraction=-0.1)], "assumed_links[0].capacity_fraction"),
    ([pb.LinkHealth(link_id=UPLINK, capacity_fraction=1.5)], "assumed_links[0].capacity_fraction"),
    ([pb.LinkHealth(link_id=UPLINK, capacity_fraction=math.inf)], "assumed_links[0].capacity_fraction"),
    ([pb.LinkHealth(link_id=UPLINK, capacity_fraction=math.nan)], "assumed_links[0].capacity_fraction"),
])
def test_bad_entries_are_named(app, links, field) -> None:
    with pytest.raises(InvalidArgument) as err:
        assumed_view(app.live, links)
    assert err.value.field == field, str(err.value)
