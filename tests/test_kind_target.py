"""--target kind with pytest-kind-ng installed and no Docker engine: its options (--kind-image,
--kind-bin, --keep-cluster) parse once, collection works, and a real run stops before anything
starts with one line naming the missing Docker engine."""

from __future__ import annotations

import os
import stat

import pytest

pytest.importorskip("pytest_kind", reason="pytest-kind-ng is the kind extra: pip install 'mlops-acceptance[kind]'")


@pytest.fixture
def no_docker_path(tmp_path):
    """PATH where `docker` is a program that finds no daemon (as on a machine without the engine running)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2\n"
                      "exit 1\n")
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_kind_options_parse_and_collection_works(suite_run, no_docker_path):
    done, _ = suite_run("--target", "kind", "--kind-image", "kindest/node:v1.31.0", "--kind-bin", "/bin/true",
                        "--keep-cluster", "--kind-name", "acc", "--co", env={"PATH": no_docker_path}, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    assert "already used" not in output
    assert "tests collected" in output or "collected" in output, output[-1000:]


def test_a_kind_run_without_docker_stops_with_one_line_naming_it(suite_run, run_tmpdir, no_docker_path):
    done, signoff = suite_run("--target", "kind", "--kind-bin", "/bin/true", env={"PATH": no_docker_path},
                              timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-2000:]
    lines = [line for line in output.splitlines() if "Docker" in line]
    assert len(lines) == 1 and "--target kind needs a Docker engine" in lines[0], output[-2000:]
    assert "Traceback" not in output
    assert signoff is None and not any(run_tmpdir.iterdir()), "something was provisioned"


def test_kind_preflight_names_a_kubectl_it_cannot_get(tmp_path, monkeypatch):
    """Docker answers, but no kubectl is on PATH or in the cache and its download fails: one line naming
    the download and the two ways to provide kubectl, before any cluster is made."""
    from mlops_acceptance.fixtures.config import load_values
    from mlops_acceptance.fixtures.errors import UsageError
    from mlops_acceptance.fixtures.kube import kubectl
    from mlops_acceptance.fixtures.kube.providers.kind import KindProvider

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho 27.0.1\n")  # `docker info --format ...`: a daemon that answers
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), *(p for p in os.environ["PATH"].split(os.pathsep)
                                                                 if not os.path.exists(os.path.join(p, "kubectl")))]))
    monkeypatch.setenv("MLOPS_ACCEPTANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KUBECTL_DOWNLOAD_URL", "http://127.0.0.1:9/kubectl")  # nothing listens on port 9

    class Config:
        def getoption(self, name, default=None):
            return "/bin/true" if name == "kind_bin" else default

    with pytest.raises(UsageError) as info:
        KindProvider.preflight(load_values(), Config())
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9/kubectl" in lines[0] and kubectl.BUILD_HINT in lines[0], lines
