"""The power twin's pure model (numpy arrays and frozen dataclasses; no I/O)."""

from .alerts import Alert, power_alerts
from .conversion import ChainResult, Stage, apply_chain, apply_grouped
from .gpu import GpuPower, GpuPowerParams, default_params, gpu_power, gpu_power_for_work
from .grid import GridEvent, GridInterval, import_limit_at, upsert
from .network import (
    KINDS,
    ChainState,
    Contingency,
    FailureImpact,
    PowerNetwork,
    evaluate,
    n_minus_1,
    what_if_failure,
)
from .node import RackLayout, RackPower, gpus_of_racks, rack_power
from .planner import CurtailmentPlan, GpuLoad, Jobs, Sources, plan_curtailment
from .tick import PowerCapImpact, SiteTick, site_power_function, site_tick, what_if_power_cap

__all__ = [
    "KINDS", "Alert", "Contingency", "gpus_of_racks", "n_minus_1", "import_limit_at", "power_alerts", "upsert", "ChainResult", "ChainState", "CurtailmentPlan", "FailureImpact", "GpuLoad", "GpuPower",
    "GpuPowerParams", "GridEvent", "GridInterval", "Jobs", "PowerCapImpact", "PowerNetwork", "RackLayout",
    "RackPower", "SiteTick", "Sources", "Stage", "apply_chain", "apply_grouped", "default_params", "evaluate",
    "gpu_power", "gpu_power_for_work", "plan_curtailment", "rack_power", "site_power_function", "site_tick",
    "what_if_failure", "what_if_power_cap",
]
