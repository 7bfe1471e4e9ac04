"""A Simple tree across NVLink domains fills its pipeline by store and forward of one chunk (``TREE_SIMPLE_CHUNK_
STEPS``: NCCL's tree runs ProtoSimple<1, 1>, one step per chunk, and each hop waits for a chunk before posting it on),
so its fill is one chunk's time on every hop but the slowest, and the chunk is NCCL_BUFFSIZE / NCCL_STEPS: set by the
network's ``nccl_buffsize_bytes`` (aws-ofi-nccl sets 8 MiB on EFA only from v1.16.0). The validation report reads
the NCCL_BUFFSIZE a row ran with from what it states.

Expected values are rebuilt from NCCL's constants and the topology, not from measurements.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from twin.fabric.domain import estimate, placement_packed
from twin.fabric.domain.collectives import (
    NCCL_BUFFSIZE_BY_TRANSPORT,
    NCCL_BUFFSIZE_BYTES,
    NCCL_STEPS,
    _topo_constants,
)
from twin.fabric.domain.systems import place_row
from twin.fabric.domain.topology import ScaleOut
from twin.fabric.validate import stated_buffsize


def _p4de(n_gpus: int = 16):
    placed, reason = place_row("AWS p4de.24xlarge (8xA100-80GB each)", "NVLink3 + EFA 4x100G (400 Gb/s/node)", n_gpus,
                               n_gpus // 8)
    assert placed is not None, reason
    return placed.topology


def _tree_simple(topo, n_ranks: int, size: float, **kw):
    est = estimate(topo, "all_reduce", size, placement_packed(topo, n_ranks), algorithms=("tree",),
                   protocols=("Simple",), **kw)
    assert est.algorithm_names() == "tree" and est.protocol_names() == "Simple"
    return float(est.latency_s) * 1e6


def _full_chunk_fill_us(topo, n_ranks: int, chunk: float | None = None) -> float:
    """One chunk (buffsize / NCCL_STEPS unless given) up and down the chain: 2 x (ranks per domain - 1) NVLink hops at
    a channel's share of the GPU's NVLink and 2 x log2(domains) network hops at a channel's share of the domain's
    NICs, the slowest hop left to the bandwidth term."""
    k = _topo_constants(topo)
    domains = n_ranks // topo.gpus_per_node
    chain = n_ranks // domains - 1
    chunk = k.buffsize / NCCL_STEPS if chunk is None else chunk
    t_nvl = chunk * k.n_channels / (k.b_nvl * 1e3)
    t_net = chunk * k.n_channels / (topo.gpus_per_node * k.b_nic_nom * 1e3)
    return 2 * chain * t_nvl + 2 * math.log2(domains) * t_net - max(t_nvl, t_net)


@pytest.mark.parametrize("n_ranks", [16, 32])
def test_fill_is_one_chunk_per_hop_once_every_channel_has_a_full_chunk(n_ranks):
    """Above channels x chunk the fill stops growing (a sqrt(pipe x S/B) fill would keep growing with the size),
    and it is the store-and-forward of one full chunk, rebuilt from the constants."""
    topo = _p4de(n_ranks)
    small = _tree_simple(topo, n_ranks, 8.0)
    for size in (256 * 2**20, 2**30, 8 * 2**30):
        assert _tree_simple(topo, n_ranks, size) - small == pytest.approx(_full_chunk_fill_us(topo, n_ranks), rel=1e-3)


def test_the_chunk_follows_the_networks_nccl_buffsize():
    """EFA's default is the plugin's 8 MiB; a network whose jobs run with NCCL's default 4 MiB fills in half the
    time (the fill is linear in the chunk)."""
    topo = _p4de()
    assert topo.scale_out.kind == "efa" and topo.scale_out.nccl_buffsize_bytes is None
    assert _topo_constants(topo).buffsize == NCCL_BUFFSIZE_BY_TRANSPORT["efa"] == 8 * 2**20
    old = replace(topo, scale_out=replace(topo.scale_out, nccl_buffsize_bytes=NCCL_BUFFSIZE_BYTES))
    assert _topo_constants(old).buffsize == 4 * 2**20
    fill = {t.scale_out.nccl_buffsize_bytes: _tree_simple(t, 16, 2**30) - _tree_simple(t, 16, 8.0) for t in (topo, old)}
    assert fill[NCCL_BUFFSIZE_BYTES] == pytest.approx(fill[None] / 2.0, rel=1e-3)


def test_one_domain_keeps_its_fill():
    """Inside one NVLink domain nothing changes with the network's buffer size (no network hop)."""
    topo = _p4de()
    old = replace(topo, scale_out=replace(topo.scale_out, nccl_buffsize_bytes=NCCL_BUFFSIZE_BYTES))
    assert _tree_simple(topo, 8, 2**30) == _tree_simple(old, 8, 2**30)


def test_buffsize_must_be_positive():
    with pytest.raises(ValueError, match="nccl_buffsize_bytes"):
        ScaleOut(nic_bw_Gbps=100.0, kind="efa", nccl_buffsize_bytes=0.0)


@pytest.mark.parametrize(("note", "transport", "expected"), [
    ("NCCL_BUFFSIZE=16777216 NCCL_ALGO=Ring", "roce", 16777216.0),   # stated: taken as is, any transport
    ("NCCL_BUFFSIZE=8388608; aws-ofi-nccl 1.8.1", "efa", 8388608.0),  # the setting wins over the plugin rule
    ("default aws-ofi-nccl 1.8.1 (EFA installer 1.31.0)", "efa", NCCL_BUFFSIZE_BYTES),  # before 1.16.0: NCCL's own
    ("aws-ofi-nccl v1.15.2", "efa", NCCL_BUFFSIZE_BYTES),
    ("aws-ofi-nccl 1.16.0", "efa", None),                             # the plugin sets 8 MiB: the transport default
    ("aws-ofi-nccl 1.8.1", "infiniband", None),                       # the plugin's rule is EFA's only
    ("nccl-tests out-of-place, float sum", "efa", None),              # nothing stated
])
def test_stated_buffsize(note, transport, expected):
    assert stated_buffsize(note, transport) == expected


def _nccl_219_tree_chunk(size: float, channels: float, depth: int, step: float) -> float:
    """NCCL v2.19.3 enqueue.cc computeColl, tree/Simple TreeUpDown, as written there (integer division)."""
    chunk = int(step)
    while int(size) // int(channels * chunk) < depth * 8 and chunk > 131072:
        chunk //= 2
    while int(size) // int(channels * chunk) < depth * 4 and chunk > 65536:
        chunk //= 2
    while int(size) // int(channels * chunk) < depth and chunk > 32768:
        chunk //= 2
    return float(chunk)


@pytest.mark.parametrize("size", [64 * 2**20, 256 * 2**20, 2**30, 8 * 2**30])
def test_nccl_before_2_20_shrinks_the_tree_chunk(size):
    """A caller on NCCL 2.19 gets 2.19's chunk rule (the chunk halved while a channel has few chunks, depth = 7 + 1
    on 2 nodes); 2.20 and later, and an unstated version, keep the full step."""
    topo = _p4de()
    k = _topo_constants(topo)
    old = _tree_simple(topo, 16, size, nccl_version="2.19.3") - _tree_simple(topo, 16, 8.0, nccl_version="2.19.3")
    chunk = _nccl_219_tree_chunk(size, k.n_channels, 7 + 1, k.buffsize / NCCL_STEPS)
    assert old == pytest.approx(_full_chunk_fill_us(topo, 16, chunk), rel=1e-3)
    assert _tree_simple(topo, 16, size, nccl_version="2.20.3") == _tree_simple(topo, 16, size)
    if chunk < k.buffsize / NCCL_STEPS:
        assert _tree_simple(topo, 16, size, nccl_version="2.19.3") < _tree_simple(topo, 16, size)


def test_a_facility_states_its_jobs_nccl_buffsize():
    """The facility spec's fabric.nccl_buffsize_bytes reaches the core topology (unset: the transport's default);
    a non-positive value is refused at load."""
    import pydantic

    from twin.core.facility import build_inventory, load_facility_spec
    from twin.fabric.adapters.topology import fabric_topology

    spec = load_facility_spec("dgx-h100-su")
    assert spec.fabric.nccl_buffsize_bytes is None
    assert fabric_topology(build_inventory(spec)).scale_out.nccl_buffsize_bytes is None
    stated = spec.model_copy(update={"fabric": spec.fabric.model_copy(update={"nccl_buffsize_bytes": 2 * 2**20})})
    topo = fabric_topology(build_inventory(stated))
    assert topo.scale_out.nccl_buffsize_bytes == 2 * 2**20 and _topo_constants(topo).buffsize == 2 * 2**20
    with pytest.raises(pydantic.ValidationError, match="nccl_buffsize_bytes"):
        type(spec.fabric).model_validate({**spec.fabric.model_dump(), "nccl_buffsize_bytes": 0})
