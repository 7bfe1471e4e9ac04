"""`python -m twin.ingest`: rack telemetry ingestion (facility feeds, DCGM scrapes, Redfish push).

Runs until SIGTERM/SIGINT, then drains: the HTTP receiver stops, the consumer finishes its batch,
commits and leaves its group.

Garbage collection (this process only; tests that run IngestApp in-process keep CPython's defaults): a poll
keeps tens of thousands of container objects alive until it is written (records, headers, the batches'
tuples), so with CPython's default generation-0 threshold (700 allocations, `gc` module docs) the cyclic
collector ran ~50 times per 50k-GPU tick, re-scanning the same live objects, ~15-20 % of the CPU of decoding
and validating a tick (measured 2026-11-29 with gc.callbacks; in a whole 50k-GPU drain the ingest processes'
CPU per tick went 0.72-0.73 -> 0.69-0.70 s with the two settings below). Ingest makes next to no reference cycles, so
the threshold is raised (GC_GEN0_THRESHOLD), and once the service is up everything built at startup (imports,
the facility inventory, the clients) is moved out of the collector's view with gc.freeze() (CPython >= 3.7),
so the rare full collections do not walk it again.

The threshold is above what polls keep alive at once (issue 13, 2026-11-30): a poll holds ~30-45 tracked objects
per record of ours (Record, envelope, header tuples, the decoded batch's objects, store items; counted with
gc.get_count) plus aiokafka's ~8, so a poll of 2,000 records ~100k and the pipelined loop's two polls ~200k. At
50,000 a 100k-GPU capacity drain (20 ticks, two processes) still ran 14-16 young and one older collection per
process, each re-walking a poll's live objects: 0.20 s of each process's CPU (0.45-0.50 s with the pipelined loop),
gc.callbacks; at 300,000 none ran (only the startup gc.collect() below, 0.05 s). A young collection now runs once
that many objects outlive their poll (cycles refcounting cannot free; ingest makes few), which also bounds the
garbage held to about that many objects.
"""

import asyncio
import gc

from twin.core.runner import run_service
from twin.ingest.app import SERVICE, IngestApp, IngestConfig

GC_GEN0_THRESHOLD = 300_000  # container allocations between young collections (CPython default: 700)


async def _main(cfg: IngestConfig, stop: asyncio.Event) -> None:
    app = IngestApp(cfg)
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])

    async def freeze_when_ready() -> None:
        await app.ready.wait()
        gc.collect()
        gc.freeze()

    freezer = asyncio.create_task(freeze_when_ready())
    try:
        await app.run(stop)
    finally:
        freezer.cancel()


if __name__ == "__main__":
    run_service(SERVICE, IngestConfig, _main, __doc__)
