"""`make run`'s stack (python -m twin.core.stack) from nothing: broker, PostgreSQL, services, status, clean stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_embedded_stack_runs_stores_answers_and_stops_cleanly(tmp_path):
    env = dict(os.environ, TWIN_STATE_DIR=str(tmp_path / ".twin"), PYTHONUNBUFFERED="1",
               OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    result = subprocess.run(
        [sys.executable, "-m", "twin.core.stack", "--duration", "25", "--status-interval", "4",
         "--racks", "2", "--rate-hz", "2", "--bad-fraction", "0.1"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert "!!" not in out, f"a service exited early:\n{out[-5000:]}"
    stored = [int(n) for n in re.findall(r"stored gpu_rows=(\d+)", out)]
    assert stored and stored[-1] > 0 and stored == sorted(stored), out[-3000:]
    assert stored[-1] % 32 == 0, "whole DGX H100 nodes of 8 GPUs x 4 per rack"
    assert re.search(r"fabric: all_reduce 1 GiB on 256 GPUs = [\d.]+ ms \(\w", out), out[-3000:]
    assert re.search(r"ingest lag>?=\d+ dlq>?=\d+", out), out[-3000:]
    assert out.rstrip().endswith("stopped."), out[-2000:]
    for log in ("ingest.log", "fabric.log", "facility-sim.log"):
        assert (tmp_path / ".twin" / "logs" / log).stat().st_size > 0
