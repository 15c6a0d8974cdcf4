"""CLOUD-3.3 MLflow: the Kubernetes criteria through the Kubernetes API."""

from __future__ import annotations

import pytest

from mlops_acceptance.suites.k8s_helpers import check_ingress, check_process_env, check_service, requests_through_controller, running_pods

criterion = pytest.mark.criterion

SECRET = "mlflow-secret"


def _value_of(k8s, ns: str, source: tuple) -> str | None:
    """The value an env source resolves to, for non-secret sources (literal or ConfigMap)."""
    if source[0] == "literal":
        return source[1]
    if source[0] == "configmap":
        return k8s.configmap(source[1], ns).data.get(source[2])
    return None


def _arg_after(args: list[str], option: str) -> str | None:
    for i, a in enumerate(args):
        if a == option and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return None


@criterion("3.3-pods", scope="k8s")
def test_mlflow_replicas_ready_and_probes_hit_health(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.mlflow_namespace
    dep = k8s.deployment("mlflow", ns)
    pods = dep.pods()
    evidence(dep.summary() + "; " + ("; ".join(p.summary() for p in pods) or "no pods"))
    assert dep.exists, f"Deployment {ns}/mlflow is missing"
    assert dep.replicas == v.mlflow_replicas, f"Deployment asks for {dep.replicas}, mlflow_replicas={v.mlflow_replicas}"
    assert dep.ready_replicas == v.mlflow_replicas, f"{dep.ready_replicas} ready replicas, want {v.mlflow_replicas}"
    assert sum(1 for p in pods if p.phase == "Running" and p.ready) == v.mlflow_replicas, "pods not Running+Ready"
    container = dep.template.container("mlflow") or dep.template.container()
    live, ready = container.probe_target(container.liveness), container.probe_target(container.readiness)
    evidence(f"liveness {live}, readiness {ready} (container ports {container.ports})")
    for label, probe in (("liveness", live), ("readiness", ready)):
        assert probe is not None, f"no {label} probe"
        assert probe[0] == "httpGet" and probe[1] == "/health", f"{label} probe is {probe}, not GET /health"
        assert probe[2] == v.mlflow_port, f"{label} probe port {probe[2]}, mlflow_port={v.mlflow_port}"


@criterion("3.3-config", scope="k8s")
def test_mlflow_config_and_credentials_from_secret(stack, evidence):
    """Read from the running pods (their own spec, envFrom included) and their process: a pod made before
    the template changed, or before the Secret did, runs with what it was made with."""
    v, k8s = stack.values, stack.k8s
    ns = v.mlflow_namespace
    secret = k8s.secret(SECRET, ns)
    assert secret.exists, f"Secret {ns}/{SECRET} is missing"
    evidence(f"Secret {SECRET} keys: {secret.keys}")
    for pod in running_pods(k8s.deployment("mlflow", ns).pods(), "mlflow", f"Deployment {ns}/mlflow"):
        container = pod.template.container("mlflow") or pod.template.container()
        _check_pod_config(stack, pod, container, secret, evidence)
    leaking = {cm.name: cm.contains_any(v.secrets()) for cm in k8s.configmaps(ns)}
    leaking = {n: keys for n, keys in leaking.items() if keys}
    evidence(f"ConfigMaps in {ns} holding a credential: {leaking or 'none'}")
    assert not leaking, f"credentials in ConfigMaps: {leaking}"


def _check_pod_config(stack, pod, container, secret, evidence) -> None:
    v, k8s, ns = stack.values, stack.k8s, pod.namespace
    sources = container.env_sources(k8s.keys_of(ns))
    args = container.command + container.args
    evidence(f"pod {pod.name} mlflow env sources: " + ", ".join(
        f"{k}<-{s[0]}" + (f":{s[1]}/{s[2]}" if s[0] in ('secret', 'configmap') else "") for k, s in sources.items()))
    expected = {}
    for var, value in (("MLFLOW_BACKEND_STORE_URI", v.mlflow_backend_store_uri),
                       ("AWS_ACCESS_KEY_ID", v.mlflow_aws_access_key_id),
                       ("AWS_SECRET_ACCESS_KEY", v.mlflow_aws_secret_access_key)):
        src = sources.get(var)
        assert src is not None, f"{var} is not set on pod {pod.name}'s mlflow container"
        assert src[0] == "secret" and src[1] == SECRET, f"{var} comes from {src[0]} {src[1:]} , not Secret {SECRET}"
        assert secret.matches(src[2], value), f"Secret {SECRET}/{src[2]} does not hold the configured {var}"
        expected[var] = value
    uri_arg = _arg_after(args, "--backend-store-uri")
    if uri_arg is not None:
        ref = uri_arg[2:-1] if uri_arg.startswith("$(") and uri_arg.endswith(")") else None
        assert ref and sources.get(ref, ("missing",))[0] == "secret", (
            "--backend-store-uri is given literally on the command line, not from the Secret")
    root = _arg_after(args, "--default-artifact-root") or _arg_after(args, "--artifacts-destination")
    root_var = root[2:-1] if root and root.startswith("$(") and root.endswith(")") else None
    if root_var:
        root = _value_of(k8s, ns, sources.get(root_var, ("missing",)))
    elif not root:
        root_var = "MLFLOW_DEFAULT_ARTIFACT_ROOT"
        root = _value_of(k8s, ns, sources.get(root_var, ("missing",)))
    endpoint = _value_of(k8s, ns, sources.get("MLFLOW_S3_ENDPOINT_URL", ("missing",)))
    evidence(f"artifact root {root!r} (configured {v.mlflow_artifact_root!r}); S3 endpoint {endpoint!r} "
             f"(configured {v.mlflow_s3_endpoint_url!r})")
    assert root == v.mlflow_artifact_root, f"artifact root {root!r}, mlflow_artifact_root={v.mlflow_artifact_root!r}"
    assert endpoint == v.mlflow_s3_endpoint_url, f"S3 endpoint {endpoint!r}, configured {v.mlflow_s3_endpoint_url!r}"
    literal = [k for k, s in sources.items() if s[0] == "literal" and any(x and x in s[1] for x in v.secrets())]
    assert not literal, f"credentials as literal env values: {literal}"
    if root_var:
        expected[root_var] = v.mlflow_artifact_root
    expected["MLFLOW_S3_ENDPOINT_URL"] = v.mlflow_s3_endpoint_url
    check_process_env(stack, pod, container.name, expected, evidence)


@criterion("3.3-service", scope="k8s")
def test_mlflow_service_with_ready_endpoints(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.mlflow_namespace
    svc = k8s.service("mlflow", ns)
    pods = k8s.deployment("mlflow", ns).pods()
    check_service(svc, v.mlflow_port, pods, "mlflow", evidence)
    assert len(svc.ready_addresses) == v.mlflow_replicas, (
        f"{len(svc.ready_addresses)} ready endpoints, mlflow_replicas={v.mlflow_replicas}")


def mlflow_probe(stack):
    """What to ask MLflow under a rule path, and how to know MLflow answered (not the ingress controller):
    under `/` (or `/health`) its health endpoint says OK; under another path, the same answer as MLflow's
    own Service gives for that path (a 404 of the controller for a path it does not route, or a 502/503
    for a backend it cannot reach, differs)."""
    import requests

    def probe(path: str):
        if path.rstrip("/") in ("", "/health"):
            return "/health", lambda r: r.status_code == 200 and r.text.strip() == "OK"
        mlflow = getattr(stack, "mlflow", None)
        direct = requests.get(mlflow.uri + path, timeout=15) if mlflow else None
        return path, lambda r: r.status_code < 500 and (direct is None or (r.status_code, r.text) ==
                                                        (direct.status_code, direct.text))
    return probe


@criterion("3.3-ingress", scope="k8s")
def test_mlflow_ingress_routes_to_the_service(stack, evidence):
    v = stack.values
    check_ingress(stack.k8s, v.mlflow_namespace, v.mlflow_ingress_enabled, v.mlflow_ingress_host, "mlflow",
                  v.mlflow_port, evidence)
    if v.mlflow_ingress_enabled:  # every rule path, each answered by MLflow itself
        requests_through_controller(stack, v.mlflow_ingress_host, v.mlflow_namespace, mlflow_probe(stack), evidence)
