"""Typed settings from environment variables: one parser, every setting documented in one place.

A service declares its settings as a frozen dataclass that extends `ServiceConfig`; each field is a
`setting(default, "help")`. The environment variable is `<SERVICE>_<FIELD>` upper-cased (e.g.
`FABRIC_GRPC_PORT`), or the shared `TWIN_*` name for the fields every service has:

    @dataclass(frozen=True)
    class FabricConfig(ServiceConfig):
        grpc_port: int = setting(50053, "gRPC listen port (0: any free port)")

    cfg = load_config(FabricConfig, "fabric")          # from os.environ
    print(describe(FabricConfig, "fabric"))            # what `python -m twin.fabric --help` prints

Types come from the annotations: str, int, float, bool (1/0, true/false, yes/no, on/off), tuples of
str (comma-separated), and `X | None` (empty = None). A malformed value raises `SettingError`
naming the variable. OpenTelemetry reads its own standard OTEL_* variables.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_FACILITY = "dgx-h100-su"
LOOPBACK = "127.0.0.1"  # default bind address: nothing listens beyond this host unless configured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class SettingError(ValueError):
    """A setting's value cannot be parsed; the message names the environment variable."""


def setting(default: Any, help: str, *, env: str | None = None, secret: bool = False) -> Any:
    """Declare one setting: its default, a one-line help, optionally a fixed env name; `secret`
    settings are never printed with their value."""
    return field(default=default, metadata={"help": help, "env": env, "secret": secret})


def parse_bool(raw: str, name: str = "value") -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}")


def _parse(kind: Any, raw: str, name: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if raw.strip() == "" else _parse(args[0], raw, name)
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        if kind is bool:
            return parse_bool(raw, name)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError as exc:
        if isinstance(exc, SettingError):
            raise
        raise SettingError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    return raw


@dataclass(frozen=True)
class ServiceConfig:
    """The settings every service has (shared TWIN_* names)."""

    kafka_bootstrap: str = setting(DEFAULT_KAFKA, "Kafka bootstrap servers host:port[,...]",
                                   env="TWIN_KAFKA_BOOTSTRAP")
    database_url: str = setting(DEFAULT_DATABASE, "PostgreSQL/TimescaleDB URL", env="TWIN_DATABASE_URL",
                                secret=True)
    facility: str = setting(DEFAULT_FACILITY, "facility spec: a preset name or a YAML path", env="TWIN_FACILITY")
    site_id: str | None = setting(None, "site id in events and tables (default: the spec's site_id)",
                                  env="TWIN_SITE_ID")
    # A secured Kafka cluster (Kafka's own names: security.protocol, sasl.mechanism, ssl.*). PostgreSQL
    # takes TLS from the URL (`?sslmode=verify-full&sslrootcert=...`) or libpq's PGSSL* variables.
    kafka_security_protocol: str = setting("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                                           env="TWIN_KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: str | None = setting(None, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                                               env="TWIN_KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = setting(None, "SASL user name", env="TWIN_KAFKA_SASL_USERNAME")
    kafka_sasl_password: str | None = setting(None, "SASL password", env="TWIN_KAFKA_SASL_PASSWORD", secret=True)
    kafka_ssl_ca_file: str | None = setting(None, "PEM CA of the brokers' certificates", env="TWIN_KAFKA_SSL_CA_FILE")
    kafka_ssl_cert_file: str | None = setting(None, "PEM client certificate (mutual TLS)",
                                              env="TWIN_KAFKA_SSL_CERT_FILE")
    kafka_ssl_key_file: str | None = setting(None, "PEM client key (mutual TLS)", env="TWIN_KAFKA_SSL_KEY_FILE")

    def kafka_options(self) -> dict[str, Any]:
        """aiokafka client keyword arguments for the configured security (empty for PLAINTEXT)."""
        protocol = self.kafka_security_protocol.upper()
        if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise SettingError(f"TWIN_KAFKA_SECURITY_PROTOCOL must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, "
                               f"got {self.kafka_security_protocol!r}")
        if protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol.endswith("SSL"):
            import ssl

            context = ssl.create_default_context(cafile=self.kafka_ssl_ca_file)
            if self.kafka_ssl_cert_file:
                context.load_cert_chain(self.kafka_ssl_cert_file, self.kafka_ssl_key_file)
            options["ssl_context"] = context
        if protocol.startswith("SASL"):
            mechanism = (self.kafka_sasl_mechanism or "PLAIN").upper()
            if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
                raise SettingError(f"TWIN_KAFKA_SASL_MECHANISM {mechanism!r} is not supported")
            if not self.kafka_sasl_username or not self.kafka_sasl_password:
                raise SettingError("SASL needs TWIN_KAFKA_SASL_USERNAME and TWIN_KAFKA_SASL_PASSWORD")
            options.update(sasl_mechanism=mechanism, sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password)
        return options


C = TypeVar("C", bound=ServiceConfig)


def env_name(service: str, f: dataclasses.Field) -> str:
    return f.metadata.get("env") or service.upper().replace("-", "_") + "_" + f.name.upper()


def load_config(cls: type[C], service: str, environ: Mapping[str, str] | None = None, **overrides: Any) -> C:
    """Build `cls` from the environment (defaults where unset); `overrides` win over both."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in overrides or "help" not in f.metadata:
            continue  # fields without `setting(...)` (e.g. topics) are for code and tests, not the env
        name = env_name(service, f)
        if name in env:
            values[f.name] = _parse(hints[f.name], env[name], name)
    return cls(**values, **overrides)


def describe(cls: type[ServiceConfig], service: str, environ: Mapping[str, str] | None = None) -> str:
    """One line per setting: variable, default, current value when set (secrets masked), help."""
    env = os.environ if environ is None else environ
    lines = []
    for f in dataclasses.fields(cls):
        if not f.init or "help" not in f.metadata:
            continue
        name = env_name(service, f)
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        if isinstance(default, tuple):
            default = ",".join(default) or "(none)"
        elif isinstance(default, bool):
            default = "1" if default else "0"
        elif default is None:
            default = "(unset)"
        now = ""
        if name in env:
            now = "  [set]" if f.metadata.get("secret") else f"  [now {env[name]!r}]"
        lines.append(f"  {name:<34} {str(default):<16} {f.metadata['help']}{now}")
    return "\n".join(lines)


def redacted(cfg: ServiceConfig) -> dict[str, Any]:
    """The config as a dict with secret settings masked, for logs."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = "***" if f.metadata.get("secret") and value else value
    return out


# -- the untyped accessor the faust helpers and older code take ------------------------------------


@dataclass(frozen=True)
class Settings:
    """Raw environment view for one service (prefer a typed `ServiceConfig`)."""

    service: str
    kafka_bootstrap: str = DEFAULT_KAFKA
    database_url: str = DEFAULT_DATABASE
    facility: str = DEFAULT_FACILITY
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
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
        return _parse(int, self.get(name, str(default)), self.prefix + name)

    def get_float(self, name: str, default: float) -> float:
        return _parse(float, self.get(name, str(default)), self.prefix + name)

    def get_bool(self, name: str, default: bool) -> bool:
        return parse_bool(self.get(name, "1" if default else "0"), self.prefix + name)
