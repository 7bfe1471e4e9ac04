"""Labelled bad-data injection: turn a share of outgoing records into known faults.

For each rack message, with probability `fraction`, one fault kind (uniformly) is applied:

  undecodable   value is not a RackTelemetryBatch (a truncated length-delimited field) → DLQ
  impossible    a physically impossible value: negative GPU power or a 400 °C GPU   → DLQ
  unknown_id    a rack id (key + body) or node id that is not in the facility spec  → DLQ
  future        sample_time one day in the future                                  → DLQ
  mismatched    a node's packed arrays have different lengths                      → DLQ
  duplicate     the good record is sent, then sent again byte-for-byte (same key, value and
                headers/ce_id): not bad data, at-least-once delivery — ingest must drop it

Except for `duplicate`, the faulty record replaces that tick's good record for the rack, so the
good records (and their GPU rows) are exactly the ones not listed as faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from twin.telemetry.v1 import telemetry_pb2 as pb

KINDS = ("undecodable", "impossible", "unknown_id", "future", "mismatched", "duplicate")
DLQ_KINDS = frozenset(KINDS) - {"duplicate"}
# Field 5 (nodes, length-delimited) claims 1,000 bytes but only 9 follow: never parses.
UNDECODABLE_VALUE = b"\x2a\xe8\x07" + b"\xde\xad\xbe\xef-bad"


@dataclass(frozen=True)
class Fault:
    kind: str
    detail: str
    value: bytes | None = None            # replacement value; None for `duplicate`
    rack_id: str | None = None            # replacement key/rack id (unknown_id on the rack)


class FaultInjector:
    """Decides per record whether (and which) fault to inject; deterministic for a seed."""

    def __init__(self, fraction: float, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"bad fraction must be in [0, 1], got {fraction}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.fraction = fraction
        self.kinds = tuple(kinds)
        self._rng = np.random.default_rng([seed, 0xBAD])

    def pick(self) -> str | None:
        if self.fraction <= 0.0 or self._rng.random() >= self.fraction:
            return None
        return self.kinds[int(self._rng.integers(len(self.kinds)))]

    def apply(self, kind: str, msg: pb.RackTelemetryBatch) -> Fault:
        """Build the faulty record for `kind` from a good message (which is left untouched)."""
        if kind == "duplicate":
            return Fault(kind, "exact duplicate of the previous record")
        if kind == "undecodable":
            return Fault(kind, "truncated protobuf", UNDECODABLE_VALUE)
        bad = pb.RackTelemetryBatch()
        bad.CopyFrom(msg)
        rack_id = None
        if kind == "impossible":
            gpus = bad.nodes[0].gpus
            if self._rng.random() < 0.5:
                gpus.power_w[0] = -250.0
                detail = f"{bad.nodes[0].node_id} gpu0 power_w=-250"
            else:
                gpus.gpu_temp_c[0] = 400.0
                detail = f"{bad.nodes[0].node_id} gpu0 gpu_temp_c=400"
        elif kind == "unknown_id":
            if self._rng.random() < 0.5:
                rack_id = f"ghost-{int(self._rng.integers(10_000)):04d}"
                bad.rack_id = rack_id
                detail = f"unknown rack {rack_id}"
            else:
                bad.nodes[-1].node_id = f"{msg.rack_id}-n97"
                detail = f"unknown node {msg.rack_id}-n97"
        elif kind == "future":
            t = bad.sample_time.ToDatetime() + timedelta(days=1)
            bad.sample_time.FromDatetime(t)
            detail = "sample_time +1 day"
        elif kind == "mismatched":
            gpus = bad.nodes[0].gpus
            del gpus.power_w[-1]
            detail = f"{bad.nodes[0].node_id} power_w has {len(gpus.power_w)} values for {len(gpus.gpu_index)} GPUs"
        else:  # pragma: no cover - guarded by KINDS
            raise ValueError(kind)
        return Fault(kind, detail, bad.SerializeToString(), rack_id)
