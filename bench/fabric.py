"""The fabric benchmark the issue names: `python -m bench fabric` -> bench/results/fabric.json.

Runs the core benchmark (bench/fabric_core.py: vectorized estimates/s, 100k-GPU estimate) and the
gRPC benchmark (bench/fabric_grpc.py: unary p50/p99 vs the health-check baseline) in one run and
writes both results under `core` and `grpc` (keys documented in bench/README.md). The two parts
still write their own files too.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import fabric_core, fabric_grpc

RESULTS = Path(__file__).parent / "results" / "fabric.json"


def main() -> dict:
    result = {"core": fabric_core.main(), "grpc": fabric_grpc.main()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
