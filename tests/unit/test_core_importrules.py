"""The import rules hold for the whole tree, and the checker really detects violations."""

from pathlib import Path

from twin.core import importrules


def test_tree_has_no_import_violations():
    assert importrules.violations() == []


def test_checker_flags_io_in_domain_and_cross_service_imports(tmp_path, monkeypatch):
    svc_a = tmp_path / "services" / "a" / "src" / "twin" / "alpha"
    svc_b = tmp_path / "services" / "b" / "src" / "twin" / "beta"
    for folder in (svc_a / "domain", svc_b):
        folder.mkdir(parents=True)
    (svc_a / "__main__.py").write_text("from twin.beta import app\nfrom twin.beta.v1 import beta_pb2\n")
    (svc_a / "domain" / "model.py").write_text("import psycopg\nfrom twin.alpha.v1 import x_pb2\nimport numpy\n")
    (svc_b / "__main__.py").write_text("")
    monkeypatch.setattr(importrules, "ROOT", tmp_path)
    monkeypatch.setattr(importrules, "SERVICES", tmp_path / "services")
    found = importrules.violations()
    assert any("imports another service 'twin.beta'" in v for v in found)
    assert any("I/O library 'psycopg'" in v for v in found)
    assert any("generated protobuf 'twin.alpha.v1'" in v for v in found)
    assert not any("twin.beta.v1" in v for v in found), "importing another context's protos is allowed"
    assert len(found) == 3
    assert all(Path(v.split(":")[0]).parts[0] == "services" for v in found)
