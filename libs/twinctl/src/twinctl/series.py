"""Time series of a twin's stored states (GetHistory answers) as tables and plots: every watt field
becomes a kW series on the left axis, every temperature field a °C series on the right (power, cooling)."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from twinctl.plot import Series, numeric_fields, plot

MAX_MINUTES = 7 * 24 * 60


def minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not 0 < value <= MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"--minutes must be within (0, {MAX_MINUTES}] (a week), got {text}")
    return value


def add_history_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("entity", help=what)
    p.add_argument("--minutes", type=minutes, default=60.0, help="how far back (default 60)")
    p.add_argument("--max-points", type=int, default=0, help="at most this many points (0: the server's default)")
    p.add_argument("--plot", metavar="OUT.png", default=None, help="also draw the series into a PNG file")


def window(args: argparse.Namespace, request_cls: type) -> Any:
    end = datetime.now(UTC)
    req = request_cls(entity_id=args.entity, max_points=max(args.max_points, 0))
    req.start_time.FromDatetime(end - timedelta(minutes=args.minutes))
    req.end_time.FromDatetime(end)
    return req


def detail_of(state: Any) -> Any | None:
    """The set member of a state's `detail` oneof (cooling), or None (power has no oneof)."""
    oneofs = state.DESCRIPTOR.oneofs_by_name
    if "detail" not in oneofs:
        return None
    which = state.WhichOneof("detail")
    return getattr(state, which) if which else None


def columns(states: list[Any]) -> tuple[list[datetime], dict[str, list[float | None]]]:
    """(times, {field: values}) over the states' own and detail fields ending in _w or _c; a field that is
    zero (or unset) in every state is left out (proto3 scalars cannot say "unset": a rack has no rating_w), and
    NaN counts as unset (cooling.proto: an air rack's supply_temp_c is NaN): a gap, the column gone if all NaN."""
    times: list[datetime] = []
    rows: list[dict[str, float]] = []
    for s in states:
        times.append(s.state_time.ToDatetime(tzinfo=UTC))
        row = numeric_fields(s, ("_w", "_c"))
        d = detail_of(s)
        if d is not None:
            row.update(numeric_fields(d, ("_w", "_c")))
        rows.append({k: v for k, v in row.items() if not math.isnan(v)})
    names = sorted({k for r in rows for k, v in r.items() if v}, key=lambda k: (not k.endswith("_w"), k))
    return times, {k: [r.get(k) for r in rows] for k in names}


def history_table(entity: str, states: list[Any]) -> str:
    times, cols = columns(states)
    if not times:
        return f"{entity}: no stored states in this window"
    names = list(cols)
    widths = {n: max(12, len(_label(n)) + 2) for n in names}
    head = f"{'time (UTC)':<20}" + "".join(f"{_label(n):>{widths[n]}}" for n in names)
    lines = [f"{entity}: {len(times)} states from {times[0]:%Y-%m-%d %H:%M:%S} to {times[-1]:%H:%M:%S} UTC", head]
    for i, t in enumerate(times):
        cells = "".join(f"{_value(n, cols[n][i]):>{widths[n]}}" for n in names)
        lines.append(f"{t:%Y-%m-%d %H:%M:%S} " + cells)
    return "\n".join(lines)


def _label(name: str) -> str:
    return name.removesuffix("_w") + " kW" if name.endswith("_w") else name.removesuffix("_c") + " °C"


def _value(name: str, v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1e3:.2f}" if name.endswith("_w") else f"{v:.2f}"


def history_plot(entity: str, twin: str, states: list[Any], out: str):
    times, cols = columns(states)
    series = [Series(_label(n), times, [None if v is None else (v / 1e3 if n.endswith("_w") else v) for v in vals],
                     axis="left" if n.endswith("_w") else "right") for n, vals in cols.items()]
    has_temp = any(s.axis == "right" for s in series)
    return plot(series, out, title=f"{twin} history of {entity}", xlabel="time (UTC)", ylabel="kW",
                ylabel_right="°C" if has_temp else "")


def history_command(args: argparse.Namespace, stub: Any, request_cls: type, twin: str, timeout: float) -> str:
    """`twinctl <twin> history`: GetHistory over the window, then a table, JSON and/or a plot."""
    from google.protobuf.json_format import MessageToJson

    resp = stub.GetHistory(window(args, request_cls), timeout=timeout)
    states = list(resp.states)
    if args.plot:
        history_plot(args.entity, twin, states, args.plot)
    if args.json:
        return MessageToJson(resp)
    return history_table(args.entity, states) + (f"\nplot: {args.plot}" if args.plot else "")
