"""Settings from environment variables, one place for every service.

Shared: TWIN_KAFKA_BOOTSTRAP, TWIN_DATABASE_URL, TWIN_FACILITY (preset name or YAML path),
TWIN_SITE_ID. Per service: `<SERVICE>_<NAME>` (e.g. INGEST_BATCH_MAX_ROWS), where SERVICE is the
service name upper-cased with '-' → '_'. OpenTelemetry reads its own OTEL_* variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_FACILITY = "dgx-h100-su"


@dataclass(frozen=True)
class Settings:
    service: str
    kafka_bootstrap: str = DEFAULT_KAFKA
    database_url: str = DEFAULT_DATABASE
    facility: str = DEFAULT_FACILITY
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, service: str, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        return cls(
            service=service,
            kafka_bootstrap=env.get("TWIN_KAFKA_BOOTSTRAP", DEFAULT_KAFKA),
            database_url=env.get("TWIN_DATABASE_URL", DEFAULT_DATABASE),
            facility=env.get("TWIN_FACILITY", DEFAULT_FACILITY),
            env=env,
        )

    @property
    def prefix(self) -> str:
        return self.service.upper().replace("-", "_") + "_"

    def get(self, name: str, default: str) -> str:
        return self.env.get(self.prefix + name, default)

    def get_int(self, name: str, default: int) -> int:
        raw = self.get(name, str(default))
        try:
            return int(raw)
        except ValueError as exc:
            raise ValueError(f"{self.prefix}{name} must be an integer, got {raw!r}") from exc

    def get_float(self, name: str, default: float) -> float:
        raw = self.get(name, str(default))
        try:
            return float(raw)
        except ValueError as exc:
            raise ValueError(f"{self.prefix}{name} must be a number, got {raw!r}") from exc
