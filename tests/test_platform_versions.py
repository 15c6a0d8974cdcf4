"""3-docs' platform versions read from the components' Deployments, as their own release manifests make
them (labels and images copied from KServe v0.11.2's install/v0.11.2/kserve.yaml, Knative Serving 1.11.0's
serving-core.yaml, cert-manager v1.13.0's cert-manager.yaml, and the node target's KServe image)."""

from __future__ import annotations

from mlops_acceptance.fixtures.kube.platform import deployment_version, image_tag

KSERVE = {"metadata": {"name": "kserve-controller-manager", "namespace": "kserve",
                       "labels": {"control-plane": "kserve-controller-manager", "controller-tools.k8s.io": "1.0"}},
          "spec": {"template": {"spec": {"containers": [
              {"name": "manager", "image": "kserve/kserve-controller:v0.11.2"},
              {"name": "kube-rbac-proxy", "image": "gcr.io/kubebuilder/kube-rbac-proxy:v0.13.1"}]}}}}
KNATIVE = {"metadata": {"name": "controller", "namespace": "knative-serving",
                        "labels": {"app.kubernetes.io/component": "controller",
                                   "app.kubernetes.io/name": "knative-serving", "app.kubernetes.io/version": "1.11.0"}},
           "spec": {"template": {"spec": {"containers": [
               {"name": "controller", "image": "gcr.io/knative-releases/knative.dev/serving/cmd/controller@sha256:"
                                               "1f5e0d3c8ac0e9e1e3e1b1f2b4d7c9c4b0f6ac4c6a9e4dfc1d2e0e1f0a1b2c3d"}]}}}}
CERT_MANAGER = {"metadata": {"name": "cert-manager", "namespace": "cert-manager",
                             "labels": {"app": "cert-manager", "app.kubernetes.io/component": "controller",
                                        "app.kubernetes.io/version": "v1.13.0"}},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "cert-manager-controller", "image": "quay.io/jetstack/cert-manager-controller:v1.13.0"}]}}}}


def test_a_components_version_is_its_label_else_its_own_images_tag():
    assert deployment_version(KSERVE, "kserve-controller") == "v0.11.2"  # not the rbac proxy's v0.13.1
    assert deployment_version(KNATIVE, "knative") == "1.11.0"  # image by digest: the label says it
    assert deployment_version(CERT_MANAGER, "cert-manager-controller") == "v1.13.0"
    # The node target's KServe, built here and named in its local registry (a host:port prefix).
    node = {**KSERVE, "spec": {"template": {"spec": {"containers": [
        {"name": "manager", "image": "mlops-acceptance.local:5000/kserve-controller:v0.11.2"}]}}}}
    assert deployment_version(node, "kserve-controller") == "v0.11.2"


def test_a_deployment_that_names_no_version_reads_none():
    untagged = {"metadata": {"labels": {}}, "spec": {"template": {"spec": {"containers": [
        {"name": "manager", "image": "registry:5000/kserve-controller@sha256:abc"}]}}}}
    assert deployment_version(untagged, "kserve-controller") is None
    assert deployment_version({}, "kserve-controller") is None
    only_sidecar = {"spec": {"template": {"spec": {"containers": [
        {"name": "kube-rbac-proxy", "image": "gcr.io/kubebuilder/kube-rbac-proxy:v0.13.1"}]}}}}
    assert deployment_version(only_sidecar, "kserve-controller") is None
    assert image_tag("registry:5000/a/b:v1@sha256:x") == "v1" and image_tag("registry:5000/b") == ""
