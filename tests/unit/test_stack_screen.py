"""`make run`'s one screen (twin.core.stack_screen): pure rendering, fitted to the terminal; rates from offsets."""

from __future__ import annotations

import argparse

import pytest

from twin.core.stack import where_to_look
from twin.core.stack_screen import Offsets, Screen, ServiceRow, cut, plain_rates, rates, render_screen
from twin.core.stack_services import STACK_SERVICES, StackContext


def ctx(services=STACK_SERVICES, token: str = "tok-123") -> StackContext:
    return StackContext(bootstrap="127.0.0.1:9092", database_url="postgresql://postgres@127.0.0.1:5433/postgres",
                        inventory=None, args=argparse.Namespace(), token=token,
                        ports={s.name: {var: port + 1 for var, port in s.ports.items()} for s in services},
                        offsets_are_lower_bounds=True)


def screen(n_alerts: int = 0, **kw) -> Screen:
    c = ctx()
    rows = [ServiceRow("ingest", "up", 0, 1234.56, 0, 3), ServiceRow("power", "restarting", 2, None, None, None,
                                                                        "KafkaTimeoutError"),
            ServiceRow("console", "up")]
    return Screen("AI Factory Twin · su-h100: 8 racks, 256 GPUs", where_to_look(c, list(STACK_SERVICES), "/x/.twin/logs",
                                                                                   True),
                  rows, ["power: site 1.234 MW " + "x" * 200], [f"10:00:{i:02d} cooling critical a-{i:04d}: hot"
                                                                for i in range(n_alerts)], True, **kw)


def test_where_to_look_names_every_address_from_the_chosen_ports() -> None:
    where = dict(where_to_look(ctx(), list(STACK_SERVICES), "/x/.twin/logs", True))
    assert where["console"] == "http://127.0.0.1:8081/#token=tok-123  (demo)"   # facility-sim runs: demo mode
    assert where["gRPC"] == "127.0.0.1: fabric 50054, power 50055, cooling 50056, jobs 50057"
    assert where["HTTP"] == "127.0.0.1: redfish 8082, openadr3 8083, dcgm 9401"
    assert where["database"].startswith("postgresql://") and where["kafka"] == "127.0.0.1:9092  (embedded Tansu)"
    no_sim = [s for s in STACK_SERVICES if s.name != "facility-sim"]
    where = dict(where_to_look(ctx(no_sim), no_sim, "/x", False))
    assert where["console"] == "http://127.0.0.1:8081/" and where["kafka"] == "127.0.0.1:9092"  # no token in the URL
    assert "dcgm" not in where["HTTP"]


@pytest.mark.parametrize(("width", "height"), [(80, 24), (60, 20), (120, 40)])
def test_the_screen_fits_the_terminal(width: int, height: int) -> None:
    lines = render_screen(screen(n_alerts=30), width, height)
    assert len(lines) == height  # 30 alerts: the alerts take every row that is left
    assert all(len(line) <= width for line in lines)
    assert lines[0].startswith("AI Factory Twin")
    assert lines[-1].strip().startswith("10:00:") and "last alerts" in "\n".join(lines)


def test_the_screen_shows_rates_lags_and_states() -> None:
    lines = render_screen(screen(n_alerts=2))
    ingest = next(x for x in lines if x.startswith("ingest"))
    assert ingest.split() == ["ingest", "up", "0", "1,235", ">=0", ">=3"]
    power = next(x for x in lines if x.startswith("power "))
    assert power.split()[:6] == ["power", "restarting", "2", "–", "–", "–"] and "KafkaTimeoutError" in power
    assert any(x.endswith("…") and x.startswith("power: site") for x in lines)   # cut to the width
    assert lines[-2:] == ["  10:00:00 cooling critical a-0000: hot", "  10:00:01 cooling critical a-0001: hot"]
    assert len(lines) < 24   # two alerts: no padding


def test_no_alerts_and_a_supervisor_message() -> None:
    lines = render_screen(screen(message="!! power exited (status 1); restarting in 2 s. Its last log lines:"))
    assert lines[-1] == "last alerts: none yet" and lines[-2].startswith("!! power exited")


def test_a_tiny_terminal_keeps_the_top() -> None:
    lines = render_screen(screen(n_alerts=5), 30, 6)
    assert len(lines) == 6 and all(len(x) <= 30 for x in lines) and lines[0].startswith("AI Factory Twin")


def test_rates_from_two_readings() -> None:
    a = Offsets(at=100.0, consumed=1000, lag=5, dlq=0)
    assert rates(None, a) is None
    assert rates(a, Offsets(at=104.0, consumed=1600, lag=0, dlq=0)) == pytest.approx(150.0)
    assert rates(a, Offsets(at=100.0, consumed=1600, lag=0, dlq=0)) is None     # no time between
    assert rates(a, Offsets(at=101.0, consumed=10, lag=0, dlq=0)) == 0.0        # offsets reset (new broker)


def test_plain_line_and_cut() -> None:
    line = plain_rates([ServiceRow("ingest", "up", 1, 12.0, 4, 0), ServiceRow("console", "up")], lower_bounds=True)
    assert line == "rates: ingest 12/s lag>=4 dlq>=0 (1 restarts) | console up"
    assert plain_rates([ServiceRow("ingest", "up", 0, 0.5, 4, 0)]) == "rates: ingest 0.5/s lag=4 dlq=0"
    assert cut("abcdef", 4) == "abc…" and cut("ab\ncd", 10) == "ab cd"


def test_the_console_is_in_demo_mode_only_with_the_simulator() -> None:
    from twin.core.stack_services import _console_env

    env = _console_env(ctx())
    assert env["CONSOLE_DEMO"] == "1" and env["CONSOLE_OPERATOR_TOKEN"] == "tok-123"
    assert env["CONSOLE_SCENARIO_COOLING_TARGET"] == "127.0.0.1:50056"   # the port the stack chose for cooling
    assert env["CONSOLE_SCENARIO_POWER_HTTP"] == "http://127.0.0.1:8083"
    no_sim = [s for s in STACK_SERVICES if s.name != "facility-sim"]
    assert _console_env(ctx(no_sim)) == {"CONSOLE_DEMO": "0"}   # no token handed out either
