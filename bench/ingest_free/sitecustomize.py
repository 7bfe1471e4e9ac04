"""An upper-bound experiment for `python -m bench ingest`, never a real figure: BENCH_INGEST_FREE=decode or
=decode+validate (bench/ingest.py puts this folder on the ingest processes' PYTHONPATH, so Python imports this file
at start-up) makes the handler's decode, and validation, nearly free in those processes.

* decode: `decode_batches` decodes a rack's first batch for real and afterwards hands back that batch's arrays
  with the record's own key (site, rack, sample_time, sequence, source), so every later tick stores and publishes
  as before (same row counts and widths, the record's own bytes published) without cutting the wire bytes;
* validate: `validate_batches` finds nothing.

What is left is everything else ingest does per record (the kit's record decode, a RackBatch per record, digests,
rows, COPY, the ledger, publishing), so the drain rate of such a run bounds what any faster decoder and validator
(compiled or not) could reach with the same per-record design (bench/README.md, "ingest" section).
"""

import builtins
import os
import sys

_MODE = os.environ.get("BENCH_INGEST_FREE", "")
_STREAM = "twin.ingest.adapters.stream"


def _patch(stream) -> None:
    from twin.ingest.adapters import codec
    from twin.ingest.domain.model import RackBatch

    real = codec.decode_batches
    first: dict[str, RackBatch] = {}     # rack_id -> its first decoded batch
    times: dict[tuple[int, int], object] = {}

    def decode_batches(msgs, raws=None, **_):
        new = [i for i, m in enumerate(msgs) if m.rack_id not in first]
        if new:
            decoded = real([msgs[i] for i in new], None if raws is None else [raws[i] for i in new])
            for i, batch in zip(new, decoded, strict=True):
                if not isinstance(batch, RackBatch):
                    raise RuntimeError(f"BENCH_INGEST_FREE: the first batch of a rack did not decode: {batch}")
                first[msgs[i].rack_id] = batch
        out = []
        for m in msgs:
            b = first[m.rack_id]
            ts = m.sample_time
            at = times.get((ts.seconds, ts.nanos))
            if at is None:
                at = times[ts.seconds, ts.nanos] = codec.timestamp_to_datetime(ts)
            out.append(RackBatch.direct(m.site_id, m.rack_id, at, int(m.sequence), m.source, b.gpus, b.rack, b.links))
        return out

    if "decode" in _MODE:
        stream.decode_batches = decode_batches
    if "validate" in _MODE:
        stream.validate_batches = lambda batches, limits, now: [[] for _ in batches]
    sys.stderr.write(f"BENCH_INGEST_FREE={_MODE}: upper-bound experiment, not a real ingest\n")


if _MODE:
    _import = builtins.__import__

    def _watch(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        stream = sys.modules.get(_STREAM)
        if stream is not None and hasattr(stream, "IngestHandler"):   # the module has finished loading
            builtins.__import__ = _import
            _patch(stream)
        return module

    builtins.__import__ = _watch
