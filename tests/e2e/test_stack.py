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


class _Stack:
    """`python -m twin.core.stack` in its own process group (like a terminal's foreground job)."""

    def __init__(self, tmp_path) -> None:
        env = dict(os.environ, TWIN_STATE_DIR=str(tmp_path / ".twin"), PYTHONUNBUFFERED="1",
                   OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
        self.logs = tmp_path / ".twin" / "logs"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twin.core.stack", "--status-interval", "2", "--racks", "2", "--rate-hz", "2",
             "--bad-fraction", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.out: list[str] = []   # lines not yet matched
        self.seen: list[str] = []  # everything read

    def wait_for(self, pattern: str, timeout_s: float = 90.0) -> re.Match:
        import selectors
        import time

        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            for line in self.out:
                if m := re.search(pattern, line):
                    self.out = self.out[self.out.index(line) + 1:]
                    return m
            self.out = []
            if sel.select(timeout=1.0):
                line = self.proc.stdout.readline()
                if not line and self.proc.poll() is not None:
                    break
                self.seen.append(line)
                self.out.append(line)
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(self.seen)[-4000:]}")

    def ctrl_c(self) -> str:
        """SIGINT to the whole process group, as a terminal does on Ctrl-C."""
        import signal

        os.killpg(self.proc.pid, signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=120)
        return "".join(self.seen) + rest


def test_stack_restarts_a_killed_service_and_ctrl_c_stops_everything_in_order(tmp_path):
    import signal

    stack = _Stack(tmp_path)
    try:
        ingest_pid = int(stack.wait_for(r"^ingest\s+started \(pid (\d+)\)").group(1))
        stack.wait_for(r"stored gpu_rows=[1-9]\d*")
        os.kill(ingest_pid, signal.SIGKILL)
        stack.wait_for(r"!! ingest exited \(signal 9\); restarting in \d+ s")
        stack.wait_for(r"!! ingest restarted \(restart #1, pid \d+\)")
        before = int(stack.wait_for(r"stored gpu_rows=(\d+)").group(1))
        after = before
        for _ in range(30):  # rows keep arriving through the restarted ingest
            after = int(stack.wait_for(r"stored gpu_rows=(\d+)").group(1))
            if after > before:
                break
        assert after > before, "ingest did not resume storing after its restart"
    finally:
        out = stack.ctrl_c()
    # Ctrl-C reached the whole group: the stack stopped the simulator first, then the twins, cleanly,
    # and no service logged connection errors from a broker that went away under it.
    from twin.core.stack_services import STACK_SERVICES

    order = re.findall(r"^  (\S+) stopped \((clean|exit -?\d+)\)", out, re.M)
    names = [name for name, _ in order]
    assert names == [s.name for s in reversed(STACK_SERVICES)], out[-3000:]  # reverse start order
    assert names.index("facility-sim") < names.index("ingest"), "the simulator stops before ingest drains"
    assert all(how == "clean" for _, how in order), out[-3000:]
    assert out.rstrip().endswith("stopped."), out[-2000:]
    for name in names:
        text = (stack.logs / f"{name}.log").read_text(errors="replace")
        tail = text.split("--- restart #")[-1]
        assert "Traceback" not in tail, f"{name} logged a traceback on the way down:\n{tail[-3000:]}"
