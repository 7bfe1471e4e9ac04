from twin.core.facility.inventory import Inventory, RackInfo, build_inventory
from twin.core.facility.spec import FacilitySpec, load_facility_spec, load_spec, preset_names

__all__ = [
    "FacilitySpec", "Inventory", "RackInfo", "build_inventory", "load_facility_spec", "load_spec", "preset_names",
]
