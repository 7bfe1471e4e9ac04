"""Where the measured reference data lives (`shared/validation`, beside the repository).

`TWIN_VALIDATION_DIR` when set, else `<repo root>/../shared/validation`, the layout of a checkout
and of CI (DESIGN §7). Missing data is an error with the fix in its message, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The folder holding the workspace's pyproject.toml, found upwards from this file."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "libs").is_dir():
            return parent
    raise FileNotFoundError("cannot find the repository root (pyproject.toml) above twin.core")


def validation_dir() -> Path:
    env = os.environ.get("TWIN_VALIDATION_DIR")
    found = Path(env) if env else repo_root().parent / "shared" / "validation"
    if not found.is_dir():
        raise FileNotFoundError(f"validation data not found at {found}: set TWIN_VALIDATION_DIR to shared/validation")
    return found


def feed_bytes(relative: str) -> bytes:
    """A real payload from `validation/feeds/` (DCGM scrapes, Redfish resources, IB counters ...)."""
    return (validation_dir() / "feeds" / relative).read_bytes()
