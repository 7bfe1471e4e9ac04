"""Which rack a Redfish resource measures: explicit ``@odata.id`` prefix → rack id(s) (never guessed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


class RedfishRackMap:
    """Explicit ``@odata.id`` prefix → rack id(s) mapping (longest segment-boundary prefix wins)."""

    def __init__(self, mapping: Mapping[str, str | Sequence[str]]) -> None:
        self._map: dict[str, tuple[str, ...]] = {}
        for prefix, racks in mapping.items():
            key = _norm_id(prefix)
            if not key.startswith("/redfish/"):
                raise ValueError(f"Redfish prefix must start with /redfish/: {prefix!r}")
            rack_ids = (racks,) if isinstance(racks, str) else tuple(racks)
            if not rack_ids or not all(isinstance(r, str) and r for r in rack_ids):
                raise ValueError(f"rack ids for {prefix!r} must be non-empty strings: {racks!r}")
            self._map[key] = rack_ids

    def resolve(self, odata_id: str) -> tuple[tuple[str, ...], bool] | None:
        """(rack ids, exact) for a resource id, or None. ``exact``: the key is the id itself."""
        rid = _norm_id(odata_id)
        probe = rid
        while probe:
            if probe in self._map:
                return self._map[probe], probe == rid
            cut = probe.rfind("/")
            if cut <= 0:
                break
            probe = probe[:cut]
        return None


class _CallableRackMap:
    def __init__(self, fn: Callable[[str], Any]) -> None:
        self._fn = fn

    def resolve(self, odata_id: str) -> tuple[tuple[str, ...], bool] | None:
        got = self._fn(_norm_id(odata_id))
        if got is None:
            return None
        racks = (got,) if isinstance(got, str) else tuple(got)
        return (racks, True) if racks else None  # a callable answers per id: treated as explicit


RackOfResource = RedfishRackMap | Mapping[str, str | Sequence[str]] | Callable[[str], Any]


def as_rack_map(rack_of_resource: RackOfResource) -> RedfishRackMap | _CallableRackMap:
    if isinstance(rack_of_resource, (RedfishRackMap, _CallableRackMap)):
        return rack_of_resource
    if isinstance(rack_of_resource, Mapping):
        return RedfishRackMap(rack_of_resource)
    if callable(rack_of_resource):
        return _CallableRackMap(rack_of_resource)
    raise TypeError(f"rack_of_resource must be a mapping or a callable, got {type(rack_of_resource).__name__}")


def _norm_id(odata_id: str) -> str:
    path = odata_id.split("#", 1)[0]
    return path.rstrip("/") if len(path) > 1 else path
