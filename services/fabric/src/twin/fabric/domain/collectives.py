"""Collective-communication time model in the spirit of NCCL's own cost model (src/graph/tuning.cc).

For every (algorithm, protocol) the time is ``latency + size * seconds_per_byte`` and, as NCCL does,
the fastest candidate is chosen per call and reported. One implementation (``_core``) serves two
element types: numpy arrays (collectives x sizes x placements broadcast against each other; the only
Python loop is over the small fixed set of candidate (algorithm, protocol) pairs) and Python floats
for a single estimate, where ~100 tiny numpy temporaries would cost ~10x more than the arithmetic.
Per-topology constants are computed once and cached on the (frozen) topology. Tests pin the two
paths to bit-identical results.

Size convention (nccl-tests): ``size_bytes`` is the buffer nccl-tests prints in its "size" column:
the all-reduce buffer, the *total* all-gather output / reduce-scatter input (n x per-rank chunk),
the per-rank alltoall buffer, the broadcast/reduce buffer, the bytes one rank sends in send/recv.
Bus bandwidth: algbw x 2(n-1)/n (all_reduce), x (n-1)/n (all_gather, reduce_scatter, alltoall),
x 1 otherwise; algbw = size / time.

Bandwidth physics per GPU (B_nvl = usable NVLink bandwidth, B_nic = usable NIC bandwidth per GPU,
g = ranks per NVLink domain, d = domains, n = ranks):

* Ring: every channel's ring enters/leaves each domain once, and a domain's g GPUs each own their
  NICs (rail-optimized), so ring bus bandwidth = min(B_nvl, g x B_nic) (x 0.92 LL128, x 0.5 LL capped
  by NCCL's llMaxBw). Steps: 2(n-1) for all-reduce, n-1 for all-gather / reduce-scatter, of which
  2(d-1) resp. d-1 cross the network.
* Tree (all-reduce): bus bandwidth x 0.92, algbw = bus/2, latency 2 x ((n/d - 1) intra + log2(d) inter)
  steps (NCCL's double binary tree: a chain through each domain's ranks, NCCL's nRanks/nNodes).
* NVLS (all-reduce inside one domain with NVLink SHARP): each GPU pushes its buffer into the switch
  once and h = min(n, 32) NVLS heads each reduce-load 1/h of it and multicast-store the result: a head
  moves S (1 + 1/h) bytes per direction -> algbw = B_nvl x eff_nvls x h/(h+1).
* NVLS-tree (hierarchical all-reduce across domains): NVLS reduce-scatter inside the domain, each
  GPU's NIC carries only its 1/g slice across the network (tree: S/g each way for d <= 2, twice that
  for d > 2), then NVLS all-gather; the stages are pipelined, so time = max(NVLink stage, NIC stage).
* Alltoall / send-recv (pairwise p2p): a rank sends S (g-1)/n over NVLink and S (n-g)/n over its
  NICs concurrently; bandwidth = the slower of the two (p2p reaches ``P2P_EFFICIENCY`` of NVLink). The protocol
  is NCCL's byte rule, not a cost choice: LL up to ``P2P_LL_THRESHOLD_BYTES`` x p2pnChannelsPerPeer per peer
  (2.22-2.28; 16 KiB before and after), Simple above. Time is therefore monotone in size only within one
  protocol: it may drop where the rule switches to Simple, as NCCL's does (GB300 sweeps, validation README).
* Spine: traffic between leaf groups crosses the leaf->spine uplinks of each rail leaf, whose
  capacity is nodes_per_leaf x B_nic / oversubscription x (available fraction from live state);
  rings/trees put 1-2 flows per rail leaf on them, alltoall puts k x phi (k = job nodes under the
  leaf, phi = share of NIC traffic leaving the leaf group).

Small and medium messages:

* Channels: NCCL runs a call on fewer channels (thread blocks) when it is small -- it drops channels
  while size < channels x threads x per-thread threshold -- and each channel carries 1/n_channels
  of the bus bandwidth (~one ring channel per NVLink, NCCL's per-channel NVLink bandwidth). Rings and
  trees therefore pay ``max(min(size, min_bytes_per_channel) x n_channels, size)`` bytes of
  bandwidth time instead of ``size`` (exactly non-decreasing in size).
* Trees: NCCL's ``treeCorrectionFactor`` (0.4-1.0 between 64 B and 256 MiB) scales tree bandwidth,
  interpolated in log2(size) so time stays monotone.

Latencies use NCCL's published per-(algorithm, protocol) base and per-hop constants (NVLink and
network), NCCL's 1 us per network-step proxy overhead, the transport's extra per-message latency
(EFA) and switch hop latencies (1 switch inside a leaf group, 3 across the spine). The GPU-side
constants (base and NVLink steps) are scaled by the architecture's ``gpu_latency_scale`` (1.3 on
Blackwell, see ``topology.nvlink``); network constants are not.

Multi-node, from NCCL's design (src/graph/tuning.cc, enqueue.cc, transport/nvls.cc; aws-ofi-nccl):

* Host CPU: the proxy thread's post overhead per network step (1 us Intel, 2 us AMD) floors every ring step
  of a multi-node ring, is paid per remote peer of an alltoall and, beyond the Intel value NCCL's constants hold,
  per tree network crossing (``TREE_NET_CPU_EXCESS_X``); the LL caps across nodes depend on it too.
* Credit window: a network connection has NCCL_STEPS = 8 slots, and a slot returns to the sender only after
  the receiver's re-post crossed the network, so every step of a multi-node LL/LL128 ring also takes at least
  2 x the network step latency / 8 (``CREDIT_WINDOW_STEPS``): ~6 us on EFA, below the other floors on IB.
* Transport: LL/LL128 only where the network delivers 128-byte stores in order (``ScaleOut.ll_over_net``;
  EFA on p4d runs Simple only). Trees over 2 domains carry each byte across the NICs once per direction.
* Choice vs time: NCCL picks the (algorithm, protocol) by its own estimate, in which every network step
  costs the latency the net plugin reports (75 us for aws-ofi-nccl on p4d/p5); the time returned is the
  physical one of that choice.
* Simple rings across domains: timed from NCCL's ring chunking (``RING_SIMPLE_CHUNK_STEPS``: loops of nRanks chunks
  of buffSize / 2, each step bounded by the chunk's wire time and the 2-chunk credit window over the network step's
  round trip), not from the generic pipeline fill that single-domain Simple keeps; never faster than the one-domain
  ring of the same GPUs. NCCL's ring "plateau" (x1.4) is part of NCCL's estimate, not of this time.
* Simple trees across domains: the pipeline fills by store and forward of one chunk of buffSize / NCCL_STEPS
  (``TREE_SIMPLE_CHUNK_STEPS``) per hop, not by the generic fill. buffSize: the network's ``nccl_buffsize_bytes``,
  else NCCL's default, 8 MiB on EFA (aws-ofi-nccl from v1.16.0, ``NCCL_BUFFSIZE_BY_TRANSPORT``); before 2.20 NCCL
  shrank the chunk for small parts (``TREE_SIMPLE_HALVING``, applied when the caller states such a version).
* ``nccl_version``: which algorithms exist (NVLS 2.17+, NVLS-tree 2.18+) and NVLS-tree's network latency.
* NVLS-tree spreads its network traffic over at most 32 heads per NVLink domain (NCCL_MAX_NVLS_ARITY), 16 on GB200
  multi-node NVLink (``ScaleUp.inter_domain_nics``, NCCL 2.27.3 release notes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .placement import Placement
from .topology import NVLINK_PAYLOAD_EFFICIENCY, FabricTopology

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce", "alltoall", "send_recv")
ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, BROADCAST, REDUCE, ALLTOALL, SEND_RECV = range(7)
ALGORITHMS = ("ring", "tree", "nvls", "nvls_tree", "pairwise")
RING, TREE, NVLS, NVLS_TREE, PAIRWISE = range(5)
NO_ALGORITHM = -1  # single-rank or zero-byte calls: nothing to communicate
PROTOCOLS = ("LL", "LL128", "Simple")
LL, LL128, SIMPLE = range(3)

_ALIASES = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
            "all_to_all": "alltoall", "alltoallv": "alltoall", "sendrecv": "send_recv", "send": "send_recv",
            "recv": "send_recv", "p2p": "send_recv", "bcast": "broadcast"}
_CODE_OF = {name: i for i, name in enumerate(COLLECTIVES)}
_ALL_OF = {k: frozenset(range(k)) for k in (len(ALGORITHMS), len(PROTOCOLS))}

# --- NCCL cost-model constants (microseconds; from NCCL's tuning.cc, NCCL 2.19-2.27) --------------
# index [protocol] = (LL, LL128, Simple)
BASE_LAT_US = {RING: (6.6, 14.0, 8.4), TREE: (6.8, 14.0, 8.4), NVLS: (0.0, 0.0, 0.0), NVLS_TREE: (0.0, 0.0, 0.0)}
NVLINK_LAT_US = {RING: (0.6, 1.9, 3.4), TREE: (0.6, 1.25, 4.0), NVLS: (0.0, 0.0, 25.0), NVLS_TREE: (0.0, 0.0, 25.0)}
NET_LAT_US = {RING: (2.7, 4.0, 14.0), TREE: (5.0, 8.5, 14.0), NVLS: (0.0, 0.0, 18.0), NVLS_TREE: (0.0, 0.0, 14.0)}
#: NCCL proxy post overhead per network step, x3 for the Simple protocol, by host CPU (tuning.cc
#: getNetOverhead: 1 us Intel x86, 2 us AMD x86, 1 us otherwise); also charged per remote peer of an alltoall.
NET_OVERHEAD_US = 1.0
NET_OVERHEAD_US_BY_CPU = {"intel": 1.0, "amd": 2.0, "arm": 1.0}
#: A tree's network crossing waits for the sender's proxy thread: an LL step's send buffer is always host memory
#: (2.29.2 src/transport/net.cc sendSetup map: device memory only for p != LL with GDR), and the proxy polls the
#: line flags the GPU wrote there before it posts the isend (sendProxyProgress); LL128 / Simple likewise post only
#: after the proxy saw the step. On a latency-bound tree nothing overlaps that post, so every crossing pays the host's
#: proxy overhead. NCCL's tree formula (2.29.2 tuning.cc: 2 x (... + log2i(nNodes) x interLat)) has no CPU term: its
#: NET constants are one set for every host and are taken to hold NCCL's reference post (1 us, ``NET_OVERHEAD_US``;
#: getNetOverhead's value for Intel and unknown hosts) -- H100 + IB crossings measure 4.95 us each (2 -> 4 nodes:
#: +9.9 us for 2 more) against 5.0 + 0.13 modelled. A host whose post costs more (AMD: 2 us) pays the excess on
#: every crossing, x3 for Simple as NCCL scales that overhead (validation README, seventh pass).
TREE_NET_CPU_EXCESS_X = (1.0, 1.0, 3.0)  # LL, LL128, Simple
#: LL protocol bus-bandwidth caps (GB/s): single domain by GPU arch; multi-domain by host CPU and #domains
#: (tuning.cc llMaxBws: row Intel/other {N2 39.0, N4 20.4}, row AMD {N2 22.5, N4 19.0})
LL_MAX_BW_SINGLE = {"ampere": 87.7, "hopper": 141.0, "blackwell": 282.0}
LL_MAX_BW_MULTI = (39.0, 20.4)  # 2 domains, >2 domains (Intel / non-x86 host)
LL_MAX_BW_MULTI_BY_CPU = {"intel": (39.0, 20.4), "amd": (22.5, 19.0), "arm": (39.0, 20.4)}
#: NCCL's "plateau effect of ring" (tuning.cc ncclTopoGetAlgoTime, NCCL 2.12+): a multi-node Simple ring
#: all-reduce whose per-channel per-rank slice is >= 64 B pays 1.4x its latency (compute capability >= 8.0).
#: A term of NCCL's estimate: since the ninth pass the physical time of a Simple ring across domains comes from
#: NCCL's chunking (``RING_SIMPLE_CHUNK_STEPS``) and no longer carries it.
RING_PLATEAU_FACTOR = 1.4
#: Ring/Simple chunking (NCCL 2.25.1 .. 2.29.2, identical in each: src/enqueue.cc calcCollChunking, src/device/all_reduce.h
#: runRing, src/include/collectives.h). A Simple ring moves chunks of chunkSize = buffSize / NCCL_STEPS x chunkSteps
#: bytes, chunkSteps = ALLREDUCE/ALLGATHER/REDUCESCATTER_CHUNKSTEPS = NCCL_STEPS / 2 = 4, each sent as chunkSteps /
#: sliceSteps = 2 slices (SLICESTEPS = NCCL_STEPS / 4); a channel loops over loopSize = nRanks x chunkSize of its
#: bytes, each loop 2(n-1) (all-reduce) or n-1 (all-gather / reduce-scatter) sequential steps of one chunk per rank,
#: and a short last loop shrinks the chunk to its bytes / nRanks ("if (remCount < loopCount) chunkCount = divUp(
#: remCount, nranks)"). Broadcast / reduce (pipeline pattern): BROADCAST/REDUCE_CHUNKSTEPS = SLICESTEPS = 1, one
#: chunk of buffSize / NCCL_STEPS per loop. NCCL_BUFFSIZE: DEFAULT_BUFFSIZE = 4 MiB (src/init.cc); aws-ofi-nccl
#: (v1.16.3 src/platform-aws.cpp) sets 8 MiB on every EFA GPU platform it knows (p4d, p4de, p5, p5e, p5en, p6).
RING_SIMPLE_CHUNK_STEPS = 4.0  # of NCCL_STEPS = 8 buffer slots per chunk (ring all-reduce / all-gather / reduce-scatter)
RING_SIMPLE_SLICES = 2.0  # chunkSteps / sliceSteps
NCCL_STEPS = 8.0
NCCL_BUFFSIZE_BYTES = 4194304.0  # DEFAULT_BUFFSIZE
#: aws-ofi-nccl platform-aws.cpp NCCL_BUFFSIZE, set from v1.16.0 (commit f3f5c40b, 2025-05-21, "aws: Use default env
#: mechanism"); earlier plugins leave NCCL's default (a ScaleOut states its jobs' own as ``nccl_buffsize_bytes``)
NCCL_BUFFSIZE_BY_TRANSPORT = {"efa": 8388608.0}
#: Credit window of a network connection (NCCL 2.28.7 src/include/device.h NCCL_STEPS = 8). A connection has
#: NCCL_STEPS buffer slots; the receiving proxy posts a receive for a slot only after its GPU consumed the slot's
#: previous step (src/transport/net.cc recvProxyProgress: no post while posted >= done + min(NCCL_STEPS, ..)), and
#: the sender may send into it only once that post has crossed the network back to it (src/transport/net_ib.cc
#: ncclIbIsend: "Wait for the receiver to have posted the corresponding receive"; aws-ofi-nccl v1.16.3 RDMA
#: protocol: the receiver's control message, for every message above eager_max_size = 8 KiB). LL/LL128 send one
#: message per step (src/enqueue.cc: chunkSteps = sliceSteps = 1 unless Simple ring), so a ring cannot turn its
#: steps over faster than NCCL_STEPS per round trip (data one way + the post back = 2 x the per-step network
#: latency): every step of a multi-node LL/LL128 ring takes >= 2 x net latency / NCCL_STEPS, entered like NCCL's
#: own per-step proxy floor (tuning.cc: intraLat = max(intraLat, netOverhead)). ~1 us on InfiniBand (under the
#: NVLink step and NCCL's 1-2 us floor: no change), ~6 us on EFA (20 us more per message). Not applied to Simple
#: (2 slices per step, 4 in flight; its slices are large enough to overlap the round trip) nor to trees (NCCL has
#: no per-step floor there; a tree channel's messages are its chunks, few per call).
CREDIT_WINDOW_STEPS = 8.0
#: A Simple tree moves each channel's part in chunks of one step (NCCL 2.20-2.30 src/enqueue.cc: chunkSteps =
#: sliceSteps = 1 except Simple rings, and no chunk reduction for tree/Simple; src/device/all_reduce.h runTreeUpDown /
#: runTreeSplit with ProtoSimple<1, 1>), and prims_simple.h waits for a step's data before it posts it on (one wait /
#: post per chunk): each hop stores a chunk whole and forwards it, so the pipeline fills in one chunk's time per hop.
#: Across domains this replaces the generic 2 sqrt(pipe x S/B) fill (which was calibrated inside one NVLink domain).
TREE_SIMPLE_CHUNK_STEPS = 1.0
#: NCCL before 2.20 (v2.19.3 src/enqueue.cc computeColl, pattern TreeUpDown) shrank a tree/Simple chunk while a
#: channel had few of them: halved while bytes / (channels x chunk) < depth x 8 and chunk > 128 KiB, then while
#: < depth x 4 and > 64 KiB, then while < depth and > 32 KiB, depth = nRanks / nNodes - 1 + log2i(nNodes)
#: (graph/connect.cc). Applied only when the caller states such a version; 2.20 dropped it.
TREE_SIMPLE_HALVING_UNTIL = (2, 20, 0)
TREE_SIMPLE_HALVING = ((8.0, 131072.0), (4.0, 65536.0), (1.0, 32768.0))  # (x depth, chunk floor) per loop
#: One proxy thread per rank progresses every network operation of that rank (2.28.7 src/proxy.cc progressOps: one
#: loop over all active ops, each op's sends/receives per channel in turn; net.cc sendProxyProgress /
#: recvProxyProgress, which groups receives only of subs sharing one net comm, and a comm is per channel:
#: comms->recvComm[channelId]), and each costs NCCL's proxy overhead (tuning.cc getNetOverhead, ``NET_OVERHEAD_US_BY_CPU``).
#: NCCL's model charges that overhead once per ring step (intraLat = max(intraLat, netOverhead)), as if channels were
#: progressed in parallel. A multi-node ring channel enters each node at one GPU and leaves it at another, so with
#: the channels spread over the node's g GPUs a rank's proxy serves 2 x channels / g connections, one message per
#: LL/LL128 step each (enqueue.cc calcCollChunking: chunkSteps = sliceSteps = 1 unless Simple ring), and the call
#: cannot end before its proxy has handled them all: a ring LL/LL128 call takes at least base latency +
#: max(1, 2 x channels / g) x messages per connection x netOverhead. Messages per connection: the ring's steps
#: (one for a broadcast / reduce chain), or its bytes per channel over one step's data where that is more; channels:
#: those the call runs on (``CHANNEL_MIN_BYTES``). This bound runs concurrently with the transfers, so it is a max()
#: with the model's time, not a term added to it (a 16-rank, 2-node H100 + IB ring at 1-8 MiB: 2 x 18 / 8 x 30
#: steps x 1 us = 135 us of proxy work against ~80-120 us of modelled latency and transfer).
#: Data of one LL / LL128 step (one network message): DEFAULT_LL_BUFFSIZE / NCCL_STEPS = 8 lines x 512 threads x
#: 16 B = 64 KiB of lines, half of it data (calcCollChunking: LL chunkSize /= 2); DEFAULT_LL128_BUFFSIZE / NCCL_STEPS
#: = 120 x 640 x 8 B = 614,400 B, 120 of each 128 B data (2.28.7 src/init.cc, src/include/device.h).
RING_STEP_DATA_BYTES = (32768.0, 576000.0)  # LL, LL128
#: GPU-direct flush of a Simple receive (NCCL 2.28.7 src/graph/paths.cc ncclTopoNeedFlush: "Flush is required on
#: Ampere and earlier", and forced on C2C (Grace) platforms; src/transport/net.cc flushes Simple receives only). Where
#: NCCL flushes, a Simple network step pays the transport's per-message latency twice (the plugin's flush is one more
#: operation through the NIC: aws-ofi-nccl sendrecv_recv_comm_flush issues an RDMA read); on Hopper/Blackwell with
#: x86 hosts it pays it once (aws-ofi-nccl also sets NCCL_NET_FORCE_FLUSH=0 on p5/p5en/p6, platform-aws.cpp).
#: NCCL's own estimate counts the plugin's latency twice for every Simple step (tuning.cc); the model's choice adds
#: the plugin's excess as often as the step physically pays the transport latency, so that choice and time agree
#: on what a step costs and the chosen time never decreases with size (tests/unit/fabric/test_fabric_fast_path.py).
GDR_FLUSH_X = 2.0
#: NVLS heads per NVLink domain, at most (NCCL_MAX_NVLS_ARITY, src/include/device.h; the NVLS graph has
#: min(32, GPUs) channels, one head each: search.cc, connect.cc connectNvls). Only heads run NVLS's reduce stage
#: (2.28.7 src/device/all_reduce.h, NVLS: "if (... nvls->headRank != -1)"), each on 1/heads of the data, so with
#: more than 32 GPUs in one domain the heads carry S (1 + 1/32), not S (1 + 1/n); NVLS-tree's heads are the NICs
#: that cross between domains (``ScaleUp.inter_domain_nics``, 16 on GB200).
NVLS_MAX_HEADS = 32.0
#: NCCL versions that introduced algorithms (NCCL release notes): NVLS 2.17, NVLS-tree 2.18.
ALGORITHM_SINCE = {"nvls": (2, 17, 0), "nvls_tree": (2, 18, 0)}
#: NVLS-tree network latency per step, Simple (tuning.cc hwLat[NET][NVLS_TREE]): 19 us in 2.18, 14 us in
#: 2.19 .. 2.28.8, 20.9 us from 2.28.9. Unknown version: the 2.19-2.28 value.
NVLS_TREE_NET_LAT_US_BY_VERSION = (((2, 28, 9), 20.9), ((2, 19, 0), 14.0), ((0, 0, 0), 19.0))
#: protocol bandwidth factors: LL carries 8 B data per 16 B line (NCCL models 1/2 for rings and 1/3.8
#: for trees), LL128 120 of 128 B (NCCL uses 0.92 on rings), tree Simple 0.92.
LL128_RING_FACTOR = 0.92
TREE_FACTOR = 0.92
TREE_LL_FACTOR = 1.0 / 3.8
#: point-to-point (alltoall / send-recv) runs with fewer channels per peer than rings; it reaches
#: ~85 % of the usable NVLink bandwidth.
P2P_EFFICIENCY = 0.85
#: NCCL's p2p protocol rule (a hard threshold in its code, not its cost model; ``enqueue.cc`` addP2pToPlan):
#: NCCL_P2P_LL_THRESHOLD = 16 KiB. 2.22.3 .. 2.28.9: a peer's op runs LL while its bytes <= p2pnChannelsPerPeer x
#: 16 KiB ("thresholdLL = nChannelsMax*ncclParamP2pLLThreshold()"), Simple above. Before 2.22.3 each channel part
#: of >= p2pChunkSize / 8 (64 KiB on NVLink; scheduleP2pTasksToPlan) ran LL if <= 16 KiB, and from 2.29.2 the
#: product uses the op's own channel count, grown in parts of the same minimum: LL only up to 16 KiB per peer
#: (2.18-2.19 across nodes allowed up to nChannelsMin x 16 KiB; not modelled).
P2P_LL_THRESHOLD_BYTES = 16384.0
P2P_LL_PER_CHANNELS_VERSIONS = ((2, 22, 3), (2, 29, 0))  # [since, until): threshold x p2pnChannelsPerPeer
#: p2pnChannelsPerPeer (2.28.7 ``graph/paths.cc`` ncclTopoComputeP2pChannels / ncclTopoGetNchannels): pow2Up of the
#: minimum over peers of the channels a peer gets, capped by p2pnChannels = pow2Up(comm channels). An NVLink peer gets
#: 2 x its NVLinks (> the comm's channels, for which the model's ``n_channels``, one per NVLink, stands; so
#: pow2Up(``n_channels``): 32 on H100 and Blackwell, 16 on A100); a network
#: peer max(local NICs by bandwidth, 2 halved while 2 x nRanks > 4 x p2pnChannels). Across domains the network peer
#: is the minimum.
P2P_NET_PEER_CHANNELS = 2.0
#: Channel parallelism (NCCL enqueue.cc, topoGetAlgoInfo): a call runs on nc channels (one thread
#: block each), nc reduced from the communicator's channel count while size < nc x nThreads x
#: threadThreshold. nThreads: NCCL_LL_MAX_NTHREADS 512, NCCL_LL128_MAX_NTHREADS 640,
#: NCCL_SIMPLE_MAX_NTHREADS 512; thresholds (bytes/thread): NCCL_LL_THREAD_THRESHOLD 8 (x nRanks for
#: rings), NCCL_LL128_THREAD_THRESHOLD 8, NCCL_SIMPLE_THREAD_THRESHOLD 64. Minimum bytes per channel:
CHANNEL_MIN_BYTES = (512 * 8.0, 640 * 8.0, 512 * 64.0)  # LL (x nRanks on rings), LL128, Simple
#: NCCL's per-channel NVLink bandwidth (src/graph/topo.h SM80_NVLINK_BW 20, SM90_NVLINK_BW 20.6,
#: SM100_NVLINK_BW 40.1 GB/s) -- raw 25/25/50 GB/s links at NVLINK_PAYLOAD_EFFICIENCY. NCCL's ring
#: search on an NVSwitch system finds about one channel per NVLink at that bandwidth (busBw =
#: nChannels x bwIntra), so a GPU has ~12 (A100) / 18 (H100, B200) ring channels.
NVLINK_BW_PER_CHANNEL_GBPS = {"ampere": 25.0, "hopper": 25.0, "blackwell": 50.0}  # raw per link
#: NCCL's tree bandwidth correction for medium sizes (tuning.cc treeCorrectionFactor, NCCL 2.19-2.27:
#: "Trees are not perfectly sticking to the model for medium sizes"), per protocol, indexed by
#: floor(log2(bytes / 64)) for 64 B .. 256 MiB, 1.0 above. NCCL applies it as a step function; the
#: model interpolates it linearly in log2(size) between the table points (and to 1.0 at 512 MiB) so
#: predicted time never decreases with size.
TREE_CORRECTION = (
    (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0),
    (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9),
)
_TREE_CORRECTION_NP = np.asarray([row + (1.0,) for row in TREE_CORRECTION])
_TREE_CORRECTION_X = np.arange(24, dtype=np.float64)


def collective_codes(collective: np.ndarray | str | int | Iterable) -> np.ndarray:
    """Collective names or codes -> int8 codes (raises ValueError on unknown names/codes)."""
    arr = np.asarray(collective)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= len(COLLECTIVES)):
            raise ValueError(f"unknown collective code; valid codes 0..{len(COLLECTIVES) - 1} = {COLLECTIVES}")
        return arr.astype(np.int8)
    if arr.dtype.kind not in "USO":
        raise ValueError(f"collective must be names or integer codes, got dtype {arr.dtype}")
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    codes = []
    for name in uniq:
        key = str(name).strip().lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in COLLECTIVES:
            raise ValueError(f"unknown collective {str(name)!r}; known: {', '.join(COLLECTIVES)}")
        codes.append(COLLECTIVES.index(key))
    return np.asarray(codes, dtype=np.int8)[inv].reshape(arr.shape)


def bus_factor(collective: np.ndarray, n_ranks: np.ndarray) -> np.ndarray:
    """nccl-tests busbw / algbw ratio."""
    c = np.asarray(collective)
    n = np.asarray(n_ranks, dtype=np.float64)
    frac = (n - 1.0) / n
    return np.where(c == ALL_REDUCE, 2.0 * frac,
                    np.where((c == ALL_GATHER) | (c == REDUCE_SCATTER) | (c == ALLTOALL), frac, 1.0))


@dataclass(frozen=True, eq=False)
class Estimate:
    """Per-call results, arrays of the broadcast shape. ``algorithm``/``protocol`` are codes into
    ``ALGORITHMS``/``PROTOCOLS`` (-1 = nothing to do)."""

    time_s: np.ndarray
    latency_s: np.ndarray
    bandwidth_s: np.ndarray
    algorithm: np.ndarray
    protocol: np.ndarray
    algbw_GBps: np.ndarray
    busbw_GBps: np.ndarray

    def algorithm_names(self) -> np.ndarray:
        return np.asarray(ALGORITHMS + ("none",))[self.algorithm]

    def protocol_names(self) -> np.ndarray:
        return np.asarray(PROTOCOLS + ("none",))[self.protocol]


class _VectorOps:
    """numpy element-wise operations (any broadcast shape)."""

    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def not_(x: np.ndarray) -> np.ndarray:
        return ~x

    @staticmethod
    def any(x: np.ndarray) -> bool:
        return bool(np.any(x))

    @staticmethod
    def inv(x: np.ndarray) -> np.ndarray:
        """1/x, +inf where x <= 0."""
        with np.errstate(divide="ignore"):
            return np.where(x > 0, 1.0 / np.maximum(x, 1e-300), np.inf)

    @staticmethod
    def log2i(x: np.ndarray) -> np.ndarray:
        """floor(log2(max(x, 1)))"""
        return np.floor(np.log2(np.maximum(x, 1))).astype(np.float64)

    @staticmethod
    def floor(x: np.ndarray) -> np.ndarray:
        return np.floor(x)

    @staticmethod
    def tree_x(size: np.ndarray) -> np.ndarray:
        """log2(size / 64 B) clipped to the tree-correction table."""
        return np.clip(np.log2(np.maximum(size, 1.0) / 64.0), 0.0, 23.0)

    @staticmethod
    def tree_correction(p: int, x: np.ndarray) -> np.ndarray:
        return np.interp(x, _TREE_CORRECTION_X, _TREE_CORRECTION_NP[p])


class _ScalarOps:
    """The same operations on Python floats/bools: a single estimate costs microseconds, not the
    fixed per-call overhead of ~100 small numpy temporaries."""

    @staticmethod
    def where(cond: bool, a: float, b: float) -> float:
        return a if cond else b

    minimum = staticmethod(min)
    maximum = staticmethod(max)
    sqrt = staticmethod(math.sqrt)
    floor = staticmethod(math.floor)

    @staticmethod
    def not_(x: bool) -> bool:
        return not x

    @staticmethod
    def any(x: bool) -> bool:
        return bool(x)

    @staticmethod
    def inv(x: float) -> float:
        return 1.0 / x if x > 0 else math.inf

    @staticmethod
    def log2i(x: float) -> float:
        return float(math.floor(math.log2(x))) if x > 1 else 0.0

    @staticmethod
    def tree_x(size: float) -> float:
        return min(max(math.log2(max(size, 1.0) / 64.0), 0.0), 23.0)

    @staticmethod
    def tree_correction(p: int, x: float) -> float:
        i = min(int(x), 22)
        row = TREE_CORRECTION[p]
        hi = row[i + 1] if i < 22 else 1.0
        return row[i] + (x - i) * (hi - row[i])


class _Best:
    """Running minimum over candidates (vector form: arrays updated in place)."""

    def __init__(self, shape: tuple[int, ...] | None, separate_key: bool = False) -> None:
        """``separate_key``: candidates are chosen by a key (NCCL's own cost estimate) other than their time."""
        self.scalar = shape is None
        self.separate_key = separate_key
        if self.scalar:
            self.t, self.lat, self.bw, self.a, self.p = math.inf, 0.0, 0.0, NO_ALGORITHM, NO_ALGORITHM
            self.key = math.inf
        else:
            self.t = np.full(shape, np.inf)
            self.lat = np.zeros(shape)
            self.bw = np.zeros(shape)
            self.a = np.full(shape, NO_ALGORITHM, dtype=np.int8)
            self.p = np.full(shape, NO_ALGORITHM, dtype=np.int8)
            self.key = np.full(shape, np.inf) if separate_key else self.t

    def offer(self, a: int, p: int, valid, t, lat_s, bw_s, key=None) -> None:
        if key is None:
            key = t
        if self.scalar:
            if valid and key < self.key:
                self.t, self.lat, self.bw, self.a, self.p, self.key = t, lat_s, bw_s, a, p, key
            return
        better = key < self.key
        if valid is not True:
            better &= valid
        if self.separate_key:
            np.copyto(self.key, key, where=better)
        np.copyto(self.t, t, where=better)
        np.copyto(self.lat, lat_s, where=better)
        np.copyto(self.bw, bw_s, where=better)
        np.copyto(self.a, a, where=better)
        np.copyto(self.p, p, where=better)


@dataclass(frozen=True)
class _TopoConstants:
    """Per-topology numbers of the cost model, computed once per (immutable) topology."""

    b_nvl: float
    b_nic_nom: float
    uplink_nom: float
    hop_us: float
    net_extra_us: float
    simple_extra_x: float  # transport latencies per Simple network step: 2 where NCCL flushes (GDR_FLUSH_X)
    buffsize: float  # NCCL_BUFFSIZE of the Simple protocol (NCCL_BUFFSIZE_BYTES / _BY_TRANSPORT)
    base_us: dict[int, tuple[float, float, float]]  # BASE_LAT_US x gpu_latency_scale
    nvl_step_us: dict[int, tuple[float, float, float]]  # NVLINK_LAT_US x gpu_latency_scale + switch hop
    llmax_single: float
    n_channels: float
    has_scale_out: bool
    nvls: bool
    b_nvls: float
    gpus_per_node: int
    net_overhead_us: float  # NCCL proxy post overhead per network step (host CPU)
    llmax_multi: tuple[float, float]  # LL caps, 2 domains / more (host CPU)
    net_ll: bool  # LL/LL128 may cross the scale-out network
    nvls_tree_net_us: float  # NVLS-tree network latency per step, Simple (NCCL version)
    sel_extra_us: float  # net plugin's reported latency minus the transport's physical extra (NCCL's choice)
    nvls_heads: float  # NVLS-tree heads (NICs crossing between domains) per NVLink domain, at most
    p2p_channels: float  # NCCL's p2pnChannels: pow2Up(channels)
    p2p_ll_single: float  # p2p LL threshold (bytes per peer) inside one NVLink domain (P2P_LL_THRESHOLD_BYTES)
    p2p_ll_multi: tuple[float, float]  # ... across domains: 2 x nRanks <= / > 4 x p2pnChannels
    tree_simple_halving: bool  # the stated NCCL version shrinks tree/Simple chunks (TREE_SIMPLE_HALVING)


def _nvls_tree_net_us(version: tuple[int, int, int] | None) -> float:
    if version is None:
        return NET_LAT_US[NVLS_TREE][SIMPLE]
    return next(us for since, us in NVLS_TREE_NET_LAT_US_BY_VERSION if tuple(version) >= since)


def _topo_constants(topology: FabricTopology, version: tuple[int, int, int] | None = None) -> _TopoConstants:
    cache = topology.__dict__.get("_cost_constants")
    if cache is None:
        cache = {}
        object.__setattr__(topology, "_cost_constants", cache)  # frozen dataclass: cache beside the fields
    key = None if version is None else tuple(version)
    cached = cache.get(key)
    if cached is not None:
        return cached
    su, so = topology.scale_up, topology.scale_out
    b_nvl = su.nvlink_bw_GBps_per_gpu
    simple_x = GDR_FLUSH_X if su.arch == "ampere" or topology.host_cpu == "arm" else 1.0
    n_channels = float(max(1, round(b_nvl / (NVLINK_BW_PER_CHANNEL_GBPS[su.arch] * NVLINK_PAYLOAD_EFFICIENCY))))
    p2p_channels = float(2 ** math.ceil(math.log2(n_channels)))  # p2pnChannels = pow2Up(channels)
    since, until = P2P_LL_PER_CHANNELS_VERSIONS
    if key is not None and not since <= key < until:
        ll_single = ll_small = ll_large = P2P_LL_THRESHOLD_BYTES
    else:
        nics = float(math.ceil(so.nics_per_gpu)) if so is not None else 1.0

        def per_peer(net_channels: float) -> float:
            return P2P_LL_THRESHOLD_BYTES * min(p2p_channels, float(2 ** math.ceil(math.log2(net_channels))))

        ll_single = P2P_LL_THRESHOLD_BYTES * p2p_channels
        ll_small = per_peer(max(nics, P2P_NET_PEER_CHANNELS))
        ll_large = per_peer(max(nics, P2P_NET_PEER_CHANNELS / 2.0))
    b_nic_nom = so.bw_GBps_per_gpu if so is not None else 0.0
    consts = _TopoConstants(
        b_nvl=b_nvl,
        b_nic_nom=b_nic_nom,
        # nominal uplink bandwidth of one rail leaf, GB/s (x available fraction per placement)
        uplink_nom=(so.nodes_per_leaf / so.oversubscription if so is not None else 1.0) * b_nic_nom,
        hop_us=so.per_hop_latency_s * 1e6 if so is not None else 0.0,
        net_extra_us=so.base_latency_s * 1e6 if so is not None else 0.0,
        simple_extra_x=simple_x,
        buffsize=NCCL_BUFFSIZE_BYTES if so is None else so.nccl_buffsize_bytes if so.nccl_buffsize_bytes is not None
        else NCCL_BUFFSIZE_BY_TRANSPORT.get(so.kind, NCCL_BUFFSIZE_BYTES),
        base_us={a: tuple(v * su.gpu_latency_scale for v in row) for a, row in BASE_LAT_US.items()},
        nvl_step_us={a: tuple(v * su.gpu_latency_scale + su.hop_latency_s * 1e6 for v in row)
                     for a, row in NVLINK_LAT_US.items()},
        llmax_single=LL_MAX_BW_SINGLE[su.arch],
        n_channels=n_channels,
        has_scale_out=so is not None,
        nvls=su.nvls,
        b_nvls=b_nvl * su.nvls_efficiency,
        gpus_per_node=topology.gpus_per_node,
        net_overhead_us=NET_OVERHEAD_US_BY_CPU[topology.host_cpu],
        llmax_multi=LL_MAX_BW_MULTI_BY_CPU[topology.host_cpu],
        net_ll=so.ll_over_net if so is not None else True,
        nvls_tree_net_us=_nvls_tree_net_us(key),
        sel_extra_us=(so.reported_latency_s - so.base_latency_s) * 1e6
        if so is not None and so.reported_latency_s is not None else 0.0,
        nvls_heads=min(NVLS_MAX_HEADS, float(su.inter_domain_nics)) if su.inter_domain_nics else NVLS_MAX_HEADS,
        p2p_channels=p2p_channels,
        p2p_ll_single=ll_single,
        p2p_ll_multi=(ll_small, ll_large),
        tree_simple_halving=key is not None and key < TREE_SIMPLE_HALVING_UNTIL,
    )
    cache[key] = consts
    return consts


def _p2p_ll_threshold(ops, k: _TopoConstants, n, multi):
    """Bytes per peer up to which NCCL runs a p2p op with LL (P2P_LL_THRESHOLD_BYTES x p2pnChannelsPerPeer)."""
    return ops.where(multi, ops.where(2.0 * n > 4.0 * k.p2p_channels, k.p2p_ll_multi[1], k.p2p_ll_multi[0]),
                     k.p2p_ll_single)


def p2p_ll_threshold_bytes(topology: FabricTopology, placement: Placement,
                           nccl_version: tuple[int, ...] | str | None = None) -> np.ndarray:
    """Per-peer bytes up to which the model (as NCCL's enqueue.cc) runs alltoall / send-recv with LL; Simple above.
    Where LL cannot cross the network (``ScaleOut.ll_over_net`` False) multi-domain placements run Simple anyway."""
    k = _topo_constants(topology, _version(nccl_version))
    with np.errstate(invalid="ignore"):
        return _p2p_ll_threshold(_VectorOps, k, placement.n_ranks.astype(np.float64), placement.n_domains > 1)


def _core(ops, k: _TopoConstants, best: _Best, allowed_a: frozenset, allowed_p: frozenset,
          coll, size, n, d, g, lg, kk, nicf, spf) -> None:
    """The cost model. Works element-wise on numpy arrays (``_VectorOps``) or on Python scalars
    (``_ScalarOps``): one set of formulas for the batch and the single-estimate path."""
    inf = math.inf
    multi = d > 1
    single = ops.not_(multi)
    any_multi, any_single = ops.any(multi), ops.any(single)
    crossing = lg > 1
    b_nvl = k.b_nvl
    b_nic = k.b_nic_nom * nicf
    uplink = k.uplink_nom * spf
    nvl_if_used = ops.where(g > 1, b_nvl, inf)

    ring_net = ops.where(crossing, ops.minimum(b_nic, uplink), b_nic)
    tree_net = ops.where(crossing, ops.minimum(b_nic, uplink / 2.0), b_nic)
    ring_bus = ops.minimum(nvl_if_used, ops.where(multi, g * ring_net, inf))
    # A double binary tree over 2 domains sends each byte across the network once per direction (each domain
    # is the other's only peer) instead of twice: NCCL models it with the intra bandwidth for nNodes <= 2
    # (tuning.cc: bw = nNodes <= 2 ? bwIntra : bwInter).
    tree_net2 = ops.where(d <= 2, 2.0 * tree_net, tree_net)
    tree_bus = TREE_FACTOR * ops.minimum(nvl_if_used, ops.where(multi, g * tree_net2, inf))

    hop_us = k.hop_us
    net_extra_us = k.net_extra_us
    simple_x = k.simple_extra_x
    hops = ops.where(crossing, 3.0, 1.0)
    hop_lat = hops * hop_us
    g_gt1 = g > 1
    llmax = ops.where(multi, ops.where(d <= 2, k.llmax_multi[0], k.llmax_multi[1]), k.llmax_single)
    # LL / LL128 across a network that lacks in-order 128-byte delivery: not available (Simple only)
    ll_ok = single if not k.net_ll else True
    net_oh = k.net_overhead_us
    sel_extra_us = k.sel_extra_us

    is_ar = coll == ALL_REDUCE
    is_agrs = (coll == ALL_GATHER) | (coll == REDUCE_SCATTER)
    is_chain = (coll == BROADCAST) | (coll == REDUCE)
    is_a2a = coll == ALLTOALL
    is_p2p = is_a2a | (coll == SEND_RECV)
    frac = (n - 1.0) / n
    bf = ops.where(is_ar, 2.0 * frac, ops.where(is_agrs, frac, 1.0))  # ring bytes/size per rank
    nsteps = ops.where(is_ar, 2.0 * (n - 1.0), n - 1.0)
    ninter = ops.where(is_ar, 2.0 * (d - 1.0), d - 1.0)
    size_GB = size * 1e-9

    def channel_limited_GB(min_bytes_per_channel):
        """Bytes (GB) the bandwidth term must be charged for once NCCL's channel count is known.
        NCCL runs a call on nc channels (one thread block each), dropping channels while
        size < nc x threads x per-thread threshold (enqueue.cc), and each channel carries only
        1/n_channels of the bus bandwidth. So below one channel's minimum the call moves at one
        channel's speed (size x n_channels), between 1 and n_channels channels every channel
        carries ~min_bytes (flat), and above that all channels run (size). Written with min/max
        only, so the time is exactly non-decreasing in size."""
        return ops.maximum(ops.minimum(size, min_bytes_per_channel) * k.n_channels, size) * 1e-9

    def consider(a: int, p: int, valid, lat_us, sec_per_GB, pipe_us=0.0, charged_GB=None, net_steps=0.0,
                 floor_us=None, chunked=None) -> None:
        if a not in allowed_a or p not in allowed_p:
            return
        bw_s = (size_GB if charged_GB is None else charged_GB) * sec_per_GB
        if chunked is not None:
            # a Simple ring across domains: its latency from NCCL's ring chunking (``ring_chunked_lat``), no fill
            lat_us, floor_us = chunked(bw_s * 1e6)
        elif p == SIMPLE:
            # Pipeline fill of the chunked Simple protocol (optimal chunking): 2 sqrt(pipe x S/B), pipe = the
            # latency of the steps after the first. Inside one NVLink domain the model also charges + pipe (as
            # calibrated on the reference DGX H100 NVLS rows). Across domains it does not: a k-chunk pipeline
            # over D hops of latency L takes D L + (k - 1 + D) c/B, so the hops' latency appears once -- it is
            # already ``lat_us`` -- and charging it again doubles every Simple latency across nodes. (Simple rings
            # across domains do not come here: ``chunked``, NCCL's ring chunking.)
            fill_us = 2.0 * ops.sqrt(bw_s * 1e6 * pipe_us)
            if not any_multi:
                lat_us = lat_us + pipe_us + fill_us
            elif any_single:
                lat_us = lat_us + fill_us + ops.where(multi, 0.0, pipe_us)
            else:
                lat_us = lat_us + fill_us
        lat_s = lat_us * 1e-6
        t = lat_s + bw_s
        if floor_us is not None:  # a bound that runs concurrently with the transfer: time = max(lat + bw, floor)
            # where it binds the time is the bound as is (exactly monotone in size); elsewhere every value stays
            # bit-identical to the unbounded one, whatever else is in the batch
            floor_s = floor_us * 1e-6
            binds = floor_s > t
            t = ops.where(binds, floor_s, t)
            lat_s = ops.where(binds, floor_s - bw_s, lat_s)
        if sel_extra_us:
            # NCCL picks by its own estimate, in which each network step costs the latency the net plugin
            # reports instead of the transport's physical latency (per transport latency the step pays: x2 for
            # Simple where NCCL flushes, see GDR_FLUSH_X)
            best.offer(a, p, valid, t, lat_s, bw_s, t + net_steps * (sel_extra_us * (simple_x if p == SIMPLE else 1.0)) * 1e-6)
        else:
            best.offer(a, p, valid, t, lat_s, bw_s)

    def net_lat(a: int, p: int):
        if a == NVLS_TREE:
            base = k.nvls_tree_net_us
        else:
            base = NET_LAT_US[a][p] if a != RING else ops.where(g_gt1, NET_LAT_US[RING][p], NET_LAT_US[TREE][p])
        return base + (net_extra_us * (simple_x if p == SIMPLE else 1.0)) + hop_lat

    ring_valid = is_ar | is_agrs | is_chain
    tree_valid = is_ar & (n > 1)
    log2d = ops.log2i(d)
    # NVLink hops of the tree's chain inside a domain: nRanks / nNodes - 1, as NCCL's own latency (tuning.cc, 2.19 ..
    # 2.29.2: 2 x ((nRanks/nNodes - 1) x intraLat + log2i(nNodes) x interLat); on multi-node NVLink nNodes counts
    # cliques, init.cc) -- the mean domain share, not the smallest one (``g``), which sets the NIC bandwidth only.
    # Equal to g - 1 wherever the ranks fill their domains evenly.
    tree_chain = ops.floor(n / d) - 1.0
    tree_x = ops.tree_x(size)

    def ring_chunked_lat(base_us, steps_us, bw_us, net_step_us, charged_GB):
        """Latency (time - bandwidth time) of a Simple ring across domains from NCCL's ring chunking
        (``RING_SIMPLE_CHUNK_STEPS``). A channel carries size / channels bytes in L = ceil(them / (n x chunkSize))
        loops of nsteps steps (2(n-1) all-reduce, n-1 all-gather / reduce-scatter), each step one chunk that a rank
        sends after the previous rank's slice of it has arrived, so the ring makes nsteps x L steps one after the
        other, each taking the longest of: the chunk at the channel's bandwidth (c, in all: ``bw_us``); the mean
        step latency plus one slice (steps_us / nsteps + c / 2); and the credit window: a connection has
        NCCL_STEPS slots, a chunk takes RING_SIMPLE_CHUNK_STEPS of them, and a slot returns only after the data
        crossed the network and the receiver's re-post came back (2 x the network step latency, as
        ``CREDIT_WINDOW_STEPS``), so every NCCL_STEPS / chunkSteps = 2 steps take >= 2 net latencies + a chunk.
        Broadcast / reduce (a chain, chunks of buffSize / NCCL_STEPS): the first chunk is stored and forwarded
        through the n - 1 hops, the rest follow at the channel's bandwidth: steps_us + bw + (n - 2) x first chunk."""
        nch = ops.minimum(ops.maximum(size / CHANNEL_MIN_BYTES[SIMPLE], 1.0), k.n_channels)
        per_ch = size / nch
        ring_chunk = k.buffsize / NCCL_STEPS * RING_SIMPLE_CHUNK_STEPS
        loops = ops.maximum(per_ch / (n * ring_chunk), 1.0)
        steps = nsteps * loops
        window = RING_SIMPLE_CHUNK_STEPS / NCCL_STEPS
        ring_us = ops.maximum(ops.maximum(bw_us, steps_us * loops + bw_us / RING_SIMPLE_SLICES),
                              (2.0 * net_step_us * steps + bw_us) * window)
        first_chunk_us = bw_us * ops.minimum(1.0, k.buffsize / NCCL_STEPS / ops.maximum(per_ch, 1.0))
        chain_us = steps_us + bw_us + (n - 2.0) * first_chunk_us
        # the ring still runs through each domain's g GPUs over NVLink as a one-domain ring of g ranks does: it takes
        # at least that ring's time (the model's one-domain Simple ring, fill included), a bound returned apart so
        # that where it binds the time is exactly the bound (``consider`` floor_us)
        steps_g = ops.where(is_ar, 2.0, 1.0) * (g - 1.0)
        bf_g = ops.where(is_chain, ops.where(g > 1, 1.0, 0.0), steps_g / ops.maximum(g, 1.0))
        bw_g = charged_GB * 1e6 * bf_g / b_nvl
        nvl_us = steps_g * k.nvl_step_us[RING][SIMPLE]
        pipe_g = ops.maximum(nvl_us - k.nvl_step_us[RING][SIMPLE], 0.0)
        one_domain_us = base_us + nvl_us + pipe_g + 2.0 * ops.sqrt(bw_g * pipe_g) + bw_g
        return base_us + ops.where(is_chain, chain_us, ring_us) - bw_us, one_domain_us

    for p in (LL, LL128, SIMPLE):
        # --- ring (all collectives except alltoall / send-recv) ----------------------------------
        bus = ring_bus if p == SIMPLE else (LL128_RING_FACTOR * ring_bus if p == LL128 else ops.minimum(llmax, 0.5 * ring_bus))
        charged = channel_limited_GB(CHANNEL_MIN_BYTES[p])
        # ring LL threshold scales with nRanks
        ring_charged = channel_limited_GB(CHANNEL_MIN_BYTES[p] * n) if p == LL else charged
        ring_net_us = net_lat(RING, p)
        intra = k.nvl_step_us[RING][p]
        # every step of a ring that crosses the network is floored by the network's per-step cost: NCCL's proxy
        # overhead (x3 Simple) and, for LL/LL128 (one message per step), the credit window (CREDIT_WINDOW_STEPS)
        floor = net_oh * (3.0 if p == SIMPLE else 1.0)
        if p != SIMPLE:
            floor = ops.maximum(floor, 2.0 * ring_net_us / CREDIT_WINDOW_STEPS)
        intra = ops.where(multi, ops.maximum(intra, floor), intra)
        steps_us = (nsteps - ninter) * intra + ninter * ring_net_us
        lat = k.base_us[RING][p] + steps_us
        pipe = ops.maximum(steps_us - intra, 0.0)  # all steps but the first
        p_ok = ring_valid if p == SIMPLE or k.net_ll else ring_valid & ll_ok
        chunked = None
        if p == SIMPLE and any_multi:
            def chunked(bw_us, lat=lat, steps_us=steps_us, pipe=pipe, base_r=k.base_us[RING][p], net_us=ring_net_us,
                        charged=ring_charged):
                fill = 2.0 * ops.sqrt(bw_us * pipe)  # one NVLink domain: the generic fill, as before
                lat_multi, floor_multi = ring_chunked_lat(base_r, steps_us, bw_us, net_us, charged)
                return ops.where(multi, lat_multi, lat + fill + pipe), ops.where(multi, floor_multi, 0.0)
        consider_kw = {"chunked": chunked} if chunked is not None else {}
        proxy_us = None
        if p != SIMPLE and any_multi:
            # one proxy thread per rank handles all its channels' network messages (RING_STEP_DATA_BYTES), on the
            # channels the call runs on (fewer for small sizes, as in channel_limited_GB)
            channels = ops.minimum(ops.maximum(size / (CHANNEL_MIN_BYTES[p] * (n if p == LL else 1.0)), 1.0),
                                   k.n_channels)
            # a broadcast / reduce chain sends each chunk over a connection once, not once per ring step
            messages = ops.maximum(ops.where(is_chain, 1.0, nsteps), size * bf / (channels * RING_STEP_DATA_BYTES[p]))
            connections = ops.maximum(1.0, 2.0 * channels / g)
            proxy_us = ops.where(multi, k.base_us[RING][p] + connections * messages * net_oh, 0.0)
        consider(RING, p, p_ok, lat, bf * ops.inv(bus), pipe, ring_charged, ninter, proxy_us, **consider_kw)
        # --- tree (all-reduce) --------------------------------------------------------------------
        tbus = tree_bus if p == SIMPLE else (
            tree_bus * ops.where(multi, 120.0 / 128.0, 7.0 / 9.0) if p == LL128 else ops.minimum(tree_bus * TREE_LL_FACTOR, llmax))
        # each network crossing also pays the host CPU's proxy post beyond the Intel one in NCCL's constants
        tree_net_us = net_lat(TREE, p) + (net_oh - NET_OVERHEAD_US) * TREE_NET_CPU_EXCESS_X[p]
        steps_us = 2.0 * (tree_chain * k.nvl_step_us[TREE][p] + log2d * tree_net_us)
        t_ok = tree_valid if p == SIMPLE or k.net_ll else tree_valid & ll_ok
        tree_lat = k.base_us[TREE][p] + steps_us
        tree_kw = {}
        if p == SIMPLE and any_multi:
            def tree_chunked(bw_us, lat=tree_lat, pipe=steps_us):
                """A Simple tree across domains fills its pipeline by store and forward of one chunk (``TREE_SIMPLE_
                CHUNK_STEPS``): the chunk's time on every hop of the chain up and down but the slowest (that one is
                the bandwidth term). One NVLink domain keeps the generic fill."""
                nch = ops.minimum(ops.maximum(size / CHANNEL_MIN_BYTES[SIMPLE], 1.0), k.n_channels)
                full = k.buffsize / NCCL_STEPS * TREE_SIMPLE_CHUNK_STEPS
                step = full
                if k.tree_simple_halving:
                    depth = tree_chain + log2d
                    for times, floor in TREE_SIMPLE_HALVING:
                        for _ in range(max(0, math.ceil(math.log2(full / floor)))):  # enough to reach the floor
                            step = ops.where((ops.floor(size / (nch * step)) < depth * times) & (step > floor),
                                             step / 2.0, step)
                chunk = ops.minimum(size / nch, step)
                # a channel's share of the GPU's NVLink and of the domain's NICs (one thread block per channel)
                t_nvl = ops.where(tree_chain > 0, chunk * k.n_channels / (b_nvl * 1e3), 0.0)
                t_net = chunk * k.n_channels / (ops.maximum(g * tree_net, 1e-300) * 1e3)
                fill = 2.0 * tree_chain * t_nvl + 2.0 * log2d * t_net - ops.maximum(t_nvl, t_net)
                one_domain = lat + pipe + 2.0 * ops.sqrt(bw_us * pipe)
                return ops.where(multi, lat + fill, one_domain), 0.0
            tree_kw = {"chunked": tree_chunked}
        consider(TREE, p, t_ok, tree_lat, 2.0 * ops.inv(tbus * ops.tree_correction(p, tree_x)),
                 steps_us, charged, 2.0 * log2d, **tree_kw)

    # --- NVLS (single domain) and NVLS-tree (across domains) ------------------------------------
    if k.nvls:
        b_nvls = k.b_nvls
        nvls_ok = (g >= 2) & single
        lat = k.nvl_step_us[NVLS][SIMPLE]
        nvl_step = k.nvl_step_us[RING][SIMPLE]  # reduce stage -> multicast stage
        heads = ops.minimum(n, NVLS_MAX_HEADS)  # NVLS_MAX_HEADS: a head moves S (1 + 1/heads)
        consider(NVLS, SIMPLE, is_ar & nvls_ok, lat, (heads + 1.0) / heads / b_nvls, nvl_step)
        consider(NVLS, SIMPLE, is_agrs & nvls_ok, lat, frac / b_nvls, nvl_step)
        if k.has_scale_out:
            # each NVLS head carries 1/heads of the data over its NIC; NCCL has at most NCCL_MAX_NVLS_ARITY = 32
            # heads per node / NVLink clique (src/include/device.h; search.cc maxChannels = min(32, nGPUs)), and on
            # GB200 multi-node NVLink it uses 16 NICs between domains (ScaleUp.inter_domain_nics)
            heads = ops.minimum(g, k.nvls_heads)  # the same heads run the NVLink stage (NVLS_MAX_HEADS)
            net_share = ops.where(d <= 2, 1.0, 2.0) / ops.maximum(heads * tree_net, 1e-300)
            c = ops.maximum((heads + 1.0) / heads / b_nvls, ops.where(tree_net > 0, net_share, inf))
            net_steps = 2.0 * log2d * net_lat(NVLS_TREE, SIMPLE)
            lat = k.nvl_step_us[NVLS_TREE][SIMPLE] + net_steps
            consider(NVLS_TREE, SIMPLE, is_ar & (g >= 2) & multi, lat, c, net_steps + nvl_step, None, 2.0 * log2d)

    # --- pairwise p2p: alltoall and send/recv ---------------------------------------------------
    nvl_bytes = ops.where(is_a2a, (g - 1.0) / n, ops.where(multi, 0.0, 1.0))
    net_bytes = ops.where(is_a2a, (n - g) / n, ops.where(multi, 1.0, 0.0))
    # share of NIC traffic that leaves the leaf group, and job NICs per rail leaf sending it
    ranks_in_group = ops.minimum(kk * k.gpus_per_node, n)
    phi = ops.minimum(ops.maximum((n - ranks_in_group) / ops.maximum(n - g, 1.0), 0.0), 1.0)
    # bytes one rail leaf pushes up per byte of a rank's NIC traffic: k NICs x share phi leaving the group
    up_load = ops.where(is_a2a, kk * phi, 1.0)
    c_nvl = nvl_bytes / (b_nvl * P2P_EFFICIENCY)
    c_net = ops.where(net_bytes > 0, net_bytes * ops.inv(b_nic), 0.0)
    c_spine = ops.where(crossing & (net_bytes > 0) & (up_load > 0), net_bytes * up_load * ops.inv(uplink), 0.0)
    c_p2p = ops.maximum(ops.maximum(c_nvl, c_net), c_spine)
    p2p_valid = is_p2p & (n > 1)
    # NCCL picks the p2p protocol by a byte threshold per peer (P2P_LL_THRESHOLD_BYTES), not by cost: LL at or below
    # it where LL can run, Simple above -- so the time can drop where the rule switches (twice the bytes at Simple's
    # bandwidth can take less than the bytes at LL's half rate).
    ll_region = ops.where(is_a2a, size / n, size) <= _p2p_ll_threshold(ops, k, n, multi)
    ll_runs = LL in allowed_p and PAIRWISE in allowed_a
    a2a_net_us = ops.where(is_a2a, (n - g) * net_oh, 0.0)
    for p in (LL, SIMPLE):
        lat = (k.base_us[RING][p] + k.nvl_step_us[RING][p]
               + ops.where(multi, net_lat(RING, p) + a2a_net_us, 0.0))
        if p == LL:
            p_ok = p2p_valid & ll_region if k.net_ll else p2p_valid & ll_ok & ll_region
        else:
            # Simple wherever LL does not run: above the threshold, LL excluded, or LL unavailable on this network
            if not ll_runs:
                p_ok = p2p_valid
            elif k.net_ll:
                p_ok = p2p_valid & ops.not_(ll_region)
            else:
                p_ok = p2p_valid & (ops.not_(ll_region) | multi)
        consider(PAIRWISE, p, p_ok, lat, c_p2p * (2.0 if p == LL else 1.0),
                 k.nvl_step_us[RING][SIMPLE])


def _single_code(collective: object) -> tuple[int, tuple[int, ...]] | None:
    """(code, shape) of a single collective given as a name, an integer or a 1-element array."""
    if isinstance(collective, str):
        key = collective.strip().lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key in _CODE_OF:
            return _CODE_OF[key], ()
        return int(collective_codes(collective)), ()  # raises the standard ValueError
    if isinstance(collective, (int, np.integer)) and not isinstance(collective, bool):
        if not 0 <= int(collective) < len(COLLECTIVES):
            collective_codes(np.asarray(collective))  # raises the standard ValueError
        return int(collective), ()
    if isinstance(collective, np.ndarray) and collective.size == 1:
        return int(collective_codes(collective).reshape(-1)[0]), collective.shape
    return None


def _single_size(size_bytes: object) -> tuple[float, tuple[int, ...]] | None:
    """(size, shape) of a single size given as a number or a 1-element numeric array."""
    if isinstance(size_bytes, (int, float, np.integer, np.floating)) and not isinstance(size_bytes, bool):
        return float(size_bytes), ()
    if isinstance(size_bytes, np.ndarray) and size_bytes.size == 1 and size_bytes.dtype.kind in "iuf":
        return float(size_bytes.reshape(-1)[0]), size_bytes.shape
    return None


def estimate(topology: FabricTopology, collective: np.ndarray | str | int, size_bytes: np.ndarray | float,
             placement: Placement, *, algorithms: Iterable[str] | None = None,
             protocols: Iterable[str] | None = None,
             nccl_version: tuple[int, ...] | str | None = None) -> Estimate:
    """Time of ``collective`` on ``size_bytes`` for ``placement`` (all broadcast together).

    ``nccl_version`` (e.g. ``(2, 27, 3)`` or ``"2.27.3"``), when the caller knows it, selects the
    version-dependent choices: which algorithms exist (``ALGORITHM_SINCE``) and the NVLS-tree network latency
    NCCL uses (``NVLS_TREE_NET_LAT_US_BY_VERSION``). ``None`` = a current NCCL (2.19 .. 2.28).

    ``algorithms`` / ``protocols`` restrict the candidates like NCCL_ALGO / NCCL_PROTO
    (e.g. ``algorithms=("ring", "tree", "pairwise")`` for NCCL_NVLS_ENABLE=0).
    Live state (failed NICs/uplinks, background utilization) is carried by the placement
    (see ``placement_from_gpu_ids(..., link_state)``).
    A single (collective, size, placement) -- scalars or 1-element arrays -- runs the same model on
    Python floats (microseconds);
    anything else runs it vectorized over the broadcast shape.
    """
    if not isinstance(placement, Placement):
        raise ValueError("placement must be a Placement (see placement_from_gpu_ids / placement_packed)")
    allowed_a = _allowed(algorithms, ALGORITHMS, "algorithm")
    allowed_p = _allowed(protocols, PROTOCOLS, "protocol")
    version = _version(nccl_version)
    if version is not None:
        allowed_a = frozenset(a for a in allowed_a if version >= ALGORITHM_SINCE.get(ALGORITHMS[a], (0, 0, 0)))
    consts = _topo_constants(topology, version)
    if placement.n_ranks.size == 1:
        one_c, one_s = _single_code(collective), _single_size(size_bytes)
        if one_c is not None and one_s is not None:
            est = _estimate_scalar(topology, consts, one_c[0], one_s[0], placement, allowed_a, allowed_p)
            shape = np.broadcast_shapes(one_c[1], one_s[1], placement.n_ranks.shape)
            if shape:
                est = Estimate(*(getattr(est, f).reshape(shape) for f in Estimate.__dataclass_fields__))
            return est

    coll = collective_codes(collective)
    size = np.asarray(size_bytes, dtype=np.float64)
    if np.isnan(size).any() or (size < 0).any():
        raise ValueError("size_bytes must be >= 0 (got a negative or NaN size)")
    if (placement.n_ranks > topology.n_gpus).any():
        raise ValueError(f"placement has more ranks than the {topology.n_gpus} GPUs of topology {topology.name!r}")

    coll, size, n_i, d_i, g_i, lg_i, k_i, nicf, spf = np.broadcast_arrays(
        coll, size, placement.n_ranks, placement.n_domains, placement.ranks_per_domain,
        placement.n_leaf_groups, placement.max_nodes_per_leaf_group, placement.nic_fraction,
        placement.spine_fraction)
    if not consts.has_scale_out and (d_i > 1).any():
        raise ValueError("placement spans several NVLink domains but the topology has no scale-out network")
    n = n_i.astype(np.float64)
    best = _Best(coll.shape, separate_key=consts.sel_extra_us != 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 x inf (unused links) is masked by where()
        _core(_VectorOps, consts, best, allowed_a, allowed_p, coll, size, n, d_i.astype(np.float64),
              g_i.astype(np.float64), lg_i, k_i.astype(np.float64), nicf, spf)

    # nothing to communicate: one rank or zero bytes
    idle = (n_i <= 1) | (size == 0)
    best_t = np.where(idle, 0.0, best.t)
    best_lat = np.where(idle, 0.0, best.lat)
    best_bw = np.where(idle, 0.0, best.bw)
    best_a = np.where(idle, NO_ALGORITHM, best.a).astype(np.int8)
    best_p = np.where(idle, NO_ALGORITHM, best.p).astype(np.int8)
    if (~idle & ~np.isfinite(best_t) & (best_a == NO_ALGORITHM)).any() and len(allowed_a) != len(ALGORITHMS):
        raise ValueError("no allowed algorithm/protocol can run some of the requested collectives")
    with np.errstate(divide="ignore", invalid="ignore"):
        algbw = np.where(best_t > 0, size / best_t * 1e-9, 0.0)
    busbw = algbw * np.where(idle, 0.0, bus_factor(coll, np.maximum(n, 1.0)))
    return Estimate(best_t, best_lat, best_bw, best_a, best_p, algbw, busbw)


def _estimate_scalar(topology: FabricTopology, consts: _TopoConstants, code: int, size: float,
                     placement: Placement, allowed_a: frozenset, allowed_p: frozenset) -> Estimate:
    if math.isnan(size) or size < 0:
        raise ValueError("size_bytes must be >= 0 (got a negative or NaN size)")
    n_i = placement.n_ranks.item()
    if n_i > topology.n_gpus:
        raise ValueError(f"placement has more ranks than the {topology.n_gpus} GPUs of topology {topology.name!r}")
    d_i = placement.n_domains.item()
    if not consts.has_scale_out and d_i > 1:
        raise ValueError("placement spans several NVLink domains but the topology has no scale-out network")
    if n_i <= 1 or size == 0:
        t = lat = bw = 0.0
        a = p = NO_ALGORITHM
    else:
        best = _Best(None)
        _core(_ScalarOps, consts, best, allowed_a, allowed_p, code, size, float(n_i), float(d_i),
              float(placement.ranks_per_domain.item()), placement.n_leaf_groups.item(),
              float(placement.max_nodes_per_leaf_group.item()), placement.nic_fraction.item(),
              placement.spine_fraction.item())
        t, lat, bw, a, p = best.t, best.lat, best.bw, best.a, best.p
        if a == NO_ALGORITHM and len(allowed_a) != len(ALGORITHMS):
            raise ValueError("no allowed algorithm/protocol can run some of the requested collectives")
    algbw = size / t * 1e-9 if t > 0 else 0.0
    nf = float(max(n_i, 1))
    bfac = 2.0 * (nf - 1.0) / nf if code == ALL_REDUCE else (
        (nf - 1.0) / nf if code in (ALL_GATHER, REDUCE_SCATTER, ALLTOALL) else 1.0)
    busbw = algbw * bfac if n_i > 1 and size != 0 else 0.0
    f64 = np.float64
    return Estimate(np.array(t, f64), np.array(lat, f64), np.array(bw, f64),
                    np.array(a, np.int8), np.array(p, np.int8), np.array(algbw, f64), np.array(busbw, f64))


def _version(v: tuple[int, ...] | str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) of an NCCL version given as a tuple or a string like "2.27.3" / "v2.19.3-1"."""
    if v is None:
        return None
    if isinstance(v, str):
        parts = [int(x) for x in re.findall(r"\d+", v)[:3]]
    else:
        parts = [int(x) for x in tuple(v)[:3]]
    if len(parts) < 2:
        raise ValueError(f"not an NCCL version: {v!r}")
    return (parts + [0])[0], parts[1], (parts + [0, 0])[2]


def _allowed(names: Iterable[str] | None, table: tuple[str, ...], what: str) -> frozenset:
    if names is None:
        return _ALL_OF[len(table)]
    lower = [t.lower() for t in table]
    out = set()
    for name in names:
        if name.lower() not in lower:
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")
        out.add(lower.index(name.lower()))
    return frozenset(out)
