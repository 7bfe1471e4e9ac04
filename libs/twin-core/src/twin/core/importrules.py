"""Import rules that ruff cannot express (run by `make lint`).

1. `domain/` packages are pure: no Kafka, SQL, gRPC, protobuf, OpenTelemetry, HTTP or YAML imports.
2. Services never import each other: `twin.<service>` may import `twin.core`, generated `twin.*.v1`
   protos and itself, nothing from another service.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[5]
SERVICES = ROOT / "services"
IO_LIBRARIES = (
    "aiokafka", "faust", "kafka", "psycopg", "psycopg_pool", "grpc", "google.protobuf", "opentelemetry",
    "aiohttp", "requests", "yaml", "sqlalchemy", "asyncio",
)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def service_packages() -> dict[str, Path]:
    """Map service package name (e.g. `facility_sim`) to its source folder."""
    return {p.name: p for p in SERVICES.glob("*/src/twin/*")
            if p.is_dir() and ((p / "__main__.py").exists() or (p / "domain").is_dir())}


def violations() -> list[str]:
    problems: list[str] = []
    packages = service_packages()
    for name, folder in packages.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(ROOT)
            in_domain = "domain" in path.relative_to(folder).parts
            for line, module in _imports(path):
                if in_domain and any(module == lib or module.startswith(lib + ".") for lib in IO_LIBRARIES):
                    problems.append(f"{rel}:{line}: domain code imports I/O library {module!r}")
                parts = module.split(".")
                is_proto = len(parts) >= 3 and parts[0] == "twin" and re.fullmatch(r"v\d+", parts[2]) is not None
                if in_domain and is_proto:
                    problems.append(f"{rel}:{line}: domain code imports generated protobuf {module!r}")
                if not is_proto and len(parts) >= 2 and parts[0] == "twin" and parts[1] in packages and parts[1] != name:
                    problems.append(f"{rel}:{line}: service {name!r} imports another service {module!r}")
    return problems


def main() -> int:
    problems = violations()
    for p in problems:
        print(p)
    print(f"import rules: {len(problems)} violation(s) in {len(service_packages())} service(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
