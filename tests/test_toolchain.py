"""The Go toolchain reads go.mod files with the go command and builds every tool in a wrapper module."""

from __future__ import annotations

import shutil

import pytest

from mlops_acceptance.fixtures.kube import toolchain

pytestmark = pytest.mark.skipif(not shutil.which("go"), reason="needs `go` on PATH")


def test_go_mod_is_read_by_the_go_command(tmp_path):
    (tmp_path / "go.mod").write_text(
        "module example.com/m // a comment\n\ngo 1.22\n\n"
        "require (\n\tk8s.io/api v0.0.0\n\tgo.etcd.io/etcd/api/v3 v3.5.35 // indirect\n)\n"
        "require example.com/single v1.2.3\n\n"
        "replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n)\n"
        "replace example.com/single => example.com/fork v1.2.4\n")
    requires, replaces, lines = toolchain._read_gomod(tmp_path / "go.mod", toolchain._go_env())
    assert requires == {"k8s.io/api": "v0.0.0", "go.etcd.io/etcd/api/v3": "v3.5.35", "example.com/single": "v1.2.3"}
    assert replaces == {"k8s.io/api": "./staging/src/k8s.io/api", "example.com/single": "example.com/fork v1.2.4"}
    assert lines["example.com/single"] == "example.com/single => example.com/fork v1.2.4"


def test_a_module_without_replaces_builds_in_a_wrapper_not_by_go_install(tmp_path, monkeypatch):
    """actionlint (the project's workflow linter, in the module cache once tests/tools.py built it)."""
    monkeypatch.setenv("MLOPS_ACCEPTANCE_CACHE", str(tmp_path / "cache"))
    tool = toolchain.Tool(name="actionlint", module="github.com/rhysd/actionlint", env_var="ACTIONLINT_VERSION",
                          default_version="v1.7.12", method="install",
                          binaries={"actionlint": "github.com/rhysd/actionlint/cmd/actionlint"})
    out = tmp_path / "out"
    out.mkdir()
    try:
        toolchain._build(tool, "v1.7.12", ["actionlint"], out)
    except toolchain.ToolchainError as exc:
        if "proxy" in str(exc) or "dial tcp" in str(exc):
            pytest.skip(f"the Go module proxy is unreachable: {exc}")
        raise
    assert toolchain.usable(out / "actionlint")
    wrapper = (tmp_path / "cache" / "build" / "actionlint-v1.7.12" / "go.mod").read_text()
    assert "require github.com/rhysd/actionlint v1.7.12" in wrapper
