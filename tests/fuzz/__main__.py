"""Run the fuzz suite longer than CI does and report inputs tried and crashes found.

    python -m tests.fuzz                         # 5000 examples per test
    python -m tests.fuzz --examples 20000 --report bench/results/fuzz.json
    python -m tests.fuzz --known-crashes         # also generate inputs of the known, reported crashes

Same as `TWIN_FUZZ_EXAMPLES=N python -m pytest tests/fuzz -p no:cacheprovider --timeout=0`; CI runs
`pytest tests/fuzz` with the default of 200 examples per test. Exit status: pytest's (1 = crash found).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=5000, help="hypothesis examples per fuzz test")
    p.add_argument("--report", default="bench/results/fuzz.json", help="JSON report path ('' = none)")
    p.add_argument("--known-crashes", action="store_true", help="include inputs of known, reported crashes")
    p.add_argument("-k", default=None, help="only the fuzz tests matching this pytest expression")
    a = p.parse_args(argv)
    os.environ["TWIN_FUZZ_EXAMPLES"] = str(a.examples)
    if a.report:
        os.environ["TWIN_FUZZ_REPORT"] = a.report
    if a.known_crashes:
        os.environ["TWIN_FUZZ_KNOWN_CRASHES"] = "1"
    args = [str(HERE), "-q", "-p", "no:cacheprovider", "--timeout=0", "-o", "addopts="]
    if a.k:
        args += ["-k", a.k]
    return int(pytest.main(args))


if __name__ == "__main__":
    sys.exit(main())
