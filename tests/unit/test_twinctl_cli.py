"""twinctl's command tree: shell completion generated from it (run in a real bash), --json accepted by
every subcommand, errors that name what to fix, and `power history --json --plot` end to end against an
in-process gRPC PowerService that answers GetHistory with fixed states (the CLI is what is tested)."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
from concurrent import futures
from datetime import UTC, datetime

import grpc
import pytest

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.cooling.v1 import cooling_pb2_grpc as cpb_grpc
from twin.power.v1 import power_pb2 as ppb
from twin.power.v1 import power_pb2_grpc as ppb_grpc
from twinctl.__main__ import add_json_everywhere, build_parser, main
from twinctl.completion import bash_script, command_tree


def parser() -> argparse.ArgumentParser:
    p = build_parser()
    add_json_everywhere(p)
    return p


def leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, p)]
    return [leaf for a in subs for name, child in a.choices.items() for leaf in leaves(child, (*path, name))]


def complete(script: str, *words: str) -> list[str]:
    """What bash offers after `twinctl WORDS...` (the last word is the one being completed)."""
    line = " ".join(["twinctl", *words])
    cmd = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}\n"
           + ("" if words and words[-1] else "COMP_WORDS+=(''); ") + "_twinctl; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True, timeout=30)
    return sorted(x for x in out.stdout.splitlines() if x)


bash_missing = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def test_the_bash_script_lists_every_subcommand_of_the_tree() -> None:
    p = parser()
    script = bash_script(p)
    tree = command_tree(p)
    expected_paths = {"twinctl"} | {"twinctl " + " ".join(path[:i]) for path, _ in leaves(p)
                                    for i in range(1, len(path) + 1)}
    assert set(tree) == expected_paths
    for path, (subs, _) in tree.items():
        assert f"_twinctl_subs['{path}']='{' '.join(subs)}'" in script
    top = {name for a in p._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}
    assert top == {"fabric", "dlq", "power", "cooling", "jobs", "scenario", "completion"}
    for leaf, _ in leaves(p):   # every leaf is offered under its parent
        assert leaf[-1] in tree["twinctl " + " ".join(leaf[:-1]) if len(leaf) > 1 else "twinctl"][0]


@bash_missing
def test_bash_completes_commands_options_and_choices() -> None:
    script = bash_script(parser())
    assert complete(script, "po") == ["power"]
    assert complete(script, "") == sorted(["fabric", "dlq", "power", "cooling", "jobs", "scenario", "completion",
                                           "--help"])
    assert "history" in complete(script, "power", "")
    assert complete(script, "power", "--target", "127.0.0.1:1", "hi") == ["history"]   # an option's value is skipped
    assert complete(script, "cooling", "sweep", "--dry") == ["--dry-bulb-c"]
    assert complete(script, "scenario", "run", "cdu") == ["cdu-failure"]
    assert complete(script, "fabric", "sweep", "--pl") == ["--plot"]


def test_every_subcommand_takes_json_after_its_name() -> None:
    p = parser()
    for path, leaf in leaves(p):
        if path[0] == "completion":
            continue
        assert any("--json" in a.option_strings for a in leaf._actions), path
    # after the subcommand, or before it (the group's own flag): the same answer
    assert p.parse_args(["power", "state", "--json"]).json is True
    assert p.parse_args(["power", "--json", "state"]).json is True
    assert p.parse_args(["power", "state"]).json is False
    assert p.parse_args(["fabric", "links", "--json"]).json is True
    assert p.parse_args(["dlq", "replay", "--json"]).json is True


@pytest.mark.parametrize("words", [("power", "state"), ("fabric", "links"), ("cooling", "state"), ("jobs", "list"),
                                   ("dlq", "list"), ("dlq", "replay"), ("scenario", "list"),
                                   ("scenario", "run", "job-landing"), ("scenario", "restore", "cdu-failure")])
def test_json_before_or_after_the_subcommand_name(words) -> None:
    """The README's promise: `--json` after the subcommand or before its name (`twinctl dlq --json list`);
    dlq and scenario used to reject it before (argparse: unrecognized arguments)."""
    p = parser()
    group, *rest = words
    assert p.parse_args([group, *rest]).json is False
    assert p.parse_args([group, *rest, "--json"]).json is True
    assert p.parse_args([group, "--json", *rest]).json is True


def test_completion_command_prints_the_scripts(capsys) -> None:
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# twinctl bash completion") and "complete -F _twinctl twinctl" in out
    assert main(["completion", "zsh"]) == 0
    assert "bashcompinit" in capsys.readouterr().out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("argv", "env"), [(["power", "state"], "TWINCTL_POWER_TARGET"),
                                            (["cooling", "state"], "TWINCTL_COOLING_TARGET"),
                                            (["jobs", "list"], "TWINCTL_JOBS_TARGET"),
                                            (["fabric", "links"], "TWINCTL_FABRIC_TARGET")])
def test_connection_refused_names_the_address_and_how_to_change_it(argv, env, capsys) -> None:
    port = closed_port()
    assert main([argv[0], "--target", f"127.0.0.1:{port}", "--timeout", "5", *argv[1:]]) == 1
    err = capsys.readouterr().err
    twin = {"power": "power", "cooling": "cooling", "jobs": "job", "fabric": "fabric"}[argv[0]]
    assert f"cannot reach the {twin} twin at 127.0.0.1:{port}" in err
    assert f"127.0.0.1:{port}" in err and env in err and "--target" in err and "make run" in err


class History(ppb_grpc.PowerServiceServicer):
    def __init__(self) -> None:
        self.requests: list[ppb.GetHistoryRequest] = []

    def GetHistory(self, request, context):  # noqa: N802 - gRPC method name
        self.requests.append(request)
        if request.entity_id != "su-h100":
            context.abort(grpc.StatusCode.NOT_FOUND, f"no entity {request.entity_id}")
        out = ppb.GetHistoryResponse()
        for i in range(6):
            s = out.states.add(entity_id="su-h100", scope=ppb.POWER_SCOPE_SITE, input_power_w=1.2e6 + i * 1e4,
                               output_power_w=1.0e6, rating_w=5e6, headroom_w=3.8e6 - i * 1e4)
            s.state_time.FromDatetime(datetime.fromtimestamp(1.7e9 + 60 * i, UTC))
        return out


@pytest.fixture
def power_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = History()
    ppb_grpc.add_PowerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_power_history_json_and_plot_through_the_cli(power_server, tmp_path, capsys) -> None:
    target, servicer = power_server
    out = tmp_path / "site.png"
    assert main(["power", "--target", target, "history", "su-h100", "--minutes", "30", "--json", "--plot",
                 str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["inputPowerW"] for s in doc["states"]] == [1.2e6 + i * 1e4 for i in range(6)]
    assert out.read_bytes().startswith(b"\x89PNG")
    req = servicer.requests[-1]
    span = req.end_time.ToDatetime() - req.start_time.ToDatetime()
    assert req.entity_id == "su-h100" and span.total_seconds() == pytest.approx(1800, abs=1)

    assert main(["power", "--target", target, "history", "su-h100"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("su-h100: 6 states") and len(table) == 2 + 6
    assert table[1].split() == ["time", "(UTC)", "headroom", "kW", "input_power", "kW", "output_power", "kW",
                                "rating", "kW"]

    assert main(["power", "--target", target, "history", "nowhere"]) == 3   # NOT_FOUND
    assert "no entity nowhere" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["power", "history", "su-h100", "--minutes", "0"])


class Setpoints(cpb_grpc.CoolingServiceServicer):
    """Answers WhatIfSetpoint like the twin's validation would: a wet bulb above the dry bulb is refused."""

    def WhatIfSetpoint(self, request, context):  # noqa: N802 - gRPC method name
        if request.HasField("wet_bulb_temp_c") and request.HasField("dry_bulb_temp_c") \
                and request.wet_bulb_temp_c > request.dry_bulb_temp_c:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "wet_bulb_temp_c: above the dry bulb")
        hot = max(request.dry_bulb_temp_c - 30.0, 0.0)
        out = cpb.WhatIfSetpointResponse()
        out.outcome.gpus_affected = int(hot * 10)
        if hot:
            out.outcome.racks.add(rack_id="a-0000", time_to_throttle_s=3600.0 / hot)
        return out


def test_cooling_sweep_through_the_cli_and_a_refused_point(tmp_path, capsys) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    cpb_grpc.add_CoolingServiceServicer_to_server(Setpoints(), server)
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        assert main(["cooling", "--target", target, "sweep", "--dry-bulb-c", "25:40:5", "--fixed-wet-bulb-c", "20",
                     "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["setting"] == "dry_bulb_c"
        assert [(p["dry_bulb_c"], p["gpus_affected"], p["first_throttle_s"]) for p in doc["points"]] == [
            (25, 0, None), (30, 0, None), (35, 50, 720.0), (40, 100, 360.0)]
        assert main(["cooling", "--target", target, "sweep", "--dry-bulb-c", "15:40:5", "--fixed-wet-bulb-c",
                     "20"]) == 2
        err = capsys.readouterr().err
        assert "refused dry_bulb_c = 15" in err and "--fixed-wet-bulb-c" in err
    finally:
        server.stop(None)


def test_progress_bar_draws_only_on_a_terminal() -> None:
    import io

    from twinctl.progress import Progress

    buf = io.StringIO()   # not a terminal: nothing
    with Progress(3, "sweep", stream=buf) as bar:
        bar.step()
    assert buf.getvalue() == ""
    buf = io.StringIO()
    with Progress(4, "sweep", stream=buf, enabled=True) as bar:
        bar.step("a")
        bar.step("b")
    assert "sweep [" in buf.getvalue() and "2/4" in buf.getvalue() and "#" * 14 in buf.getvalue()


def test_jobs_list_and_show_state_where_the_communication_and_the_energy_overhead_came_from() -> None:
    from twin.jobs.v1 import jobs_pb2 as jpb
    from twinctl.jobs import render_job, render_list

    def state(job_id: str, comm: int, detail: str, source: int, factor: float) -> jpb.JobState:
        return jpb.JobState(job_id=job_id, status=jpb.JOB_STATUS_RUNNING, predicted_step_time_s=1.5,
                            placement=jpb.Placement(n_gpus=32), comm_source=comm, comm_source_detail=detail,
                            energy_overhead_source=source, energy_overhead_factor=factor)

    fabric = state("a", jpb.COMM_SOURCE_FABRIC_TWIN, "3 communicator(s) timed by the fabric twin",
                   jpb.ENERGY_OVERHEAD_SOURCE_SITE_STATE, 1.25)
    own = state("b", jpb.COMM_SOURCE_OWN_ESTIMATE, "UNAVAILABLE: connection refused", jpb.ENERGY_OVERHEAD_SOURCE_SETTING,
                1.3)
    pending = jpb.JobState(job_id="c", status=jpb.JOB_STATUS_PENDING)
    rows = render_list([fabric, own, pending]).splitlines()
    assert rows[0].split()[-2:] == ["ovh", "risks"]
    assert "1500.0 " in rows[1] and rows[1].split()[-3:] == ["1.25", "s", "-"]
    assert "1500.0*" in rows[2] and rows[2].split()[-3:] == ["1.30", "p", "-"]
    assert rows[3].split()[-2:] == ["-", "-"]
    assert rows[-1].startswith("* communication from the job twin's own estimate")
    assert not render_list([fabric]).splitlines()[-1].startswith("*")  # no footnote without a starred row
    shown = render_job(own)
    assert "comm      job twin's own estimate: UNAVAILABLE: connection refused" in shown
    assert "overhead factor 1.300 (JOBS_PUE setting)" in shown
    shown = render_job(fabric)
    assert "comm      fabric twin (3 communicator(s) timed by the fabric twin)" in shown
    assert "overhead factor 1.250 (power twin site state)" in shown


class _ClosedPipe:
    """stdout whose reader has left (`twinctl dlq list | head -1`)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return 1


def test_dlq_list_into_a_closed_pipe_is_not_a_kafka_error(monkeypatch, capsys) -> None:
    """`twinctl dlq list | head -2` printed 'cannot reach Kafka at ... (BrokenPipeError)' and exited 1: the
    handler for aiokafka's connection errors also caught the OSError of writing to stdout. The pipe error
    now reaches main's handler for `twinctl ... | head` (exit 0, nothing on stderr)."""
    from twinctl import dlq

    letter = dlq.DeadLetter(3, 0, b"k", b"v", (("dlq_reason", b"validation: x"), ("dlq_payload", b"full")))

    async def read(*args, **kwargs):
        return [letter, letter]

    monkeypatch.setattr(dlq, "read_dead_letters", read)
    monkeypatch.setattr("twinctl.__main__.os.dup2", lambda *a: None)   # main silences stdout this way
    for argv in (["dlq", "list"], ["dlq", "list", "--json"]):
        with monkeypatch.context() as m:
            m.setattr("sys.stdout", _ClosedPipe())
            assert main(argv) == 0
        assert "cannot reach Kafka" not in capsys.readouterr().err


def test_jobs_whatif_failure_table_marks_the_own_estimate() -> None:
    from twin.jobs.v1 import jobs_pb2 as jpb
    from twinctl.jobs import render_failure

    resp = jpb.WhatIfFailureResponse(impacts=[
        jpb.JobImpact(job_id="a", stops=True, step_time_before_s=1.0, goodput_lost_gpu_hours=12.5),
        jpb.JobImpact(job_id="b", step_time_before_s=1.0, step_time_after_s=1.1, slowdown_fraction=0.1,
                      goodput_lost_gpu_hours=0.5, comm_source=jpb.COMM_SOURCE_FABRIC_TWIN),
        jpb.JobImpact(job_id="c", step_time_before_s=2.0, step_time_after_s=2.5, slowdown_fraction=0.25,
                      goodput_lost_gpu_hours=1.0, comm_source=jpb.COMM_SOURCE_OWN_ESTIMATE,
                      comm_source_detail="UNAVAILABLE: connection refused")],
        goodput_lost_gpu_hours=14.0)
    rows = render_failure(resp).splitlines()
    assert rows[1].split()[:3] == ["a", "stops", "1000.0"] and rows[1].split()[3] == "-"
    assert "1100.0 " in rows[2] and "10.0%" in rows[2]
    assert "2500.0*" in rows[3] and "25.0%" in rows[3]
    assert rows[4] == "goodput lost: 14.00 GPU-hours" and rows[5].startswith("* step time after from the job twin's own")
    assert render_failure(jpb.WhatIfFailureResponse()) == "no running job stops or slows"
    assert not render_failure(jpb.WhatIfFailureResponse(impacts=resp.impacts[:2])).splitlines()[-1].startswith("*")


def test_jobs_whatif_failure_takes_exactly_one_target() -> None:
    from twinctl.__main__ import build_parser

    args = build_parser().parse_args(["jobs", "whatif-failure", "--link", "leaf-r0-g1/spine0"])
    assert (args.link, args.node, args.duration_s) == ("leaf-r0-g1/spine0", None, 600.0)
    for argv in (["jobs", "whatif-failure"], ["jobs", "whatif-failure", "--node", "a", "--ups", "b"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)


def test_jobs_whatif_cap_table() -> None:
    from twin.jobs.v1 import jobs_pb2 as jpb
    from twinctl.jobs import render_cap

    r = jpb.WhatIfPowerCapResponse(step_time_before_s=1.0, step_time_after_s=1.2, power_before_w=22_400,
                                   power_after_w=16_000, energy_per_step_before_j=22_400, energy_per_step_after_j=19_200,
                                   clock_fraction=0.8)
    rows = render_cap("j1", 500, r).splitlines()
    assert rows[0] == "job j1 capped at 500 W per GPU: SM clock 80.0% of uncapped"
    assert rows[2].split() == ["step", "time", "1,000.0", "1,200.0", "ms", "+20.0%"]
    assert rows[3].split() == ["GPU", "power", "22.4", "16.0", "kW", "-28.6%"]
    assert rows[4].split() == ["energy", "/", "step", "22.4", "19.2", "kJ", "-14.3%"]
