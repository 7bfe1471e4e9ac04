"""twinctl --plot: PNG files with the series the command promises (checked on the returned figure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.fabric.v1 import fabric_pb2 as fpb
from twin.power.v1 import power_pb2 as ppb
from twinctl import cooling, series
from twinctl.__main__ import sweep_plot
from twinctl.plot import Series, plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 5000


def labels(ax) -> list[str]:
    return [line.get_label() for line in ax.lines]


def test_fabric_sweep_plots_time_and_bus_bandwidth_against_size(tmp_path) -> None:
    resp = fpb.SweepSizesResponse(n_ranks=64, n_nodes=8, estimates=[
        fpb.CollectiveEstimate(collective=fpb.COLLECTIVE_ALL_REDUCE, size_bytes=1 << k, time_s=1e-5 * (k + 1),
                               busbw_gbps=float(k * 10)) for k in range(3, 31)])
    out = tmp_path / "sweep.png"
    fig = sweep_plot(resp, str(out))
    assert is_png(out)
    left, right = fig.axes
    assert labels(left) == ["time (us)"] and labels(right) == ["bus bandwidth (GB/s)"]
    assert list(left.lines[0].get_xdata()) == [1 << k for k in range(3, 31)]
    assert left.lines[0].get_ydata()[0] == pytest.approx(40.0)   # 4e-5 s in us
    assert left.get_xscale() == "log" and left.get_yscale() == "log"
    assert "all_reduce on 64 ranks / 8 nodes" in left.get_title()


def power_state(t: float, p_in: float) -> ppb.PowerState:
    s = ppb.PowerState(entity_id="su1-0003", scope=ppb.POWER_SCOPE_RACK, input_power_w=p_in, output_power_w=p_in * 0.97,
                       loss_w=p_in * 0.03)
    s.state_time.FromDatetime(datetime.fromtimestamp(t, UTC))
    return s


def test_power_history_plots_one_kw_series_per_power_field(tmp_path) -> None:
    states = [power_state(1.7e9 + 60 * i, 30_000.0 + 100 * i) for i in range(10)]
    out = tmp_path / "power.png"
    fig = series.history_plot("su1-0003", "power", states, str(out))
    assert is_png(out)
    (ax,) = fig.axes   # no temperature field: no right axis
    assert set(labels(ax)) == {"input_power kW", "output_power kW", "loss kW"}
    line = next(x for x in ax.lines if x.get_label() == "input_power kW")
    assert list(line.get_ydata()) == pytest.approx([30.0 + 0.1 * i for i in range(10)])
    table = series.history_table("su1-0003", states)
    head, first = table.splitlines()[1:3]
    assert head.split() == ["time", "(UTC)", "input_power", "kW", "loss", "kW", "output_power", "kW"]
    assert first.split()[2:] == ["30.00", "0.90", "29.10"]
    assert len(table.splitlines()) == 2 + 10


def test_cooling_history_puts_temperatures_on_the_right_axis(tmp_path) -> None:
    states = []
    for i in range(5):
        s = cpb.CoolingState(entity_id="a-0003", scope=cpb.COOLING_SCOPE_RACK,
                             rack=cpb.RackCoolingDetail(it_power_w=100e3, liquid_heat_w=85e3, air_heat_w=15e3,
                                                        coolant_temp_c=40.0 + i, max_gpu_temp_c=70.0 + i))
        s.state_time.FromDatetime(datetime.fromtimestamp(1.7e9 + 10 * i, UTC))
        states.append(s)
    fig = series.history_plot("a-0003", "cooling", states, str(tmp_path / "c.png"))
    left, right = fig.axes
    assert set(labels(left)) == {"it_power kW", "liquid_heat kW", "air_heat kW"}
    assert {"coolant_temp °C", "max_gpu_temp °C"} <= set(labels(right))
    gpu = next(x for x in right.lines if x.get_label() == "max_gpu_temp °C")
    assert list(gpu.get_ydata()) == [70.0, 71.0, 72.0, 73.0, 74.0]


def test_cooling_history_of_an_air_rack_leaves_out_the_coolant_temperatures_it_has_not(tmp_path) -> None:
    """An air-cooled rack's state carries supply/return_temp_c = NaN ("NaN: air rack", cooling.proto). On the
    running dgx-h100-su stack `twinctl cooling history su1-0003` printed two columns of `nan` and the plot listed
    two empty series; a field that is NaN in every state is left out like an unset one, a NaN among numbers is
    a gap (`–`)."""
    states = []
    for i in range(4):
        s = cpb.CoolingState(entity_id="su1-0003", scope=cpb.COOLING_SCOPE_RACK,
                             rack=cpb.RackCoolingDetail(it_power_w=36e3, air_heat_w=36e3, max_gpu_temp_c=60.0 + i,
                                                        supply_temp_c=float("nan"), return_temp_c=float("nan"),
                                                        coolant_temp_c=22.0 if i != 2 else float("nan")))
        s.state_time.FromDatetime(datetime.fromtimestamp(1.7e9 + 10 * i, UTC))
        states.append(s)
    table = series.history_table("su1-0003", states)
    assert "nan" not in table and "supply_temp" not in table and "return_temp" not in table
    head, *rows = table.splitlines()[1:]
    assert head.split() == ["time", "(UTC)", "air_heat", "kW", "it_power", "kW", "coolant_temp", "°C", "max_gpu_temp",
                            "°C"]
    assert rows[2].split()[2:] == ["36.00", "36.00", "–", "62.00"]
    fig = series.history_plot("su1-0003", "cooling", states, str(tmp_path / "air.png"))
    left, right = fig.axes
    assert set(labels(right)) == {"coolant_temp °C", "max_gpu_temp °C"}


def test_cooling_sweep_plot_leaves_gaps_where_nothing_throttles(tmp_path) -> None:
    rows = [{"dry_bulb_c": t, "first_throttle_s": None if t < 35 else 3600.0 / (t - 33), "racks_throttling": 0,
             "gpus_affected": 0 if t < 35 else 72 * (t - 34), "plant_power_w": 1e5, "cooling_power_w": 2e5,
             "pue_cooling": 1.1, "redundancy_carries": True, "horizon_s": 3600.0} for t in range(20, 46, 5)]
    out = tmp_path / "sw.png"
    fig = cooling.sweep_plot("dry_bulb_c", rows, str(out))
    assert is_png(out)
    left, right = fig.axes
    assert labels(left) == ["first rack throttles in (min)"] and labels(right) == ["GPUs throttling within the horizon"]
    ys = left.lines[0].get_ydata()
    assert [y != y for y in ys] == [True, True, True, False, False, False]   # NaN (a gap) below 35 °C
    assert list(right.lines[0].get_ydata()) == [0, 0, 0, 72, 432, 792]
    table = cooling.sweep_table("dry_bulb_c", rows).splitlines()
    assert len(table) == 7 and table[1].split()[:2] == ["20", "-"] and table[-1].split()[:3] == ["45", "300", "s"]


def test_nothing_to_plot_is_an_error_not_a_blank_png(tmp_path) -> None:
    out = tmp_path / "empty.png"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot([Series("x", [], [])], out, title="t", xlabel="x", ylabel="y")
    assert not out.exists()
    with pytest.raises(ValueError, match="does not exist"):
        plot([Series("x", [1, 2], [1, 2])], tmp_path / "no" / "such.png", title="t", xlabel="x", ylabel="y")


def test_value_range() -> None:
    assert cooling.value_range("20:45:5") == [20, 25, 30, 35, 40, 45]
    assert cooling.value_range("1:1.3:0.1") == pytest.approx([1.0, 1.1, 1.2, 1.3])
    for bad in ("20:10:5", "1:2:0", "a:b:c", "1:2", "0:1000:1"):
        with pytest.raises(Exception, match="FROM|at most|STEP"):
            cooling.value_range(bad)
