"""Run every benchmark, or the ones named: `python -m bench [fabric_core fabric_grpc ingest power cooling jobs otel]`.

Each benchmark is a module in this folder with `main() -> dict` that writes its own JSON result.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("fabric", "ingest", "power", "cooling", "jobs", "otel")  # fabric runs fabric_core + fabric_grpc


def main(argv: list[str]) -> int:
    failed = []
    for name in argv or BENCHMARKS:
        print(f"== bench {name}", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # a broken benchmark must not hide the others' results
            print(f"bench {name} failed: {exc!r}", flush=True)
            failed.append(name)
        print(f"== bench {name} took {time.monotonic() - started:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
