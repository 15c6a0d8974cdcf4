"""Checks several Kubernetes suites share: Service ports, Ingress routes, volume claims."""

from __future__ import annotations

from fixtures.kube.client import quantity


def resolve_service_port(service, port) -> int | None:
    """An Ingress backend port (number or the Service port's name) as the Service port number."""
    if isinstance(port, int):
        return port if service.port(port) else None
    found = service.port(port)
    return found.get("port") if found else None


def target_container_port(service, number: int, pods) -> int | None:
    """Which container port a Service port reaches (targetPort by number or by name)."""
    port = service.port(number)
    if not port:
        return None
    target = port.get("targetPort", number)
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for pod in pods:
        for c in pod.containers:
            n = c.port_number(target)
            if n:
                return n
    return None


NO_CONTROLLER = ("the route was read from the Ingress object only: no ingress controller is reachable on this "
                 "target (a cluster with an ingress controller proves it live)")


def request_through_controller(stack, host: str, path: str, accept, evidence) -> None:
    """Send a request with the Host header through the ingress controller when the target reaches one
    (stack.ingress_url, set by its provider), and judge the answer with `accept(response)`; without
    one the route is only declared."""
    import requests

    url = getattr(stack, "ingress_url", None)
    if not url:
        evidence.proof("declared", NO_CONTROLLER)
        return
    response = requests.get(url.rstrip("/") + path, headers={"Host": host}, timeout=15)
    evidence(f"GET {path} with Host: {host} through the ingress controller at {url} -> HTTP {response.status_code}",
             proof="live")
    assert accept(response), (f"through the ingress controller, Host {host} {path} answered HTTP "
                              f"{response.status_code}: {response.text[:200]}")


def check_ingress(k8s, namespace: str, enabled: bool, host: str, service_name: str, want_port: int, evidence):
    ingresses = k8s.ingresses(namespace)
    svc = k8s.service(service_name, namespace)
    matching = [i for i in ingresses if host in i.hosts]
    evidence(f"Ingresses in {namespace}: " + (", ".join(f"{i.name} {i.routes}" for i in ingresses) or "none"))
    if not enabled:
        assert not matching, f"ingress disabled, but {[i.name for i in matching]} serve {host}"
        return
    assert matching, f"no Ingress in {namespace} serves host {host}"
    routes = [(h, p, s, pt) for i in matching for h, p, s, pt in i.routes if h == host]
    resolved = [(s, resolve_service_port(svc, pt)) for _h, _p, s, pt in routes if s == service_name]
    evidence(f"host {host} routes to {routes}; Service {service_name} ports {svc.port_numbers}; "
             f"class {matching[0].ingress_class or '(cluster default)'}")
    assert svc.exists, f"Service {namespace}/{service_name} is missing"
    assert any(port == want_port for _s, port in resolved), (
        f"no route of {host} reaches Service {service_name} port {want_port} (routes: {routes})")


def check_claim(pvc, size: str, storage_class: str, component: str, evidence, configured: str | None = None) -> None:
    """A claim is Bound, requests `size` (and got at least that) of `storage_class`. `configured`: the class
    the values named when the cluster lacked it and the run used its default `storage_class` instead."""
    evidence(pvc.summary())
    if configured:
        evidence(f"{component}_storage_class {configured} does not exist in the cluster: judged against the "
                 f"default StorageClass {storage_class}, which the run used instead")
    assert pvc.phase == "Bound", f"PVC {pvc.name} is {pvc.phase}, not Bound"
    assert quantity(pvc.requested) == quantity(size), (
        f"PVC {pvc.name} requests {pvc.requested}, {component}_storage_size={size}")
    assert quantity(pvc.capacity) >= quantity(size), f"PVC {pvc.name}: bound capacity {pvc.capacity} is too small"
    assert pvc.storage_class == storage_class, (
        f"PVC {pvc.name} class {pvc.storage_class}, {component}_storage_class={storage_class}")


def check_service(svc, port: int, pods, component: str, evidence) -> None:
    """A Service exists, exposes `port`, reaches the server's `port`, and its ready endpoints are
    exactly ready pods of the component (a selector matching nothing or the wrong pods fails)."""
    evidence(f"Service {svc.namespace}/{svc.name} ports "
             f"{[(p.get('name'), p.get('port'), p.get('targetPort')) for p in svc.ports]}; ready endpoints "
             f"{svc.ready_addresses}; {component} pods {[(p.name, p.ip, p.ready) for p in pods]}")
    assert svc.exists, f"Service {svc.namespace}/{svc.name} is missing"
    assert port in svc.port_numbers, f"Service ports {svc.port_numbers} lack {component}'s port {port}"
    assert target_container_port(svc, port, pods) == port, f"Service port {port} does not reach {component}'s port {port}"
    assert svc.has_ready_endpoints, (
        f"Service {svc.name} has no ready endpoints (its selector matches no ready pod)")
    pod_ips = {p.ip for p in pods if p.ready}
    assert set(svc.ready_addresses) <= pod_ips, (
        f"endpoints {svc.ready_addresses} are not the ready {component} pods {sorted(pod_ips)}")


def run_cronjob_once(k8s, cronjob, timeout: float) -> dict:
    """Create a Job from a CronJob's template (as `kubectl create job --from=cronjob/NAME`), wait until it
    completed or failed, delete it; return its last state."""
    import secrets

    from fixtures.kube.client import WaitTimeout

    name = f"{cronjob.name[:40]}-acceptance-{secrets.token_hex(3)}"
    spec = dict(cronjob.get("spec.jobTemplate.spec"))
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": cronjob.namespace,
                         "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}},
            "spec": spec}
    k8s.create(body)
    try:
        def finished(o: dict) -> bool:
            return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in (o.get("status") or {}).get("conditions") or [])
        try:
            return k8s.wait_for("batch/v1", "Job", name, cronjob.namespace, finished, timeout=timeout,
                                what="the backup Job finished")
        except WaitTimeout as exc:
            raise AssertionError(f"the backup Job {cronjob.namespace}/{name} did not finish: {exc}") from None
    finally:
        k8s.delete("batch/v1", "Job", name, cronjob.namespace, propagation="Foreground")
