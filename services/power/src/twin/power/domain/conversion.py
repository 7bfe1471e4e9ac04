"""Conversion stages, vectorized: the power a stage draws for the power it delivers.

A stage is data (see twin.core.facility.power.ConversionStage); ``units`` identical converters share
the load equally:

* ``affine``           P_in = (P_out + units*c) / η           (RAPS: SIVOC c=13 W η=0.98; rectifier 17 W, 0.96)
* ``curve``            P_in = P_out / η(x), η linear between (load, efficiency) points, held flat
                       outside them; x = P_out / (units * rated_w)          (80 PLUS PSU curves)
* ``loss_polynomial``  P_in = P_out + R (a + b x + c x²), R = units * rated_w, x = P_out / R
                       (UPS no-load / proportional / square-law losses; transformer no-load + load loss)

Every stage has η ≤ 1 and non-negative constants, so input = output + loss with loss ≥ 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AFFINE, CURVE, LOSS_POLYNOMIAL = "affine", "curve", "loss_polynomial"


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    units: int = 1
    constant_w: float = 0.0
    efficiency: float = 1.0
    rated_w: float = 1.0
    load_points: tuple[float, ...] = ()
    efficiency_points: tuple[float, ...] = ()
    loss_coefficients: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.kind not in (AFFINE, CURVE, LOSS_POLYNOMIAL):
            raise ValueError(f"stage {self.name!r}: unknown kind {self.kind!r}")
        if not 0 < self.efficiency <= 1 or self.constant_w < 0 or min(self.loss_coefficients) < 0:
            raise ValueError(f"stage {self.name!r}: need 0 < efficiency <= 1 and non-negative losses")
        if self.kind == CURVE and (not self.load_points or len(self.load_points) != len(self.efficiency_points)
                                   or not all(0 < e <= 1 for e in self.efficiency_points)):
            raise ValueError(f"stage {self.name!r}: curve needs matching load and efficiency points in (0, 1]")

    def input_w(self, out_w: np.ndarray | float, rated_w: np.ndarray | float | None = None) -> np.ndarray:
        """Input power for output power ``out_w`` (negative outputs count as 0). ``rated_w`` overrides
        the per-unit rating (components whose stage is scaled to their own rating)."""
        p = np.maximum(np.asarray(out_w, dtype=np.float64), 0.0)
        if self.kind == AFFINE:
            return (p + self.units * self.constant_w) / self.efficiency
        rated = self.units * (self.rated_w if rated_w is None else np.asarray(rated_w, dtype=np.float64))
        x = p / rated
        if self.kind == LOSS_POLYNOMIAL:
            a, b, c = self.loss_coefficients
            return p + rated * (a + x * (b + c * x))
        return p / np.interp(x, self.load_points, self.efficiency_points)

    def efficiency_at(self, load_fraction: np.ndarray | float) -> np.ndarray:
        """Efficiency at a load fraction of the stage's total rating (for reports and the PSU check)."""
        x = np.asarray(load_fraction, dtype=np.float64)
        out = x * self.units * self.rated_w
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(out > 0, out / self.input_w(out), np.nan)


@dataclass(frozen=True)
class ChainResult:
    """One chain of stages applied to an array of loads: power at every boundary and every stage's loss."""

    output_w: np.ndarray                 # delivered to the load
    input_w: np.ndarray                  # drawn from upstream
    stage_loss_w: tuple[np.ndarray, ...]  # per stage, innermost first

    @property
    def loss_w(self) -> np.ndarray:
        return self.input_w - self.output_w


def apply_chain(out_w: np.ndarray, stages: tuple[Stage, ...]) -> ChainResult:
    """Push loads through stages innermost first (e.g. DC-DC, then PSU)."""
    p = np.maximum(np.asarray(out_w, dtype=np.float64), 0.0)
    losses = []
    cur = p
    for stage in stages:
        nxt = stage.input_w(cur)
        losses.append(nxt - cur)
        cur = nxt
    return ChainResult(output_w=p, input_w=cur, stage_loss_w=tuple(losses))


def apply_grouped(out_w: np.ndarray, group: np.ndarray, chains: tuple[tuple[Stage, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Elements in group g go through chains[g] (node types, rack types). Returns (input_w, loss_w)."""
    p = np.maximum(np.asarray(out_w, dtype=np.float64), 0.0)
    if len(chains) == 1:
        r = apply_chain(p, chains[0])
        return r.input_w, r.loss_w
    inp = np.empty_like(p)
    for g, stages in enumerate(chains):
        sel = group == g
        inp[sel] = apply_chain(p[sel], stages).input_w
    return inp, inp - p
