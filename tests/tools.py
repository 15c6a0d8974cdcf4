"""Build-or-reuse the Go programs the project's own tests use (actionlint), cached outside the repo.

    ${MLOPS_ACCEPTANCE_CACHE:-~/.cache/mlops-acceptance}/bin/<name>-<version>/<name>

A program already there is reused as is; a missing one is built once with
`GOBIN=<tmp> go install <package>@<version>` (source from the Go module proxy), into a
temporary folder that is then renamed into place, under a file lock, so parallel test
processes never see a half-written binary. No `go` on PATH and nothing cached:
ToolUnavailable, which the tests turn into a skip with that reason. A failed build
raises ToolBuildError (a failure, not a skip).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mlops_acceptance.fixtures.cache import locked
from mlops_acceptance.fixtures.cache import root as cache_root
from mlops_acceptance.fixtures.kube.toolchain import usable

# The newest release on the module proxy when this was written (`go list -m -versions
# github.com/rhysd/actionlint`); ACTIONLINT_VERSION overrides it.
ACTIONLINT_VERSION = "v1.7.12"
ACTIONLINT_PACKAGE = "github.com/rhysd/actionlint/cmd/actionlint"
BUILD_TIMEOUT_S = 900


class ToolUnavailable(Exception):
    """The program is not cached and cannot be built here (no `go`): the reason to skip with."""


class ToolBuildError(RuntimeError):
    """`go install` ran and failed."""


def actionlint_version() -> str:
    version = (os.environ.get("ACTIONLINT_VERSION") or ACTIONLINT_VERSION).strip()
    return version if version.startswith("v") else "v" + version


def actionlint() -> Path:
    """Path of the actionlint binary (built on first use)."""
    return go_program("actionlint", ACTIONLINT_PACKAGE, actionlint_version())


def program_path(name: str, version: str) -> Path:
    return cache_root() / "bin" / f"{name}-{version}" / name


def go_program(name: str, package: str, version: str) -> Path:
    """`name` (the last element of `package`) at `version`: reused when cached, else built."""
    exe = program_path(name, version)
    if usable(exe):
        return exe
    go = shutil.which("go")
    if not go:
        raise ToolUnavailable(f"{name} {version} is not cached at {exe} and `go` is not on PATH to build it "
                              f"(`go install {package}@{version}` once, or install Go)")
    bin_root = exe.parent.parent
    with locked(cache_root() / "locks" / f"{name}-{version}.lock"):
        if usable(exe):  # another process built it while we waited
            return exe
        bin_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".build-{name}-", dir=bin_root) as tmp:
            out = Path(tmp) / "bin"
            env = {**os.environ, "GOBIN": str(out), "GOWORK": "off"}
            env.setdefault("CGO_ENABLED", "0")
            try:
                done = subprocess.run([go, "install", f"{package}@{version}"], cwd=tmp, env=env,
                                      capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise ToolBuildError(f"go install {package}@{version}: no result after {BUILD_TIMEOUT_S} s") from None
            if done.returncode or not usable(out / name):
                raise ToolBuildError(f"go install {package}@{version} failed (exit {done.returncode}):\n"
                                     f"{(done.stderr or done.stdout).strip()[-2000:]}")
            if exe.parent.exists():  # a leftover without the binary (e.g. removed by hand)
                shutil.rmtree(exe.parent)
            os.replace(out, exe.parent)
    return exe


def kwok_unbuildable(*extra: str) -> str | None:
    """Why the kwok tests cannot run here, or None: the kube binaries (and `extra`) are missing and
    there is no `go` to build them. Missing but buildable is not a reason: the test's cluster builds
    them, or waits under their lock while another worker or the background build does."""
    from mlops_acceptance.fixtures.kube.cluster import REQUIRED_BINARIES
    from mlops_acceptance.fixtures.kube.toolchain import binary_paths

    missing = [b for b, p in binary_paths(REQUIRED_BINARIES + extra).items() if not os.access(p, os.X_OK)]
    if missing and not shutil.which("go"):
        return f"kwok binaries {missing} not built and no `go` to build them"
    return None
