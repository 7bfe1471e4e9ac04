"""The facility spec: one declarative YAML file, validated by pydantic (DESIGN §3).

site → utility feeds / on-site sources → transformers → UPS → PDUs → racks;
cooling plant → facility water → CDUs / CRAHs → racks (twin.core.facility.cooling);
racks → nodes → GPUs; NVLink domains; scale-out fabric.
Racks are declared as rows of identical racks so a 100,000-GPU site stays a short file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.core.facility.cooling import CoolingPlant, check_cooling
from twin.core.facility.power import (
    ConversionStage,
    OnSiteSource,
    PowerChain,
    PowerTopology,
    UtilityFeed,
    check_power_chain,
)

PRESETS_DIR = Path(__file__).parent / "presets"
__all__ = [
    "ConversionStage", "CoolingPlant", "FacilitySpec", "GpuModel", "Hall", "NodePower", "NodeType", "OnSiteSource",
    "PowerChain", "PowerTopology", "RackRow", "RackType", "ScaleOutFabric", "UtilityFeed", "load_facility_spec",
    "load_spec", "preset_names",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuModel(_Strict):
    idle_w: float = Field(gt=0, description="board power at idle clocks")
    max_w: float = Field(gt=0, description="default board power limit (TDP)")
    min_cap_w: float = Field(gt=0, description="lowest settable power limit")
    hbm_gb: float = Field(gt=0)
    hbm_bw_TBps: float = Field(gt=0)
    dense_bf16_tflops: float = Field(gt=0)
    nvlink_generation: int = Field(ge=3, le=6)
    nvlink_bw_GBps: float = Field(gt=0, description="per GPU per direction, raw")
    max_sm_clock_mhz: float = Field(gt=0)
    max_mem_clock_mhz: float = Field(gt=0)
    slowdown_temp_c: float = 87.0
    shutdown_temp_c: float = 92.0
    hbm_max_temp_c: float = 95.0
    # power-model facts (optional; the power twin derives documented defaults when absent)
    idle_min_clock_w: float | None = Field(None, gt=0, description="idle board power at the lowest clocks")
    idle_max_clock_w: float | None = Field(None, gt=0, description="idle board power at the max SM clock")
    min_sm_clock_mhz: float | None = Field(None, gt=0, description="lowest SM clock the power limiter uses")
    tensor_flops_per_clock_per_sm: float | None = Field(None, gt=0, description="dense BF16 FLOP/clock/SM")
    sms: int | None = Field(None, ge=1, description="streaming multiprocessors")

    @model_validator(mode="after")
    def _power_order(self) -> GpuModel:
        if not self.idle_w < self.max_w or not self.min_cap_w <= self.max_w:
            raise ValueError("need idle_w < max_w and min_cap_w <= max_w")
        return self


class NodePower(_Strict):
    """Non-GPU node power by component (DC side, before the node's conversion stages)."""

    cpus: int = Field(1, ge=0)
    cpu_idle_w: float = Field(ge=0)
    cpu_max_w: float = Field(ge=0)
    memory_w: float = Field(0.0, ge=0)
    nic_w: float = Field(0.0, ge=0, description="per scale-out NIC (node_types.*.nics)")
    storage_w: float = Field(0.0, ge=0)
    fans_and_platform_w: float = Field(0.0, ge=0)


class NodeType(_Strict):
    gpu_model: str
    gpus: int = Field(ge=1, le=16)
    nics: int = Field(ge=0, description="scale-out NICs per node")
    cpu_and_platform_w: float = Field(ge=0, description="non-GPU node power at load")
    max_w: float = Field(gt=0, description="node power rating")
    nvlink_domain_gpus: int = Field(ge=1, description="GPUs in one NVLink domain (8 HGX, 72 NVL72)")
    nvls: bool = False
    power: NodePower | None = Field(None, description="non-GPU node power by component (None: from cpu_and_platform_w)")
    conversion: list[ConversionStage] = Field([], description="node stages (PSU, DC-DC), innermost first")


class RackType(_Strict):
    node_type: str
    nodes: int = Field(ge=1, le=256)
    cooling: Literal["air", "rear_door", "liquid"]
    liquid_fraction: float = Field(0.0, ge=0, le=1, description="share of heat into the coolant")
    pdu_phases: int = Field(3, ge=1, le=3)
    other_loads_w: float = Field(0.0, ge=0, description="rack loads besides nodes (switches), before rack stages")
    conversion: list[ConversionStage] = Field([], description="rack stages (rectifier, power shelf), innermost first")


class RackRow(_Strict):
    id: str
    rack_type: str
    count: int = Field(ge=1)


class Hall(_Strict):
    id: str
    rows: list[RackRow] = Field(min_length=1)


class ScaleOutFabric(_Strict):
    kind: Literal["infiniband", "roce", "efa"]
    nic_gbps: float = Field(gt=0)
    rail_optimized: bool = True
    nodes_per_leaf: int = Field(ge=1, description="nodes whose same-rail NICs share a leaf")
    leaf_uplink_gbps: float = Field(gt=0)
    spines: int = Field(ge=1)
    oversubscription: float = Field(1.0, ge=1.0, description="leaf downlink:uplink bandwidth")
    switch_latency_s: float = Field(gt=0)
    nic_latency_s: float = Field(gt=0)
    nccl_buffsize_bytes: int | None = Field(None, gt=0, description="NCCL_BUFFSIZE the site's jobs run with; "
                                            "unset: NCCL's default (4 MiB), 8 MiB on EFA (aws-ofi-nccl >= 1.16.0)")


class FacilitySpec(_Strict):
    site_id: str
    description: str = ""
    gpu_models: dict[str, GpuModel]
    node_types: dict[str, NodeType]
    rack_types: dict[str, RackType]
    halls: list[Hall] = Field(min_length=1)
    power: PowerChain
    cooling: CoolingPlant
    fabric: ScaleOutFabric

    @model_validator(mode="after")
    def _references(self) -> FacilitySpec:
        for name, nt in self.node_types.items():
            if nt.gpu_model not in self.gpu_models:
                raise ValueError(f"node_types.{name}.gpu_model: unknown GPU model {nt.gpu_model!r}")
            if nt.nvlink_domain_gpus % nt.gpus and nt.gpus % nt.nvlink_domain_gpus:
                raise ValueError(f"node_types.{name}: nvlink_domain_gpus must be a multiple or divisor of gpus")
        for name, rt in self.rack_types.items():
            if rt.node_type not in self.node_types:
                raise ValueError(f"rack_types.{name}.node_type: unknown node type {rt.node_type!r}")
            nt = self.node_types[rt.node_type]
            if nt.nvlink_domain_gpus > nt.gpus and (rt.nodes * nt.gpus) % nt.nvlink_domain_gpus:
                raise ValueError(f"rack_types.{name}: multi-node NVLink domains must fill whole racks")
        ids = [row.id for hall in self.halls for row in hall.rows]
        if len(ids) != len(set(ids)):
            raise ValueError("halls: rack row ids must be unique")
        for hall in self.halls:
            for row in hall.rows:
                if row.rack_type not in self.rack_types:
                    raise ValueError(f"halls.{hall.id}.rows.{row.id}.rack_type: unknown {row.rack_type!r}")
        check_power_chain(self)
        check_cooling(self)
        return self


def load_spec(path: str | Path) -> FacilitySpec:
    with open(path, encoding="utf-8") as f:
        return FacilitySpec.model_validate(yaml.safe_load(f))


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_facility_spec(name_or_path: str) -> FacilitySpec:
    """A preset name (see `preset_names()`) or a path to a YAML file."""
    preset = PRESETS_DIR / f"{name_or_path}.yaml"
    if preset.exists():
        return load_spec(preset)
    path = Path(name_or_path)
    if path.exists():
        return load_spec(path)
    raise ValueError(f"facility {name_or_path!r} is neither a preset ({', '.join(preset_names())}) nor a file")
