"""The KServe and cert-manager install objects, rendered offline from their Go modules, and the
image archives for their static binaries.

Needs the modules (the Go module proxy once, then Go's module cache) and, for cert-manager's chart,
the helm binary (fixtures/kube/toolchain.py, `--only helm`), built when missing: skipped with the
reason only where there is no `go`.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile

import pytest

from mlops_acceptance.fixtures.errors import UsageError
from mlops_acceptance.fixtures.kserve import install
from mlops_acceptance.fixtures.kserve.images import StaticImage, archive, write_archive
from mlops_acceptance.fixtures.kube import toolchain

KSERVE_VERSION = "0.11.2"
CERT_MANAGER_VERSION = "1.11.5"
IMAGES = install.Images.for_versions(KSERVE_VERSION, CERT_MANAGER_VERSION)


def _module(module: str, version: str):
    if not shutil.which("go"):
        pytest.skip("no `go` to fetch the module")
    try:
        return toolchain.module_source(module, version)
    except toolchain.ToolchainError as exc:
        pytest.skip(f"module {module}@{version} not obtainable: {exc}")


@pytest.fixture(scope="module")
def kserve_release():
    return install.kserve_release(KSERVE_VERSION, _module(install.KSERVE_MODULE, f"v{KSERVE_VERSION}"))


@pytest.fixture(scope="module")
def cert_manager():
    helm = toolchain.binary_paths(["helm"])["helm"]
    if not toolchain.usable(helm):
        if not shutil.which("go"):
            pytest.skip(f"helm not built ({helm}) and no `go` to build it")
        # Built here (or waited for under its lock while the background build makes it): a cold
        # cache is no reason to skip (CI's first cold run skipped this test).
        helm = toolchain.ensure_binaries(["helm"])["helm"]
    source = _module(install.CERT_MANAGER_MODULE, f"v{CERT_MANAGER_VERSION}")
    return install.cert_manager_objects(CERT_MANAGER_VERSION, IMAGES, source=source, helm=helm)


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_kserve_objects_run_the_controller_built_here_in_raw_deployment_mode(kserve_release):
    objects = install.kserve_objects(kserve_release, IMAGES, raw_deployment=True, ingress_class="traefik")
    dep = by_kind(objects, "Deployment")[install.CONTROLLER]
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["manager"], "the kube-rbac-proxy sidecar is dropped"
    assert containers[0]["image"] == IMAGES.kserve_controller and containers[0]["imagePullPolicy"] == "IfNotPresent"
    assert dep["spec"]["template"]["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": install.NONROOT_UID}
    config = by_kind(objects, "ConfigMap")["inferenceservice-config"]["data"]
    assert json.loads(config["deploy"]) == {"defaultDeploymentMode": "RawDeployment"}
    assert json.loads(config["storageInitializer"])["image"] == IMAGES.storage_initializer
    assert json.loads(config["ingress"])["ingressClassName"] == "traefik"
    services = by_kind(objects, "Service")
    assert set(services) == {install.WEBHOOK_SERVICE}, "no Service is left pointing at the dropped sidecar's port"
    # Everything upstream ships for the webhooks' TLS is kept: cert-manager issues it.
    assert "serving-cert" in by_kind(objects, "Certificate") and "selfsigned-issuer" in by_kind(objects, "Issuer")
    crds = by_kind(objects, "CustomResourceDefinition")
    assert {"inferenceservices.serving.kserve.io", "servingruntimes.serving.kserve.io",
            "clusterservingruntimes.serving.kserve.io"} <= set(crds)
    assert crds["inferenceservices.serving.kserve.io"]["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"] == "kserve/serving-cert"
    # No placeholder CA ("Cg==") is applied: Kubernetes 1.31 refuses it on the CRD's conversion webhook
    # (InvalidCABundle, never Established); cert-manager's cainjector fills the bundles in.
    conversion = crds["inferenceservices.serving.kserve.io"]["spec"]["conversion"]["webhook"]["clientConfig"]
    assert "caBundle" not in conversion and conversion["service"]["name"] == install.WEBHOOK_SERVICE
    for hooks in [*by_kind(objects, "MutatingWebhookConfiguration").values(),
                  *by_kind(objects, "ValidatingWebhookConfiguration").values()]:
        assert all("caBundle" not in w["clientConfig"] for w in hooks["webhooks"])
    # The release itself is left as it was (kserve_objects copies).
    assert len(by_kind(kserve_release, "Deployment")[install.CONTROLLER]["spec"]["template"]["spec"]["containers"]) == 2


def test_serverless_mode_and_upstream_ingress_class_are_kept_when_asked(kserve_release):
    config = by_kind(install.kserve_objects(kserve_release, IMAGES, raw_deployment=False), "ConfigMap")[
        "inferenceservice-config"]["data"]
    assert json.loads(config["deploy"])["defaultDeploymentMode"] == "Serverless"
    assert json.loads(config["ingress"])["ingressClassName"] == "istio"


def test_a_kserve_version_the_module_does_not_ship_is_one_clear_line(tmp_path):
    with pytest.raises(UsageError, match=r"KServe v0\.11\.2: the module has no install/v0\.11\.2/kserve\.yaml"):
        install.kserve_release(KSERVE_VERSION, tmp_path)


def test_cert_manager_from_its_module_chart_with_the_images_built_here(cert_manager):
    deps = by_kind(cert_manager, "Deployment")
    assert set(deps) == set(install.CERT_MANAGER_DEPLOYMENTS)
    images = {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in deps.items()}
    assert images == {"cert-manager": IMAGES.cert_manager_controller, "cert-manager-webhook": IMAGES.cert_manager_webhook,
                      "cert-manager-cainjector": IMAGES.cert_manager_cainjector}
    for d in deps.values():
        assert d["metadata"]["namespace"] == install.CERT_MANAGER_NAMESPACE
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == install.NONROOT_UID
    assert {"certificates.cert-manager.io", "issuers.cert-manager.io", "clusterissuers.cert-manager.io",
            "certificaterequests.cert-manager.io"} <= set(by_kind(cert_manager, "CustomResourceDefinition"))
    assert by_kind(cert_manager, "ValidatingWebhookConfiguration") and by_kind(cert_manager, "MutatingWebhookConfiguration")
    assert not by_kind(cert_manager, "Job"), "startupapicheck is off (it needs cmctl's image)"
    assert cert_manager[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}}


@pytest.mark.parametrize("version", ["1.13.0", "1.12.0", "v1.14.4"])
def test_a_cert_manager_the_module_proxy_cannot_build_is_refused_in_one_line(version):
    with pytest.raises(UsageError) as exc:
        install.check_cert_manager_version(version)
    assert f"cert_manager_version={version!r} cannot be built here" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_cert_manager_1_11_passes_the_version_check():
    install.check_cert_manager_version("1.11.5")


def test_ca_injected_needs_every_bundle_filled():
    hooks = {"kind": "ValidatingWebhookConfiguration",
             "webhooks": [{"clientConfig": {"caBundle": "Cg=="}}, {"clientConfig": {"caBundle": "LS0t"}}]}
    assert not install._ca_injected(hooks)
    hooks["webhooks"][0]["clientConfig"]["caBundle"] = "LS0t"
    assert install._ca_injected(hooks)
    crd = {"kind": "CustomResourceDefinition", "spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": "Cg=="}}}}}
    assert not install._ca_injected(crd)


def test_static_image_archive_is_a_docker_save_archive(tmp_path):
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF fake")
    image = StaticImage("mlops-acceptance.local/x/tool:v1", binary, "/app/tool", args=("--flag",))
    path = write_archive(image, tmp_path / "out" / "tool.tar")
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["mlops-acceptance.local/x/tool:v1"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))
        assert config["config"]["Entrypoint"] == ["/app/tool", "--flag"]
        assert config["config"]["User"] == str(install.NONROOT_UID)
        layer = tarfile.open(fileobj=tar.extractfile(manifest[0]["Layers"][0]))
        names = layer.getnames()
        assert "app/tool" in names and "etc/passwd" in names
        assert layer.getmember("app/tool").mode == 0o755
        assert b"nonroot:x:65532" in layer.extractfile("etc/passwd").read()
    again, written = archive(image, tmp_path / "cache")
    assert written and archive(image, tmp_path / "cache") == (again, False), "cached by its inputs"
    binary.write_bytes(b"\x7fELF changed")
    assert archive(image, tmp_path / "cache")[1], "a changed binary is a new archive"
    assert os.path.getsize(again) > 0


def test_optional_tools_are_not_in_the_default_build():
    default = toolchain._select(None)
    assert "kube-apiserver" in default
    assert not {"kserve-manager", "cert-manager-controller", "helm"} & set(default)
    assert toolchain._select(["cert-manager"]) == ["cert-manager-controller", "cert-manager-webhook",
                                                   "cert-manager-cainjector"]


def test_cert_manager_wrapper_keeps_its_dns_pin(tmp_path):
    """cert-manager v1.11.5 builds only with its go.mod's `github.com/miekg/dns v1.1.41 => v1.1.34`."""
    if not shutil.which("go"):
        pytest.skip("no `go`")
    gomod = tmp_path / "go.mod"
    gomod.write_text("module x\n\ngo 1.20\n\nreplace github.com/miekg/dns v1.1.41 => github.com/miekg/dns v1.1.34\n"
                     "replace k8s.io/api => ./staging/api\n")
    _requires, replaces, lines = toolchain._read_gomod(gomod, toolchain._go_env())
    assert lines["github.com/miekg/dns"] == "github.com/miekg/dns v1.1.41 => github.com/miekg/dns v1.1.34"
    assert replaces["k8s.io/api"] == "./staging/api"
