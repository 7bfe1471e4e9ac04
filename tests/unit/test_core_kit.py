"""The service kit's pure parts: typed settings, JSON depth limit, polling backoff."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from twin.core.http import BodyRejected, json_depth, parse_json
from twin.core.polling import next_delay_s, poll_loop
from twin.core.settings import ServiceConfig, SettingError, describe, load_config, parse_bool, setting


@dataclass(frozen=True)
class DemoConfig(ServiceConfig):
    port: int = setting(50051, "gRPC port")
    ratio: float = setting(0.5, "a share")
    enabled: bool = setting(True, "on or off")
    urls: tuple[str, ...] = setting((), "comma list")
    token: str | None = setting(None, "secret", secret=True)


def test_settings_parse_every_type_from_the_service_prefix_and_shared_names():
    env = {"DEMO_SVC_PORT": "7", "DEMO_SVC_RATIO": "0.25", "DEMO_SVC_ENABLED": "off",
           "DEMO_SVC_URLS": "http://a, http://b,", "TWIN_KAFKA_BOOTSTRAP": "k:9", "DEMO_SVC_TOKEN": ""}
    cfg = load_config(DemoConfig, "demo-svc", env)
    assert (cfg.port, cfg.ratio, cfg.enabled, cfg.urls, cfg.kafka_bootstrap, cfg.token) == \
        (7, 0.25, False, ("http://a", "http://b"), "k:9", None)
    assert load_config(DemoConfig, "demo-svc", {}).port == 50051


@pytest.mark.parametrize("name,value", [("DEMO_SVC_PORT", "seven"), ("DEMO_SVC_RATIO", "x"),
                                        ("DEMO_SVC_ENABLED", "maybe")])
def test_a_bad_setting_names_its_variable(name, value):
    with pytest.raises(SettingError, match=name):
        load_config(DemoConfig, "demo-svc", {name: value})


def test_one_boolean_parser():
    assert [parse_bool(v) for v in ("1", "true", "YES", "on", "0", "false", "no", "off", "")] == [True] * 4 + [False] * 5


def test_describe_lists_every_setting_and_masks_secret_values():
    text = describe(DemoConfig, "demo-svc", {"DEMO_SVC_TOKEN": "hunter2", "DEMO_SVC_PORT": "9"})
    for name in ("TWIN_KAFKA_BOOTSTRAP", "DEMO_SVC_PORT", "DEMO_SVC_RATIO", "DEMO_SVC_ENABLED", "DEMO_SVC_URLS"):
        assert name in text
    assert "hunter2" not in text and "[set]" in text and "[now '9']" in text


def test_json_depth_counts_nesting_outside_strings_and_stops_early():
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(b"[" * 1_000_000, stop_at=65) == 65


def test_parse_json_rejects_deep_non_utf8_and_non_json_with_a_reason():
    with pytest.raises(BodyRejected, match="deeper than 64"):
        parse_json(b"[" * 100_000)
    with pytest.raises(BodyRejected, match="not UTF-8"):
        parse_json(b'{"a": "\xff"}')
    with pytest.raises(BodyRejected, match="not JSON"):
        parse_json(b'{"a": ')
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}


def test_poll_backoff_grows_caps_and_jitters_within_bounds():
    rng = random.Random(1)
    assert next_delay_s(10, 0, 300, 0.0) == 10
    assert [next_delay_s(10, n, 300, 0.0) for n in (1, 2, 3, 6)] == [20, 40, 80, 300]
    delays = [next_delay_s(10, 0, 300, 0.1, rng) for _ in range(200)]
    assert min(delays) >= 9 and max(delays) <= 11 and len(set(delays)) > 100


async def test_poll_loop_survives_failures_and_counts_them():
    calls = []
    stop = asyncio.Event()

    async def poll():
        calls.append(1)
        if len(calls) == 5:
            stop.set()
        if len(calls) % 2:
            raise ConnectionError("source down")

    stats = await poll_loop(poll, interval_s=0.001, stop=stop, max_backoff_s=0.004, jitter=0.0)
    assert stats.polls == 5 and stats.failures == 3 and "source down" in stats.last_error


def test_kafka_security_settings_become_aiokafka_options(tmp_path):
    import ssl

    assert load_config(DemoConfig, "demo-svc", {}).kafka_options() == {}
    sasl = load_config(DemoConfig, "demo-svc", {
        "TWIN_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "TWIN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TWIN_KAFKA_SASL_USERNAME": "twin", "TWIN_KAFKA_SASL_PASSWORD": "pw"}).kafka_options()
    assert sasl["security_protocol"] == "SASL_SSL" and sasl["sasl_mechanism"] == "SCRAM-SHA-512"
    assert sasl["sasl_plain_username"] == "twin" and isinstance(sasl["ssl_context"], ssl.SSLContext)
    with pytest.raises(SettingError, match="TWIN_KAFKA_SASL_USERNAME"):
        load_config(DemoConfig, "demo-svc", {"TWIN_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}).kafka_options()
    with pytest.raises(SettingError, match="SECURITY_PROTOCOL"):
        load_config(DemoConfig, "demo-svc", {"TWIN_KAFKA_SECURITY_PROTOCOL": "TLS"}).kafka_options()
    text = describe(DemoConfig, "demo-svc", {"TWIN_KAFKA_SASL_PASSWORD": "pw-secret"})
    assert "pw-secret" not in text


def test_stack_docstring_names_every_service_of_the_table_in_start_order():
    from twin.core import stack
    from twin.core.stack_services import STACK_SERVICES

    listed = ", ".join(s.name for s in STACK_SERVICES)
    assert listed in " ".join(stack.__doc__.split()), f"stack.py's docstring must list: {listed}"
