"""Power model: energy closes at every stage, caps hold, activity (not utilization) drives power,
aggregation, redundancy and failures over the facility presets."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core.facility import load_facility_spec
from twin.power.domain import Stage, apply_chain, evaluate, gpu_power, rack_power, site_tick, what_if_failure
from twin.power.domain.network import FEED, PDU, TRANSFORMER, UPS
from twin.power.domain.tick import what_if_power_cap
from twin.power.site import build_site_model, gpu_params_for_model

RNG = np.random.default_rng(9)
STAGES = (
    Stage("dc-dc", "affine", constant_w=13.0, efficiency=0.98),
    Stage("rectifier", "affine", units=32, constant_w=17.0, efficiency=0.96),
    Stage("psu", "curve", units=6, rated_w=3300.0, load_points=(0.1, 0.2, 0.5, 1.0),
          efficiency_points=(0.90, 0.94, 0.96, 0.91)),
    Stage("ups", "loss_polynomial", rated_w=250e3, loss_coefficients=(0.0167, 0.0167, 0.0083)),
)


@pytest.fixture(scope="module")
def su():
    return build_site_model(load_facility_spec("dgx-h100-su"))


@pytest.fixture(scope="module")
def h100():
    return gpu_params_for_model(load_facility_spec("dgx-h100-su"), "H100-SXM")


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_stage_closes_energy_with_non_negative_loss(stage):
    out = np.r_[0.0, RNG.uniform(0, 2 * stage.units * stage.rated_w, 1000)]
    r = apply_chain(out, (stage,))
    assert np.allclose(r.input_w, r.output_w + r.stage_loss_w[0])
    assert (r.stage_loss_w[0] >= 0).all()


def test_chain_closes_stage_by_stage():
    r = apply_chain(RNG.uniform(0, 5e4, 100), STAGES)
    assert np.allclose(r.input_w - r.output_w, np.sum(r.stage_loss_w, axis=0))
    assert all((loss >= 0).all() for loss in r.stage_loss_w)


def test_bad_stages_are_refused():
    with pytest.raises(ValueError, match="efficiency"):
        Stage("x", "affine", efficiency=1.2)
    with pytest.raises(ValueError, match="non-negative"):
        Stage("x", "loss_polynomial", loss_coefficients=(-0.1, 0.0, 0.0))


def test_rack_and_site_close_energy(su):
    n = len(su.gpu.max_clock_mhz)
    st = site_tick(su.gpu, su.layout, su.network, tensor_active=RNG.uniform(0, 1, n), sm_active=RNG.uniform(0, 1, n),
                   dram_active=RNG.uniform(0, 1, n), cpu_util=0.5)
    r = st.racks
    assert np.allclose(r.node_input_w, r.node_dc_w + r.node_loss_w) and (r.node_loss_w >= 0).all()
    assert np.allclose(r.rack_input_w, r.rack_dc_w + r.rack_loss_w) and (r.rack_loss_w >= 0).all()
    c = st.chain
    assert np.allclose(c.comp_input_w, c.comp_output_w + c.comp_loss_w) and (c.comp_loss_w >= -1e-9).all()
    # site import = IT + every chain loss (no fixed loads on this preset)
    assert c.site_w == pytest.approx(c.it_w + c.comp_loss_w.sum() + c.facility_loss_w, rel=1e-12)
    assert 1.0 < c.pue < 1.2


def test_power_never_exceeds_the_cap(h100):
    n = 5000
    caps = RNG.uniform(100, 800, n)
    g = gpu_power(h100, tensor_active=RNG.uniform(0, 1, n), sm_active=RNG.uniform(0, 1, n),
                  dram_active=RNG.uniform(0, 1, n), power_limit_w=caps)
    assert (g.power_w <= np.maximum(caps, h100.min_cap_w) + 1e-9).all()
    assert (g.sm_clock_mhz <= 1980 + 1e-9).all() and (g.sm_clock_mhz >= 345 - 1e-9).all()
    assert ((g.throughput_fraction > 0) & (g.throughput_fraction <= 1 + 1e-12)).all()


def test_at_the_limit_the_clock_drops_instead_of_power_rising(h100):
    caps = np.array([700.0, 500.0, 300.0])
    g = gpu_power(h100, tensor_active=np.ones(3), sm_active=np.ones(3), dram_active=np.full(3, 0.1), power_limit_w=caps)
    assert np.allclose(g.power_w, caps) and g.power_capped.all()
    assert (np.diff(g.sm_clock_mhz) < 0).all() and g.sm_clock_mhz[0] < 1980
    assert (np.diff(g.throughput_fraction) < 0).all()


def test_memory_bound_draws_far_less_than_dense_at_the_same_utilization(h100):
    # both read ~100 % NVML utilization; only the activity mix differs
    dense = gpu_power(h100, tensor_active=np.array([0.9]), sm_active=np.array([1.0]), dram_active=np.array([0.1]))
    copy = gpu_power(h100, tensor_active=np.array([0.0]), sm_active=np.array([1.0]), dram_active=np.array([0.9]))
    assert dense.power_w[0] == pytest.approx(700.0)
    assert 0.4 < copy.power_w[0] / dense.power_w[0] < 0.65     # "about half" (DESIGN §8)
    assert copy.sm_clock_mhz[0] == 1980 and not copy.power_capped[0]


def test_idle_power_follows_the_clock(h100):
    g = gpu_power(h100, tensor_active=np.zeros(2), sm_active=np.zeros(2), dram_active=np.zeros(2),
                  requested_clock_mhz=np.array([1980.0, 345.0]))
    assert g.power_w[0] == pytest.approx(120.0) and 60.0 < g.power_w[1] < 61.0


def test_aggregation_sums_racks_into_pdus_and_up(su):
    net = su.network
    rack_w = np.full(net.n_racks, 30e3)
    c = evaluate(net, rack_w)
    pdus = net.of_kind(PDU)
    assert c.comp_output_w[pdus].sum() == pytest.approx(rack_w.sum())
    ups = net.of_kind(UPS)
    assert np.allclose(c.comp_output_w[ups], c.comp_output_w[ups].mean())  # one N+1 bus shares equally
    assert c.comp_output_w[ups].sum() == pytest.approx(c.comp_input_w[pdus].sum())
    # N+1 bus of three: losing one partner adds half of a member's load to each survivor
    assert np.allclose(c.load_if_partner_fails_w[ups], 1.5 * c.comp_output_w[ups])
    assert np.allclose(c.comp_headroom_w, net.comp_rating_w - c.comp_output_w)


def test_ups_failure_moves_load_to_the_partners(su):
    net = su.network
    rack_w = np.full(net.n_racks, 30e3)
    fi = what_if_failure(net, rack_w, ["ups-1"])
    i1, i2, i3 = (net.index_of(u) for u in ("ups-1", "ups-2", "ups-3"))
    assert fi.after.comp_output_w[i1] == 0 and not fi.after.comp_alive[i1]
    assert fi.moved_w[i2] == pytest.approx(fi.before.comp_output_w[i1] / 2)
    assert fi.after.comp_output_w[i2] == pytest.approx(fi.before.load_if_partner_fails_w[i2])
    assert len(fi.racks_lost) == 0 and len(fi.over_rating) == 0
    # heavier load: the survivors go over their 250 kW rating, and the twin names them
    fi = what_if_failure(net, np.full(net.n_racks, 65e3), ["ups-1"])  # 520 kW on two 250 kW units
    assert {net.comp_ids[i] for i in fi.over_rating} >= {"ups-2", "ups-3"}
    # every UPS gone: every rack loses power
    fi = what_if_failure(net, rack_w, ["ups-1", "ups-2", "ups-3"])
    assert len(fi.racks_lost) == net.n_racks and fi.after.site_w == pytest.approx(
        fi.after.comp_loss_w.sum() + fi.after.facility_loss_w)


def test_dual_corded_racks_move_to_the_b_side():
    import yaml

    from twin.core.facility import FacilitySpec
    from twin.core.facility.spec import PRESETS_DIR

    d = yaml.safe_load((PRESETS_DIR / "dgx-h100-su.yaml").read_text())
    d["power"] = {"utility_feeds": [{"id": "feed-a", "capacity_mw": 1}, {"id": "feed-b", "capacity_mw": 1}],
                  "topology": {
                      "transformers": [{"id": "tx-a", "rating_kva": 1000, "no_load_loss_w": 1000, "load_loss_w": 8000,
                                        "inputs": ["feed-a"]},
                                       {"id": "tx-b", "rating_kva": 1000, "no_load_loss_w": 1000, "load_loss_w": 8000,
                                        "inputs": ["feed-b"]}],
                      "ups": [{"id": f"ups-{s}", "rating_kw": 500, "inputs": [f"tx-{s}"],
                               "efficiency": {"name": "ups", "kind": "curve", "rated_w": 500000,
                                              "load_points": [0.25, 0.5, 1.0], "efficiency_points": [0.94, 0.96, 0.96]}}
                              for s in "ab"],
                      "ups_groups": [{"id": "bus-a", "redundancy": "2N", "members": ["ups-a"]},
                                     {"id": "bus-b", "redundancy": "2N", "members": ["ups-b"]}],
                      "pdus": [{"id": f"pdu-{s}", "rating_kw": 400, "inputs": [f"bus-{s}"], "racks": ["row:su1"]}
                               for s in "ab"]}}
    m = build_site_model(FacilitySpec.model_validate(d))
    net = m.network
    rack_w = np.full(net.n_racks, 35e3)
    c = evaluate(net, rack_w)
    a, b = net.index_of("pdu-a"), net.index_of("pdu-b")
    assert c.comp_output_w[a] == pytest.approx(rack_w.sum() / 2) == pytest.approx(c.comp_output_w[b])
    assert c.load_if_partner_fails_w[a] == pytest.approx(rack_w.sum())
    fi = what_if_failure(net, rack_w, ["tx-a"])
    assert fi.after.comp_output_w[b] == pytest.approx(rack_w.sum()) and len(fi.racks_lost) == 0
    assert not fi.after.comp_alive[net.index_of("ups-a")]          # lost its only input
    assert [net.comp_ids[i] for i in fi.over_rating] == []


def test_power_cap_what_if_saves_power_and_costs_throughput(su):
    n = len(su.gpu.max_clock_mhz)
    kw = {"tensor_active": np.full(n, 0.9), "sm_active": np.ones(n), "dram_active": np.full(n, 0.1)}
    r = what_if_power_cap(su.gpu, su.layout, su.network, np.arange(32), 400.0, **kw)
    assert r.gpu_saved_w == pytest.approx(32 * 300.0)
    assert r.site_saved_w > r.gpu_saved_w          # conversion losses saved too
    assert (r.clock_after_mhz < r.clock_before_mhz).all() and 0 < r.throughput_cost < 0.5
    from twin.power.domain import gpus_of_racks

    rack2 = gpus_of_racks(su.layout, np.array([2]))
    assert list(rack2) == list(range(64, 96))           # rack su1-0002: nodes 8..11, GPUs 64..95
    by_rack = what_if_power_cap(su.gpu, su.layout, su.network, rack2, 400.0, **kw)
    assert by_rack.gpu_saved_w == pytest.approx(r.gpu_saved_w)
    below_min = what_if_power_cap(su.gpu, su.layout, su.network, np.arange(8), 50.0, **kw)
    assert below_min.gpu_saved_w == pytest.approx(8 * 500.0)   # raised to the 200 W minimum cap
    with pytest.raises(ValueError, match="out of range"):
        what_if_power_cap(su.gpu, su.layout, su.network, np.array([n]), 400.0, **kw)


def test_measured_power_wins_and_the_model_fills_gaps(su):
    n = len(su.gpu.max_clock_mhz)
    meas = np.full(n, np.nan)
    meas[:8] = 650.0
    racks = np.full(su.network.n_racks, np.nan)
    racks[1] = 99e3
    st = site_tick(su.gpu, su.layout, su.network, tensor_active=np.zeros(n), sm_active=np.zeros(n),
                   dram_active=np.zeros(n), measured_gpu_w=meas, measured_rack_w=racks)
    assert (st.gpu_w[:8] == 650.0).all() and st.gpu_modelled[8:].all() and not st.gpu_modelled[:8].any()
    assert st.rack_w[1] == 99e3 and st.rack_modelled[0] and not st.rack_modelled[1]
    assert list(st.suspect_racks(0.10)) == [1]


def test_rack_power_uses_node_breakdown():
    spec = load_facility_spec("dgx-h100-su")
    m = build_site_model(spec)
    r = rack_power(m.layout, np.full(len(m.gpu.max_clock_mhz), 700.0), 1.0)
    assert r.node_dc_w[0] == pytest.approx(8 * 700 + 3000)
    assert r.node_input_w[0] < spec.node_types["dgx-h100"].max_w   # within the 10.2 kW rating


def test_n_minus_1_follows_failures_through_the_chain(su):
    from dataclasses import replace

    from twin.power.domain import n_minus_1

    net = su.network
    rack_w = np.full(net.n_racks, 33e3)              # 264 kW on a bus of three 250 kW units
    base = evaluate(net, rack_w)
    c = n_minus_1(net, rack_w)
    t1, t2 = net.index_of("tx-1"), net.index_of("tx-2")
    # generated chain: every UPS dual-fed from tx-1 and tx-2; losing one transformer doubles the other
    assert c.worst_failure[t2] == "tx-1" and c.worst_output_w[t2] == pytest.approx(2 * base.comp_output_w[t2], rel=0.01)
    u2 = net.index_of("ups-2")
    assert c.worst_output_w[u2] == pytest.approx(1.5 * base.comp_output_w[u2])
    assert list(c.over_rating(net)) == [] and c.racks_lost_by == {}
    # single-fed UPS units (ups-1 on tx-1, ups-2 on tx-2, ups-3 on tx-1): a tx-1 failure takes two
    # units with it, ups-2 carries the whole bus, above its rating; the partner estimate alone misses it
    single = np.array([p if ch != net.index_of("ups-1") and ch != net.index_of("ups-3") or p == t1 else -1
                       for ch, p in zip(net.edge_child, net.edge_parent, strict=True)])
    single = np.where((net.edge_child == u2) & (net.edge_parent == t1), -1, single)
    keep = single >= 0
    net1 = replace(net, edge_child=net.edge_child[keep], edge_parent=net.edge_parent[keep])
    c1 = n_minus_1(net1, rack_w)
    assert c1.worst_failure[u2] in ("tx-1", "feed-a") and c1.worst_output_w[u2] == pytest.approx(264e3, rel=0.01)
    assert u2 in c1.over_rating(net1)
    assert evaluate(net1, rack_w).load_if_partner_fails_w[u2] < 250e3


def test_gb200_preset_2n_chain_survives_any_single_failure_at_full_load():
    from twin.power.domain import n_minus_1

    m = build_site_model(load_facility_spec("gb200-nvl72-hall"))
    n = len(m.gpu.max_clock_mhz)
    st = site_tick(m.gpu, m.layout, m.network, tensor_active=np.ones(n), sm_active=np.ones(n),
                   dram_active=np.full(n, 0.2))
    net = m.network
    assert np.bincount(net.rack_edge_rack).tolist() == [2] * net.n_racks          # every rack A/B
    c = n_minus_1(net, st.rack_w, fail_kinds=(PDU, UPS, TRANSFORMER, FEED))
    assert list(c.over_rating(net)) == [] and c.racks_lost_by == {}
    a, b = net.index_of("bus-a"), net.index_of("bus-b")
    assert c.worst_output_w[a] == pytest.approx(2 * st.chain.comp_output_w[a], rel=1e-6)
    assert st.chain.comp_output_w[a] == pytest.approx(st.chain.comp_output_w[b])
