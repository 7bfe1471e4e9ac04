"""Fuzz suite report: inputs tried per target and the crashes found (falsifying inputs), printed at the
end of the run and written as JSON to $TWIN_FUZZ_REPORT when set (`python -m tests.fuzz` does)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ._support import EXAMPLES, INCLUDE_KNOWN, TRIED

_CRASHES: list[dict[str, str]] = []


def _falsifying(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Falsifying example" in line or "Failing test case" in line:
            out = []
            for more in lines[i:i + 40]:
                out.append(more.lstrip("E").rstrip())
                if more.strip().rstrip(",") in {")", "E   )", "E       )"}:
                    break
            return "\n".join(out)
    return "\n".join(lines[-15:])


def pytest_runtest_logreport(report) -> None:
    if report.failed and report.when == "call":
        text = report.longreprtext
        errors = [m.group(1) for ln in text.splitlines()
                  if (m := re.match(r"^[E|\s]*([A-Za-z_.]*(?:Error|Exception|Exit)\b.*)$", ln))]
        exc = "; ".join(dict.fromkeys(errors))
        _CRASHES.append({"test": report.nodeid, "error": exc[:500], "input": _falsifying(text)[:4000]})


def pytest_terminal_summary(terminalreporter) -> None:
    tr = terminalreporter
    tr.section("fuzz summary")
    tr.write_line(f"examples per test: {EXAMPLES} (TWIN_FUZZ_EXAMPLES); known crashes included: {INCLUDE_KNOWN}")
    for target, n in sorted(TRIED.items()):
        tr.write_line(f"  {target:<34} {n:>8} inputs tried")
    tr.write_line(f"  {'total':<34} {sum(TRIED.values()):>8} inputs tried, {len(_CRASHES)} crash(es) found")
    for crash in _CRASHES:
        tr.write_line(f"CRASH {crash['test']}: {crash['error']}")
        tr.write_line(crash["input"])
    path = os.environ.get("TWIN_FUZZ_REPORT")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({
            "examples_per_test": EXAMPLES, "known_crashes_included": INCLUDE_KNOWN,
            "inputs_tried": dict(sorted(TRIED.items())), "total_inputs": sum(TRIED.values()),
            "crashes": _CRASHES}, indent=2) + "\n")
        tr.write_line(f"report written to {path}")
