"""Facility files the tests share (unit and integration): written from a preset with a few fields changed."""

from __future__ import annotations

from pathlib import Path

import yaml

from twin.core.facility.spec import PRESETS_DIR


def small_leaf_facility(directory: Path, site_id: str | None = None, oversubscription: float = 8.0) -> Path:
    """The DGX H100 SuperPOD preset with 8 nodes per leaf and 4 spines at `oversubscription` (8:1 by default),
    written to `directory`/facility.yaml (`site_id`: the preset's unless given): small leaf groups, so a job of a
    few nodes can cross the spine and a degraded uplink matters."""
    spec = yaml.safe_load((PRESETS_DIR / "dgx-h100-su.yaml").read_text())
    if site_id is not None:
        spec["site_id"] = site_id
    spec["fabric"].update(nodes_per_leaf=8, spines=4, oversubscription=oversubscription)
    path = Path(directory) / "facility.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
