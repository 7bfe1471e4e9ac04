"""Protobuf ↔ fabric objects (adapters/codec.py) and link-id ↔ slot mapping (adapters/topology.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from twin.core.facility import build_inventory, load_facility_spec
from twin.fabric.adapters import codec
from twin.fabric.adapters.topology import LinkIndex, UnknownLink, core_link_state, fabric_topology
from twin.fabric.domain import COLLECTIVES
from twin.fabric.domain import link_health as lh
from twin.fabric.simulation import InvalidArgument
from twin.fabric.v1 import fabric_pb2 as pb
from twin.telemetry.v1 import telemetry_pb2 as tpb


@pytest.fixture(scope="module")
def index() -> LinkIndex:
    return LinkIndex(build_inventory(load_facility_spec("dgx-h100-su")))


def test_every_collective_enum_maps_to_the_core_name_and_back():
    for value in pb.Collective.values():
        if value == pb.COLLECTIVE_UNSPECIFIED:
            continue
        code = codec.collective_code(value)
        assert COLLECTIVES[code] == pb.Collective.Name(value).removeprefix("COLLECTIVE_").lower()
        assert codec.collective_enum(code) == value


def test_unspecified_and_unknown_collectives_name_the_field():
    with pytest.raises(InvalidArgument) as err:
        codec.collective_code(pb.COLLECTIVE_UNSPECIFIED)
    assert err.value.field == "collective"
    with pytest.raises(InvalidArgument) as err:
        codec.collective_codes([1, 2, 99])
    assert err.value.field == "collectives[2]"


def test_placement_selectors():
    assert codec.placement_request(pb.Placement(ranks=pb.RankCount(n_ranks=4))).policy == "pack"
    spread = codec.placement_request(pb.Placement(ranks=pb.RankCount(n_ranks=4, policy=pb.PACKING_POLICY_SPREAD)))
    assert (spread.n_ranks, spread.policy) == (4, "spread")
    assert codec.placement_request(pb.Placement(gpus=pb.GpuList(gpu_ids=[3, 1]))).gpu_ids == (3, 1)
    assert codec.placement_request(pb.Placement(job_id="j")).job_id == "j"
    assert codec.placement_request(pb.Placement(), required=False) is None
    with pytest.raises(InvalidArgument) as err:
        codec.placement_request(pb.Placement(), field="placement")
    assert err.value.field == "placement"


def test_link_event_time_falls_back_to_the_envelope():
    msg = codec.link_event_proto("leaf-r0-g0/spine1", lh.KIND_DEGRADED, 0.25, time_s=1_700_000_000.5)
    ev = codec.link_event(pb.LinkEvent.FromString(msg.SerializeToString()))
    assert (ev.link_id, ev.kind, ev.capacity_fraction, ev.time_s) == ("leaf-r0-g0/spine1", lh.KIND_DEGRADED, 0.25,
                                                                       1_700_000_000.5)
    fallback = datetime(2026, 1, 1, tzinfo=UTC)
    ev = codec.link_event(pb.LinkEvent(link_id="x", kind=pb.LINK_EVENT_KIND_UP), fallback)
    assert ev.time_s == fallback.timestamp() and ev.kind == lh.KIND_UP
    assert codec.link_event(pb.LinkEvent(link_id="x")).kind == 0  # UNSPECIFIED → invalid for event_errors


def test_port_samples_rejects_ragged_arrays():
    msg = tpb.TelemetrySamples()
    msg.batch.sample_time.FromSeconds(100)
    msg.batch.links.port_id.extend(["a/nic0", "a/nic1"])
    msg.batch.links.tx_bytes.extend([1, 2])
    msg.batch.links.rx_bytes.extend([1])
    with pytest.raises(InvalidArgument) as err:
        codec.port_samples(msg)
    assert err.value.field == "batch.links"
    msg.batch.links.rx_bytes.append(5)
    ps = codec.port_samples(msg)
    assert ps.port_ids == ["a/nic0", "a/nic1"] and ps.rx_bytes.tolist() == [1.0, 5.0] and ps.time_s == 100.0


def test_fabric_state_lists_impaired_links_first_and_truncates(index):
    health = lh.LinkHealth.healthy(index.n_links)
    health, _ = lh.apply_link_events(health, np.array([5, 7]), np.array([lh.KIND_DOWN, lh.KIND_DEGRADED]),
                                     np.array([0.0, 0.5]), np.array([10.0, 11.0]))
    health, _ = lh.apply_utilization(health, np.array([1, 2]), np.array([0.2, 0.9]), 12.0)
    msg = codec.fabric_state("su-h100", 20.0, health, index.link_id)
    assert [link.link_id for link in msg.links] == [index.link_id(s) for s in (5, 7, 2, 1)]
    assert (msg.links_down, msg.links_degraded, msg.links_flapping, msg.truncated) == (1, 1, 0, False)
    assert msg.links[0].changed_time.seconds == 10
    short = codec.fabric_state("su-h100", 20.0, health, index.link_id, max_links=2)
    assert len(short.links) == 2 and short.truncated
    round_trip = pb.FabricState.FromString(msg.SerializeToString())
    assert round_trip == msg


def test_link_ids_round_trip_through_slots(index):
    assert index.n_uplinks == 8 * 16 and index.n_nics == 32 * 8
    for slot in (0, 17, index.n_uplinks - 1, index.n_uplinks, index.n_links - 1):
        link_id = index.link_id(slot)
        assert index.slots(link_id).tolist() == [slot]
    assert index.link_id(0) == "leaf-r0-g0/spine0"
    assert index.link_id(index.n_uplinks + 9) == "su1-0000-n01/nic1"
    assert index.slots("leaf-r3-g0").tolist() == list(range(3 * 16, 4 * 16))  # a leaf switch: all its uplinks
    assert index.slots("spine2").tolist() == [leaf * 16 + 2 for leaf in range(8)]
    for bad in ("leaf-r8-g0/spine0", "leaf-r0-g1/spine0", "leaf-r0-g0/spine16", "spine16", "su1-0000-n00/nic8",
                "nope-n00/nic0", "garbage"):
        with pytest.raises(UnknownLink):
            index.slots(bad)
    with pytest.raises(UnknownLink):
        index.port_slot("spine2")  # a switch is not a counter port


def test_core_link_state_maps_uplinks_and_nics(index):
    topo = fabric_topology(index.inventory)
    health = lh.LinkHealth.healthy(index.n_links)
    nic_slot = index.slots("su1-0000-n01/nic3")[0]
    health, _ = lh.apply_link_events(health, np.array([16 + 2, nic_slot]), np.array([lh.KIND_DOWN, lh.KIND_FLAPPING]),
                                     np.zeros(2), np.ones(2))
    state = core_link_state(index, topo, health)
    assert state.uplink_capacity.shape == (8, 16)
    assert state.uplink_capacity[1, 2] == 0.0 and state.uplink_capacity.sum() == 8 * 16 - 1
    gpu = 8 * 1 + 3  # node 1, local GPU 3 uses NIC 3
    assert state.nic_health[gpu] == lh.FLAP_CAPACITY_FACTOR and state.nic_health.sum() == 256 - 0.5
