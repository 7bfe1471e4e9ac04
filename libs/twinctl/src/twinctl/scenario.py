"""`twinctl scenario`: inject a scenario into the RUNNING twin and report what each twin concluded, step by step.

    twinctl scenario list                                   the scenarios and what they do
    twinctl scenario run NAME [--keep] [--json] [--step-timeout 60]
                                                            inject, report each twin's conclusion, restore
    twinctl scenario restore NAME                           undo what a --keep run left (repair, cancel, bring up)

NAME: cdu-failure, grid-curtailment, spine-failure, job-landing (twin.core.scenarios has the logic; the console
uses the same module). Addresses default to the stack's (`make run`): --bootstrap (env TWIN_KAFKA_BOOTSTRAP,
127.0.0.1:9092), --power / --cooling / --jobs / --fabric HOST:PORT (env TWINCTL_<TWIN>_TARGET), --power-http URL
(env TWINCTL_POWER_HTTP, http://127.0.0.1:8082), --token (env TWINCTL_TOKEN or TWIN_STACK_TOKEN), --facility
(env TWIN_FACILITY). Exit codes: 0 every step concluded, 1 a step did not (timeout, refused), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from twin.core.scenarios import SCENARIOS, Step, Targets, run_scenario


def add_parser(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", default=None, help="Kafka bootstrap (env TWIN_KAFKA_BOOTSTRAP)")
    for twin in ("power", "cooling", "jobs", "fabric"):
        common.add_argument(f"--{twin}", default=None,
                            help=f"{twin} gRPC host:port (env TWINCTL_{twin.upper()}_TARGET)")
    common.add_argument("--power-http", default=None, help="power twin's OpenADR receiver URL (env TWINCTL_POWER_HTTP)")
    common.add_argument("--token", default=None, help="the stack's token (env TWINCTL_TOKEN or TWIN_STACK_TOKEN)")
    common.add_argument("--facility", default=None, help="the running preset or spec file (env TWIN_FACILITY)")
    common.add_argument("--step-timeout", type=float, default=60.0, help="seconds one step may wait (default 60)")
    common.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p = sub.add_parser("scenario", help="scenarios against the running twin (inject, report, restore)")
    cmds = p.add_subparsers(dest="cmd", required=True)
    cmds.add_parser("list", help="the scenarios", parents=[common])
    r = cmds.add_parser("run", help="run a scenario, then restore", parents=[common])
    r.add_argument("name", choices=sorted(SCENARIOS))
    r.add_argument("--keep", action="store_true", help="leave the failure / grid event in place (undo: restore)")
    u = cmds.add_parser("restore", help="undo a scenario (repair CDUs / bring links up / cancel the grid event)",
                        parents=[common])
    u.add_argument("name", choices=sorted(SCENARIOS))


def targets(args: argparse.Namespace) -> Targets:
    return Targets.from_env(bootstrap=args.bootstrap, power=args.power, cooling=args.cooling, jobs=args.jobs,
                            fabric=args.fabric, power_http=args.power_http, token=args.token,
                            facility=args.facility, step_timeout_s=args.step_timeout)


def render_step(s: Step) -> str:
    mark = "ok " if s.ok else "!! "
    return f"{s.at[11:23]} +{s.elapsed_s:7.2f}s {mark}{s.name:<16} {s.summary}"


def run(args: argparse.Namespace) -> int:
    if args.cmd == "list":
        if args.json:
            print(json.dumps({n: s.description for n, s in SCENARIOS.items()}))
        else:
            for n, s in SCENARIOS.items():
                print(f"{n:<18} {s.description}")
        return 0
    if args.step_timeout <= 0:
        print("twinctl: --step-timeout must be > 0 seconds", file=sys.stderr)
        return 2
    t = targets(args)
    on_step = None if args.json else (lambda s: print(render_step(s), flush=True))
    if not args.json:
        print(f"scenario {args.name} against broker {t.bootstrap}, power {t.power} / {t.power_http}, cooling "
              f"{t.cooling}, jobs {t.jobs}, fabric {t.fabric} ({t.facility}); each step waits at most "
              f"{t.step_timeout_s:.0f} s", flush=True)
    keep = getattr(args, "keep", False)
    report = asyncio.run(run_scenario(args.name, t, on_step=on_step, restore=args.cmd == "restore" or not keep,
                                      only_restore=args.cmd == "restore"))
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(f"{args.name}: {'every step concluded' if report.ok else 'a step did not conclude (see !!)'}")
    return 0 if report.ok else 1
