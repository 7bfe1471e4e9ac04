"""`--plot out.png`: time series and sweeps as PNG files (matplotlib, Agg backend: no display needed).

    fig = plot([Series("input kW", times, values), Series("PUE", times, pue, axis="right")], "out.png",
               title="site power", xlabel="time", ylabel="kW", ylabel_right="PUE")

Returns the figure (closed after saving, still inspectable: `fig.axes[0].lines` are the left series).
Series on the right axis share the x axis (`twinx`). Nothing is plotted for an empty series, and a plot
with no points at all is refused (ValueError): a blank PNG would look like an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Series:
    label: str
    x: Sequence[Any]            # numbers or datetimes
    y: Sequence[float | None]   # None: a gap
    axis: str = "left"          # "left" or "right"
    marker: str = ""


def numeric_fields(message: Any, suffixes: tuple[str, ...]) -> dict[str, float]:
    """Every set float/double field of a protobuf message whose name ends with one of `suffixes`."""
    from google.protobuf.descriptor import FieldDescriptor

    out = {}
    for f in message.DESCRIPTOR.fields:
        if f.type not in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            continue
        if getattr(f, "is_repeated", False) or not f.name.endswith(suffixes):
            continue
        if f.has_presence and not message.HasField(f.name):
            continue
        out[f.name] = float(getattr(message, f.name))
    return out


def plot(series: Sequence[Series], out: str | Path, *, title: str, xlabel: str, ylabel: str,
         ylabel_right: str = "", xlog: bool = False, ylog: bool = False, ylog_right: bool = False,
         xbase: int = 10):
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    drawn = [s for s in series if any(v is not None for v in s.y)]
    if not drawn:
        raise ValueError("nothing to plot: every series is empty")
    fig = Figure(figsize=(9, 4.8), dpi=110, layout="constrained")
    left = fig.add_subplot()
    right = left.twinx() if any(s.axis == "right" for s in drawn) else None
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for i, s in enumerate(drawn):
        ax = right if s.axis == "right" and right is not None else left
        ys = [float("nan") if v is None else v for v in s.y]
        (line,) = ax.plot(list(s.x), ys, label=s.label, color=colours[i % len(colours)], marker=s.marker or None,
                          linestyle="--" if ax is right else "-")
        handles.append(line)
    left.set_title(title)
    left.set_xlabel(xlabel)
    left.set_ylabel(ylabel)
    left.grid(True, alpha=0.3)
    if xlog:
        left.set_xscale("log", base=xbase)
    if ylog:
        left.set_yscale("log")
    if right is not None:
        right.set_ylabel(ylabel_right)
        if ylog_right:
            right.set_yscale("log")
    left.legend(handles=handles, loc="best", fontsize="small")
    path = Path(out)
    if path.parent and not path.parent.exists():
        raise ValueError(f"--plot {out}: the folder {path.parent} does not exist")
    fig.savefig(path, format="png")
    return fig
