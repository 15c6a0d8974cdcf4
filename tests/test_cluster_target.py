"""The cluster target on its defaults, before and while it deploys:

- kubectl is found, or downloaded and checked against its published sha256 (a real HTTP server here),
  or named in one line with the two ways to get it;
- $KUBECONFIG's files are merged by the client's loader: the context is found in whichever file holds
  it, and a missing one is one line naming it;
- preflight stops in one line, before anything is applied, when KServe is missing and
  --kube-install-kserve was not given, and when the claims' StorageClass exists neither as named nor as
  a default;
- a configured StorageClass the cluster lacks (local-path on kind, on a cloud) is replaced by the
  cluster's default one: the claims are rendered with it, the notes say so, and 3.1-storage/3.2-storage
  judge the claims against the class actually used and say that too.

The cluster parts run against a real API server (kwok; StorageClasses and CRDs are API objects).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import secrets
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.errors import UsageError
from mlops_acceptance.fixtures.kube import kubectl, storage
from mlops_acceptance.fixtures.kube.kubeconfig import Kubeconfig
from tests.tools import kwok_unbuildable

ROOT = Path(__file__).resolve().parent.parent
needs_kwok = pytest.mark.skipif(bool(kwok_unbuildable()), reason=kwok_unbuildable() or "")


class Config:
    """pytest's config as preflight reads it: getoption(name, default)."""

    def __init__(self, **options):
        self.options = options

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def one_line(exc: UsageError) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# --- kubectl ---------------------------------------------------------------------------------------

@pytest.fixture
def release_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a `kubectl` program and its .sha256, as dl.k8s.io does."""
    folder = tmp_path / "release"
    folder.mkdir()
    program = b"#!/bin/sh\necho 'Client Version: v1.31.14'\n"
    (folder / "kubectl").write_bytes(program)
    (folder / "kubectl.sha256").write_text(hashlib.sha256(program).hexdigest())
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}/kubectl", folder=folder)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_kubectl(tmp_path, monkeypatch):
    """No kubectl on PATH, an empty cache (no toolchain build, nothing downloaded)."""
    monkeypatch.setenv("MLOPS_ACCEPTANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(p) / "kubectl").exists()))
    assert kubectl.find() is None


def test_kubectl_is_downloaded_once_and_checked(no_kubectl, release_server, monkeypatch):
    monkeypatch.setenv("KUBECTL_DOWNLOAD_URL", release_server.url)
    path = kubectl.ensure()
    assert path == kubectl.downloaded_path() and os.access(path, os.X_OK)
    assert path.read_bytes() == (release_server.folder / "kubectl").read_bytes()
    (release_server.folder / "kubectl").unlink()  # the next run finds it in the cache, offline
    assert kubectl.ensure() == path and kubectl.find() == path


def test_a_kubectl_whose_checksum_differs_is_refused(no_kubectl, release_server, monkeypatch):
    monkeypatch.setenv("KUBECTL_DOWNLOAD_URL", release_server.url)
    (release_server.folder / "kubectl.sha256").write_text("0" * 64)
    with pytest.raises(UsageError) as info:
        kubectl.ensure()
    assert "not the published " + "0" * 64 in one_line(info.value)
    assert not kubectl.downloaded_path().exists()


def test_no_kubectl_and_no_download_is_one_line(no_kubectl, monkeypatch):
    monkeypatch.setenv("KUBECTL_DOWNLOAD_URL", "http://127.0.0.1:9/kubectl")  # nothing listens on port 9
    with pytest.raises(UsageError) as info:
        kubectl.ensure(timeout=5)
    line = one_line(info.value)
    assert "http://127.0.0.1:9/kubectl" in line and "put kubectl on PATH" in line and kubectl.BUILD_HINT in line


# --- StorageClass: the pure decision ---------------------------------------------------------------

def storage_class(name, default=False, created="2026-01-01T00:00:00Z"):
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations, "creationTimestamp": created}}


def test_storage_choice_on_kind_a_cloud_and_a_cluster_without_default():
    values = load_values()  # the defaults: local-path for both claims
    kind = storage.choose(values, [storage_class("standard", default=True)])
    assert kind.used == {"minio_storage_class": "standard", "postgresql_storage_class": "standard"}
    assert kind.notes == ["minio_storage_class local-path not found: using the default StorageClass standard",
                          "postgresql_storage_class local-path not found: using the default StorageClass standard"]
    assert not kind.problems
    # A class that exists is kept, even where another is the default.
    assert not storage.choose(values, [storage_class("local-path"), storage_class("gp3", default=True)]).used
    # Two defaults: the newest, as the API server picks it.
    cloud = storage.choose(values, [storage_class("gp2", True, "2024-01-01T00:00:00Z"),
                                    storage_class("gp3", True, "2025-01-01T00:00:00Z")])
    assert set(cloud.used.values()) == {"gp3"}
    bare = storage.choose(values, [storage_class("fast")])
    assert not bare.used and len(bare.problems) == 2
    assert bare.problems[0].startswith("minio_storage_class local-path: no such StorageClass in the cluster and no "
                                       "default StorageClass (it has: fast)")


# --- a real API server ---------------------------------------------------------------------------

KSERVE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "inferenceservices.serving.kserve.io"},
    "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
             "names": {"plural": "inferenceservices", "singular": "inferenceservice", "kind": "InferenceService",
                       "listKind": "InferenceServiceList"},
             "versions": [{"name": "v1beta1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture(scope="module")
def cluster():
    from mlops_acceptance.fixtures.kube.cluster import KwokCluster

    c = KwokCluster.create(timeout=120)
    try:
        c.add_nodes(1)
        yield c
    finally:
        c.delete()


@pytest.fixture(scope="module")
def kube(cluster):
    from mlops_acceptance.fixtures.kube.client import Kube

    k = Kube(cluster.api_client(), name=cluster.name)
    yield k
    k.close()


@pytest.fixture
def default_class(kube):
    """A default StorageClass named as kind names its own, for the test."""
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
          "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
          "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"}
    kube.apply(sc)
    yield "standard"
    kube.delete("storage.k8s.io/v1", "StorageClass", "standard")


@pytest.fixture
def kserve_crd(kube):
    kube.apply(KSERVE_CRD)
    kube.wait_for("apiextensions.k8s.io/v1", "CustomResourceDefinition", KSERVE_CRD["metadata"]["name"], None,
                  lambda o: any(c["type"] == "Established" and c["status"] == "True"
                                for c in (o.get("status") or {}).get("conditions") or []), timeout=30)
    yield
    kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", KSERVE_CRD["metadata"]["name"])


@pytest.fixture
def merged(cluster, tmp_path, monkeypatch):
    """KUBECONFIG = a dummy file (its current-context first) : the kwok cluster's file."""
    dummy = tmp_path / "dummy.kubeconfig"
    dummy.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dummy",
        "clusters": [{"name": "dummy", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "dummy", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "dummy", "context": {"cluster": "dummy", "user": "dummy"}}]}))
    kwok_context = yaml.safe_load(Path(cluster.kubeconfig).read_text())["current-context"]
    monkeypatch.setenv("KUBECONFIG", f"{dummy}{os.pathsep}{cluster.kubeconfig}")
    return SimpleNamespace(dummy=dummy, kwok=Path(cluster.kubeconfig), context=kwok_context)


@needs_kwok
def test_merged_kubeconfig_finds_the_context_in_either_file(merged):
    kc = Kubeconfig.find(None)
    assert kc.files == (merged.dummy, merged.kwok) and kc.source == "$KUBECONFIG"
    assert set(kc.contexts()) == {"dummy", merged.context}
    assert kc.context(None) == "dummy"  # kubectl's rule: the first file's current-context
    assert kc.context(merged.context) == merged.context
    from kubernetes import client

    api = kc.api_client(merged.context)  # the second file's context, through the client's loader
    try:
        assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    finally:
        api.close()
    with pytest.raises(UsageError) as info:
        kc.context("prod-eu")
    assert one_line(info.value) == (f"--kube-context 'prod-eu': no such context in $KUBECONFIG {kc.spec} "
                                    f"(contexts: dummy, {merged.context})")


# This kwok cluster has no GPU node: the spec's GPU predictor would stop the preflight (its own line,
# tests/test_kwok.py::test_gpu_preflight_names_the_selector_no_node_matches), as a user without GPUs is told.
NO_GPUS = ["inference_gpu_count=0"]


@needs_kwok
def test_preflight_passes_on_a_cluster_with_kserve_and_a_default_class(merged, kserve_crd, default_class):
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider

    ClusterProvider.preflight(load_values(sets=NO_GPUS), Config(kube_context=merged.context))


@needs_kwok
def test_preflight_stops_in_one_line_without_kserve(merged, default_class, kube):
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider

    # Another test's CRD may still be going (its deletion is asynchronous): this one needs it gone.
    kube.wait_gone("apiextensions.k8s.io/v1", "CustomResourceDefinition", KSERVE_CRD["metadata"]["name"], timeout=60)
    with pytest.raises(UsageError) as info:
        ClusterProvider.preflight(load_values(sets=NO_GPUS), Config(kube_context=merged.context))
    line = one_line(info.value)
    assert line.startswith(f"context {merged.context}: KServe is not installed") and "--kube-install-kserve" in line
    # Asked to install it: preflight lets the run go on (the install plan runs after it).
    ClusterProvider.preflight(load_values(sets=NO_GPUS), Config(kube_context=merged.context, kube_install_kserve=True))


@needs_kwok
def test_preflight_stops_in_one_line_without_the_class_or_a_default(merged, kserve_crd, kube):
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider

    assert storage.default_class(kube.list("storage.k8s.io/v1", "StorageClass")) is None
    with pytest.raises(UsageError) as info:
        ClusterProvider.preflight(load_values(sets=["postgresql_storage_class=fast-ssd", *NO_GPUS]),
                                  Config(kube_context=merged.context))
    lines = str(info.value).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"context {merged.context}: minio_storage_class local-path: no such StorageClass")
    assert lines[1].startswith(f"context {merged.context}: postgresql_storage_class fast-ssd: no such StorageClass")


@needs_kwok
def test_preflight_names_an_api_server_that_does_not_answer(merged):
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider

    with pytest.raises(UsageError) as info:
        ClusterProvider.preflight(load_values(), Config())  # the dummy file's current-context
    assert one_line(info.value).startswith("context dummy ($KUBECONFIG ")


@needs_kwok
def test_a_cluster_run_without_kserve_stops_before_anything_is_applied(suite_run, merged, kube, default_class):
    ns = f"nothing-{secrets.token_hex(3)}"
    done, signoff = suite_run("--target", "cluster", "--kube-context", merged.context,
                              *[a for k in ("minio_namespace", "postgresql_namespace", "mlflow_namespace")
                                for a in ("--set", f"{k}={ns}")], "--set", NO_GPUS[0],
                              env={"KUBECONFIG": os.environ["KUBECONFIG"]}, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output[-2000:]
    lines = [line for line in output.splitlines() if "KServe is not installed" in line]
    assert len(lines) == 1 and "--kube-install-kserve" in lines[0], output[-2000:]
    assert "Traceback" not in output and signoff is None
    assert kube.read("v1", "Namespace", ns) is None, "something was applied"


@needs_kwok
def test_a_missing_class_is_replaced_by_the_default_and_the_checks_say_so(cluster, kube, default_class, tmp_path):
    """kind's case on a real API server: the values name local-path, the cluster has only its default
    `standard`. The claims are rendered with `standard`, the notes say so, and the storage checks judge the
    bound claims against `standard` and say why; judged against local-path they fail."""
    from mlops_acceptance.fixtures.kube.deploy import Deployer
    from mlops_acceptance.fixtures.kube.options import KubeOptions
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider
    from mlops_acceptance.fixtures.kube.simulation import with_static_storage
    import mlops_acceptance.suites.test_k8s_31_minio as m31
    import mlops_acceptance.suites.test_k8s_32_postgresql as m32
    from tests.test_kwok import Evidence

    ns = f"sc-{secrets.token_hex(3)}"
    values = load_values(sets=[f"{k}={ns}" for k in ("minio_namespace", "postgresql_namespace", "mlflow_namespace",
                                                     "inference_service_namespace")])
    provider = ClusterProvider(values, options=KubeOptions.defaults(kubeconfig=cluster.kubeconfig, timeout=30))
    deployer = None
    try:
        provider.kube = provider._cluster()
        objects = provider.render()
        claims = {o["metadata"]["name"]: o["spec"]["storageClassName"] for o in objects
                  if o["kind"] == "PersistentVolumeClaim"}
        templates = [t["spec"]["storageClassName"] for o in objects if o["kind"] == "StatefulSet"
                     for t in o["spec"].get("volumeClaimTemplates", [])]
        assert claims == {"minio-data": "standard"} and templates == ["standard"]
        assert "minio_storage_class local-path not found: using the default StorageClass standard" in provider.notes
        assert provider.values.postgresql_storage_class == "standard"
        assert provider.storage_replaced == {"minio_storage_class": "local-path",
                                             "postgresql_storage_class": "local-path"}
        wanted = {"Namespace", "PersistentVolumeClaim", "StatefulSet", "Deployment", "Secret", "ConfigMap",
                  "Service"}
        parts = [o for o in objects if o["kind"] in wanted and o["metadata"].get("namespace", ns) == ns]
        parts, _ = with_static_storage(kube, parts, str(tmp_path / "volumes"))
        deployer = Deployer(kube)
        deployer.wait_ready(deployer.apply(parts), timeout=60)
        stack = SimpleNamespace(values=provider.values, k8s=kube, values_replaced=provider.storage_replaced)
        for check in (m31.test_minio_claim_bound_and_mounted_at_the_data_path, m32.test_postgresql_claim_template_bound):
            evidence = Evidence()
            check(stack, evidence)
            assert any("does not exist in the cluster: judged against the default StorageClass standard" in e
                       for e in evidence), evidence
        # The same claims judged by the configured class (as if the run had not used the default): they fail.
        unreplaced = SimpleNamespace(values=values, k8s=kube)
        with pytest.raises(AssertionError, match="class standard, minio_storage_class=local-path"):
            m31.test_minio_claim_bound_and_mounted_at_the_data_path(unreplaced, Evidence())
    finally:
        if deployer is not None:
            deployer.teardown(60)
        provider.down()
