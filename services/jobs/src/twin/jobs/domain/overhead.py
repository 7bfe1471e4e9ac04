"""A job's energy beyond its GPUs (pure numpy): the measured node platform share and the site overhead factor.

**Node platform share** (``rack_platform_w``). A rack's telemetry batch carries its PDU input power
(telemetry.proto ``RackSamples.pdu_input_power_w``: per phase, or one total) next to each GPU's DCGM board power.
Rack input minus the rack's GPU power is what the rack draws besides its GPUs: CPUs, memory, NICs, fans, and
the PSU / power-shelf conversion losses inside the rack. Each GPU of the rack gets an equal share of it, so a
job's share on a rack is (rack PDU power - sum of the rack's GPU power) x (the job's GPUs there / the rack's GPUs).
A rack's figure is used only when it is measured and plausible:
- the PDU power is reported (every phase finite; the ingest and power twins sum phases the same way),
- every GPU the rack has reported a finite, non-negative power in the same batch (otherwise an unreported GPU's
  draw would be counted as platform power),
- the difference is not negative (a PDU reading below its GPUs' own power is a bad sensor or clock skew);
elsewhere the facility spec's node ``cpu_and_platform_w`` per GPU stays (NaN here tells the caller to use it).

**Site overhead factor** (``overhead_factor``). The power twin's site state on power.state.v1
(``POWER_SCOPE_SITE``): ``input_power_w`` = facility power (site import, including the cooling twin's plant power
read from cooling.state.v1), ``output_power_w`` = IT power delivered to the racks. Facility / IT is the share of
conversion (PDU, UPS, transformer losses) and cooling on top of what the racks draw, the same definition as the
site's PUE (The Green Grid, "PUE: a comprehensive examination of the metric", WP#49, 2012). It multiplies the
job's rack-level energy (GPUs + platform share). A value outside [``MIN_FACTOR``, ``MAX_FACTOR``] or not finite
is refused (``OverheadRefused``); without a fresh accepted value (``FRESH_S``) the ``JOBS_PUE`` setting stands in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Facility / IT can not be below 1 (IT is part of the facility's draw) (The Green Grid WP#49: PUE >= 1).
MIN_FACTOR = 1.0
#: Facility / IT above this is refused as implausible (assumption, stated: the Uptime Institute's 2023 survey has
#: an industry average PUE of 1.58 and few sites above 2.5; 3 leaves room for a site at low IT load).
MAX_FACTOR = 3.0
#: A site state older than this no longer counts: the setting stands in (assumption, stated: the power twin
#: publishes its site state on every evaluation, seconds apart; five minutes is many missed evaluations).
FRESH_S = 300.0


class OverheadRefused(ValueError):
    """A site state whose facility / IT ratio is not usable (the reason names the values)."""


def overhead_factor(facility_w: float, it_w: float) -> float:
    """Facility power / IT power of the site, or ``OverheadRefused`` with the reason."""
    if not (math.isfinite(facility_w) and math.isfinite(it_w)):
        raise OverheadRefused(f"facility {facility_w} W / IT {it_w} W is not finite")
    if it_w <= 0.0:
        raise OverheadRefused(f"IT power {it_w} W is not positive")
    f = facility_w / it_w
    if not MIN_FACTOR <= f <= MAX_FACTOR:
        raise OverheadRefused(f"facility / IT = {facility_w:.0f} / {it_w:.0f} W = {f:.3f} is outside "
                              f"[{MIN_FACTOR}, {MAX_FACTOR}]")
    return f


@dataclass
class SiteOverhead:
    """The latest accepted site factor and when it was produced; ``current`` falls back to ``fallback``."""

    fallback: float
    fresh_s: float = FRESH_S
    factor: float = math.nan
    state_time_s: float = -math.inf   # the site state's own time (an older state does not replace a newer one)
    produced_s: float = -math.inf     # when it was produced (freshness)

    def update(self, state_time_s: float, produced_s: float, facility_w: float, it_w: float) -> bool:
        """Take a site state (``OverheadRefused`` if unusable); False when older than the one held."""
        f = overhead_factor(facility_w, it_w)
        if state_time_s < self.state_time_s:
            return False
        self.factor, self.state_time_s, self.produced_s = f, state_time_s, produced_s
        return True

    def current(self, now_s: float) -> tuple[float, str]:
        """(factor, source): ``"site"`` while the held state is at most ``fresh_s`` old, else the setting
        (``"setting"``)."""
        if math.isfinite(self.factor) and now_s - self.produced_s <= self.fresh_s:
            return self.factor, "site"
        return self.fallback, "setting"


def rack_platform_w(bounds: np.ndarray, gpu_power_w: np.ndarray, rack_pdu_w: np.ndarray,
                    rack_gpus: np.ndarray) -> np.ndarray:
    """Measured platform power per GPU for each GPU sample (NaN where the rack's figure is not usable, see the
    module docstring). The samples of batch ``b`` are ``bounds[b]:bounds[b + 1]``; ``rack_pdu_w[b]`` is its rack's
    PDU input (NaN: not measured) and ``rack_gpus[b]`` the GPUs the rack has."""
    bounds = np.asarray(bounds, np.int64)
    counts = np.diff(bounds)
    nb = len(counts)
    p = np.asarray(gpu_power_w, float)
    if nb == 0:
        return np.full(len(p), np.nan)
    seg = np.repeat(np.arange(nb), counts)
    ok = np.isfinite(p) & (p >= 0.0)
    gpu_w = np.bincount(seg, weights=np.where(ok, p, 0.0), minlength=nb)
    n_ok = np.bincount(seg, weights=ok.astype(float), minlength=nb)
    pdu = np.asarray(rack_pdu_w, float)
    platform = pdu - gpu_w
    usable = np.isfinite(pdu) & (n_ok > 0) & (n_ok == counts) & (counts == np.asarray(rack_gpus)) & (platform >= 0)
    per_gpu = np.where(usable, platform / np.maximum(n_ok, 1.0), np.nan)
    return per_gpu[seg]


def pdu_total_w(phases) -> float:
    """A rack's PDU input from ``pdu_input_power_w``: one value is the total, several are phases (summed);
    NaN when empty or any phase is not finite (no partial totals)."""
    if not len(phases):
        return math.nan
    total = float(sum(phases))
    return total if math.isfinite(total) else math.nan
