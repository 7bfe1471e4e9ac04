"""The cooling twin's pure model (numpy arrays and frozen dataclasses; no I/O)."""

from .alerts import CoolingAlert, cooling_alerts, sensor_alerts, suspect_heat_sensors
from .coolant import Coolant, delta_t_k, heat_w
from .events import EquipmentEvent, EventRejected, apply_event
from .network import Conditions, CoolingNetwork, CoolingState, design_conditions, evaluate, plant_power
from .thermal import (
    Calibration,
    CoolantPath,
    GpuThermal,
    ThermalState,
    calibrate_step,
    calibrated,
    default_thermal,
    pooled_prior,
    split_power,
    start_calibration,
    steady_state,
    steady_temperatures,
    step,
    temperatures,
    temperatures_at,
    time_to_throttle,
)
from .tick import CoolingTick, cooling_tick, gpu_power
from .whatif import GpuLayout, ThrottleForecast, coolant_paths, forecast, what_if

__all__ = [
    "Calibration",
    "Conditions",
    "EquipmentEvent",
    "EventRejected",
    "apply_event",
    "Coolant",
    "CoolantPath",
    "CoolingAlert",
    "CoolingNetwork",
    "CoolingState",
    "CoolingTick",
    "cooling_tick",
    "gpu_power",
    "GpuLayout",
    "GpuThermal",
    "ThermalState",
    "ThrottleForecast",
    "calibrate_step",
    "calibrated",
    "coolant_paths",
    "cooling_alerts",
    "default_thermal",
    "delta_t_k",
    "design_conditions",
    "evaluate",
    "forecast",
    "heat_w",
    "plant_power",
    "pooled_prior",
    "sensor_alerts",
    "split_power",
    "start_calibration",
    "steady_state",
    "steady_temperatures",
    "step",
    "suspect_heat_sensors",
    "temperatures",
    "temperatures_at",
    "time_to_throttle",
    "what_if",
]
