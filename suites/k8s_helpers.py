"""Checks several Kubernetes suites share: Service ports, Ingress routes, volume claims."""

from __future__ import annotations

from mlops_acceptance.fixtures.kube.client import quantity


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


def host_routes(k8s, namespace: str, host: str) -> list[tuple[str, str, object]]:
    """[(path, service, port)] of every rule path of the Ingresses in `namespace` that serve `host`."""
    return [(p, s, pt) for i in k8s.ingresses(namespace) for h, p, s, pt in i.routes if h == host]


def requests_through_controller(stack, host: str, namespace: str, probe, evidence) -> None:
    """One request per configured rule path of `host`, with the Host header, through the ingress
    controller when the target reaches one (stack.ingress_url, set by its provider); `probe(path)`
    -> (the path to request, accept(response)): each answer must come from the component, not from
    the controller (a 404 for a path it does not route, a 502/503 for a backend it cannot reach).
    Without a controller the routes are only declared."""
    import requests

    url = getattr(stack, "ingress_url", None)
    if not url:
        evidence.proof("declared", NO_CONTROLLER)
        return
    routes = host_routes(stack.k8s, namespace, host)
    assert routes, f"no Ingress path serves host {host}"
    failed = []
    for path, service, _port in dict.fromkeys(routes):
        sent, accept = probe(path or "/")
        response = requests.get(url.rstrip("/") + sent, headers={"Host": host}, timeout=15)
        evidence(f"rule path {path} (Service {service}): GET {sent} with Host: {host} through the ingress controller "
                 f"at {url} -> HTTP {response.status_code}", proof="live")
        if not accept(response):
            failed.append(f"path {path} (Service {service}): GET {sent} answered HTTP {response.status_code}: "
                          f"{response.text[:120]!r}")
    assert not failed, f"through the ingress controller, Host {host}: " + "; ".join(failed)


def check_ingress(k8s, namespace: str, enabled: bool, host: str, service_name: str, want_port: int, evidence):
    """An Ingress serves `host`, a route of it reaches Service `service_name` on `want_port`, and every
    rule path of the host names a Service that exists, has the port and ready endpoints."""
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
    broken = []
    for _h, path, name, port in routes:
        backend = svc if name == service_name else k8s.service(name, namespace)
        if not backend.exists:
            broken.append(f"path {path} -> Service {name}, which does not exist")
        elif resolve_service_port(backend, port) is None:
            broken.append(f"path {path} -> Service {name} port {port}, which it does not expose")
        elif not backend.has_ready_endpoints:
            broken.append(f"path {path} -> Service {name}, which has no ready endpoints")
    assert not broken, f"host {host}: " + "; ".join(broken)


def running_pods(pods, container: str, what: str) -> list:
    """The pods whose `container` runs now (phase Running, its status running); fails naming the others."""
    running = [p for p in pods if p.phase == "Running" and p.running(container)]
    assert running, f"no running pod of {what} (pods: {[p.summary() for p in pods] or 'none'})"
    return running


def check_process_env(stack, pod, container: str, expected: dict[str, str], evidence) -> None:
    """The environment the container's process runs with holds `expected` (compared by digest inside
    the container: no value leaves it). A pod started before its Secret changed fails here. Where no
    process can be asked (kwok simulates pods) or the image cannot run the comparison, the row rests
    on the pod's spec, and says so."""
    k8s = stack.k8s
    if k8s.simulated:
        evidence(f"{pod.name}/{container}: the process environment not read ({k8s.simulated})")
        return
    try:
        seen = k8s.env_matches(pod.name, pod.namespace, container, expected)
    except Exception as exc:  # noqa: BLE001 - no shell in the image, exec refused: the spec is all there is
        evidence(f"{pod.name}/{container}: the process environment could not be read: {exc}", proof="declared",
                 note=f"the credentials' source was read from pod {pod.name}'s spec only; the process environment "
                      "(exec: sh and coreutils in the image) proves what the server runs with")
        return
    evidence(f"{pod.name}/{container}: the process environment holds the expected value of "
             f"{', '.join(v for v, ok in seen.items() if ok) or 'nothing'} (its main process's environment, compared by digest in the container)")
    wrong = [var for var, ok in seen.items() if not ok]
    assert not wrong, (f"pod {pod.name} container {container} runs with "
                       + ", ".join(f"{v} unset" if seen[v] is None else f"{v} different from the configured value"
                                   for v in wrong)
                       + " (a process started before its Secret changed, or one that overrides it)")


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

    from mlops_acceptance.fixtures.kube.client import WaitTimeout

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
