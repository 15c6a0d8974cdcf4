"""Helpers of the autoscaling checks (test_k8s_34_autoscaling.py): the objects they compare, the run
under load and what it recorded."""

from __future__ import annotations

import time

import pytest

from mlops_acceptance.fixtures.kube.client import dig, quantity
from mlops_acceptance.suites.kserve_helpers import needs, runtime_for

def knative_autoscaler_config(stack, evidence) -> None:
    """Knative's cluster-wide autoscaler defaults as configured (where Knative runs)."""
    v, k8s = stack.values, stack.k8s
    if "knative" in k8s.limitations:
        evidence(f"Knative's config-autoscaler not checked: {k8s.limitations['knative']}")
    else:
        cm = k8s.configmap("config-autoscaler", "knative-serving")
        evidence(f"knative-serving/config-autoscaler: { {k: cm.data.get(k) for k in ('pod-autoscaler-class', 'min-scale', 'max-scale')} }")
        assert cm.exists, "ConfigMap knative-serving/config-autoscaler is missing"
        assert cm.data.get("pod-autoscaler-class") == f"{v.knative_autoscaling_class}.autoscaling.knative.dev"
        assert cm.data.get("min-scale") == str(v.knative_min_scale)
        assert cm.data.get("max-scale") == str(v.knative_max_scale)


DECLARED_AUTOSCALING = ("the autoscaling configuration was read from the objects' specs only: the "
                       "HorizontalPodAutoscaler's status (ScalingActive, its current metric), as the autoscaler "
                       "keeps it on a cluster running KServe in RawDeployment mode (node, kind or cluster target), "
                       "proves it live")


def kserve_hpa(stack, mode: str, evidence) -> bool:
    """The HorizontalPodAutoscaler the KServe controller made in RawDeployment mode. True when the
    autoscaler's own state was observed: the HPA controller acts on it (ScalingActive) and reads its
    metric (currentMetrics); False when only specs were read."""
    v, k8s = stack.values, stack.k8s
    if "kserve-controller" in k8s.limitations:
        evidence(f"the HorizontalPodAutoscaler KServe makes was not checked: {k8s.limitations['kserve-controller']}")
        return False
    if mode == "RawDeployment":
        hpa = k8s.obj("autoscaling/v2", "HorizontalPodAutoscaler", f"{v.inference_service_name}-predictor",
                      v.inference_service_namespace)
        metrics = hpa.get("spec.metrics", []) or []
        evidence(f"HPA {hpa.name}: min {hpa.get('spec.minReplicas')}, max {hpa.get('spec.maxReplicas')}, metrics {metrics}")
        assert hpa.exists, f"no HPA {hpa.name}"
        assert hpa.get("spec.minReplicas") == v.inference_min_replicas and hpa.get("spec.maxReplicas") == v.inference_max_replicas
        assert any(dig(m, "resource.name") == v.inference_scale_metric and
                   dig(m, "resource.target.averageUtilization") == v.inference_scale_target for m in metrics), (
            f"HPA metrics {metrics} do not target {v.inference_scale_metric} at {v.inference_scale_target}")
        hpa = _acting(k8s, hpa, v.inference_scale_metric, timeout=min(60, v.timeouts.model))
        active, current = hpa.condition("ScalingActive") or {}, hpa.get("status.currentMetrics", []) or []
        evidence(f"HPA {hpa.name} status: ScalingActive {active.get('status')} ({active.get('reason')}); current "
                 f"metrics {[(dig(m, 'resource.name'), dig(m, 'resource.current')) for m in current]}")
        return active.get("status") == "True" and any(dig(m, "resource.name") == v.inference_scale_metric
                                                      for m in current)
    return False


def _acting(k8s, hpa, metric: str, timeout: float):
    """The HPA once its controller acts on it (ScalingActive, a current value of `metric`: its first needs
    two metric scrapes), or as it is after `timeout`."""
    from mlops_acceptance.fixtures.kube.client import WaitTimeout
    from mlops_acceptance.fixtures.kube.objects import view

    def acting(o: dict) -> bool:
        active = any(c.get("type") == "ScalingActive" and c.get("status") == "True"
                     for c in dig(o, "status.conditions", []) or [])
        return active and any(dig(m, "resource.name") == metric for m in dig(o, "status.currentMetrics", []) or [])
    try:
        raw = k8s.wait_for("autoscaling/v2", "HorizontalPodAutoscaler", hpa.name, hpa.namespace, acting,
                           timeout=timeout, what=f"HPA {hpa.name} acting on {metric}")
    except WaitTimeout:
        return k8s.obj("autoscaling/v2", "HorizontalPodAutoscaler", hpa.name, hpa.namespace)
    return view(k8s, "autoscaling/v2", "HorizontalPodAutoscaler", hpa.name, hpa.namespace, raw)


def cpu_target_unreachable(stack, isvc) -> str | None:
    """Why the HPA can never scale this predictor on CPU (None: it can). One MLServer worker process
    runs the model: it uses at most one core, so a pod must be able to reach request x target with one
    core per worker (MLSERVER_PARALLEL_WORKERS on the runtime, MLServer's default 1)."""
    v = stack.values
    if v.inference_scale_metric != "cpu":
        return None
    request = quantity(dig(isvc.raw, "spec.predictor.model.resources.requests.cpu"))
    rt, _ = runtime_for(stack)
    containers = (rt.get("spec.containers", []) if rt else []) or []
    env = {e.get("name"): e.get("value") for c in containers for e in c.get("env", []) or []}
    if not request or not any("mlserver" in str(c.get("image", "")) or "MLSERVER_MODEL_IMPLEMENTATION" in env
                              for c in containers):
        return None
    workers = int(env.get("MLSERVER_PARALLEL_WORKERS") or 1)
    needed = request * v.inference_scale_target / 100
    if needed < workers:
        return None
    return (f"the HPA can never scale this predictor: at a CPU request of {request:g} and a target of "
            f"{v.inference_scale_target} % a pod must use {needed:g} cores before a replica is added, and "
            f"{workers} MLServer worker process(es) use at most {workers} core(s) (values: inference_cpu_request="
            f"{v.inference_cpu_request}, inference_scale_target={v.inference_scale_target}; lower the request or "
            "set MLSERVER_PARALLEL_WORKERS on the runtime)")


def no_gpu_for_a_replica(stack, evidence) -> str | None:
    """Why the replicas of a GPU predictor cannot rise (None: they can): a replica beyond the minimum
    needs inference_gpu_count more free GPUs on a GPU node, before the load starts."""
    from mlops_acceptance.suites.gpu_helpers import gpu_nodes, gpu_use

    v, k8s = stack.values, stack.k8s
    if not v.inference_gpu_count or "gpu-nodes" in k8s.limitations:
        return None
    res = v.kserve_gpu_resource_limit
    nodes = gpu_nodes(stack)
    use = gpu_use(k8s, res)
    free = {n.name: n.allocatable(res) - use.get(n.name, 0) for n in nodes}
    evidence(f"free {res} on the GPU nodes ({dict(v.kserve_gpu_node_selector)}) before the load: {free}")
    if any(f >= v.inference_gpu_count for f in free.values()):
        return None
    return (f"the replicas cannot rise: a second replica needs {v.inference_gpu_count} free {res} on a node "
            f"labelled {dict(v.kserve_gpu_node_selector)}, and the GPU nodes have {free or 'none'} free; "
            "3.4-autoscaling-load needs a second free GPU (add a GPU node, or free one)")


def _s(seconds) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s"


def kwok_autoscaling_evidence(evidence, stack, isvc, feeder, load_start: float, load_stop: float) -> None:
    """What was real and what was simulated, and what the measured CPU means for the real request."""
    v, k8s = stack.values, stack.k8s
    idle = [c for t, c, _, _ in feeder.samples if t < load_start]
    mean, peak = feeder.mean_cores(load_start, load_stop), feeder.peak_cores(load_start, load_stop)
    evidence(f"kwok: the predictor pods were SIMULATED by kwok (no container ran); the HPA controller "
             f"(kube-controller-manager {k8s.cluster.kube_version if k8s.cluster else ''}), metrics-server and the "
             "API server were REAL. The pods' CPU came from the REAL local MLServer process tree "
             f"({feeder.cpu.description}, pid {feeder.cpu.root.pid}) under the REAL Locust load: psutil cpu_times "
             f"every {feeder.interval:g} s; before the load {sum(idle) / len(idle) if idle else 0:.2f} cores (mean), under load mean "
             f"{mean or 0:.2f} / peak {peak or 0:.2f} cores; each ready simulated pod reported measured / ready "
             "pods (annotation kwok.x-k8s.io/usage-cpu -> kwok's emulated kubelet /metrics/resource -> "
             "metrics-server -> HPA)")
    request = quantity(dig(isvc.raw, "spec.predictor.model.resources.requests.cpu"))
    if request and mean:
        share = mean / request * 100
        evidence(f"NOTE: the simulated pods request {v.autoscaling_kwok_cpu_request} CPU "
                 f"(autoscaling_kwok_cpu_request). At the InferenceService's own request of {request:g} CPU the "
                 f"measured {mean:.2f} cores would be {share:.0f} % of one pod's request (target "
                 f"{v.inference_scale_target} %): with this model and load a real HPA would "
                 + ("scale on CPU" if share > v.inference_scale_target * 1.1 else "NOT scale on CPU"))


class ScalingExperiment:
    """One autoscaling run: the scaled Deployment and its limits, a WATCH on its ready replicas,
    Locust load on the endpoint, and on kwok the measured CPU fed to the simulated pods.

    kwok: the Deployment and HPA are the provider's (simulated_predictor: no KServe controller), the
    pods are kwok's, and each ready pod reports its share of the CPU the real local MLServer
    measurably used (fixtures.kube.usage_feeder.UsageFeeder): the HPA controller, metrics-server and the API
    server that act on it are real."""

    def __init__(self, stack, isvc, evidence):
        from mlops_acceptance.load import autoscaling as auto

        self.auto, self.stack, self.isvc = auto, stack, isvc
        v, k8s = self.v, self.k8s = stack.values, stack.k8s
        self.simulated = "kserve-controller" in k8s.limitations
        self.target = target = auto.find_target(k8s, isvc.raw)
        self._preconditions(evidence)
        assert target is not None, (f"no Deployment found that scales InferenceService {isvc.ref} "
                                    f"(mode {isvc.annotations.get('serving.kserve.io/deploymentMode', 'Serverless')})")
        self.kpa = target.autoscaler[1] == "PodAutoscaler"
        self.minimum = v.inference_min_replicas if self.kpa else max(1, v.inference_min_replicas)
        self.maximum = v.inference_max_replicas
        window, window_from = auto.scale_down_window_s(k8s, target)
        self.down_limit = min(v.autoscaling_scale_down_timeout_s, window + auto.SCALE_DOWN_GRACE_S)
        evidence(f"scaled: Deployment {target.namespace}/{target.deployment} by {target.autoscaler_ref} "
                 f"({target.mode}); minimum {self.minimum}, maximum {self.maximum}; scale-down window {window:g} s "
                 f"({window_from})")
        self.feeder = self._feeder() if self.simulated else None
        self.observer = None

    def _preconditions(self, evidence) -> None:
        v, k8s, target = self.v, self.k8s, self.target
        if self.simulated:
            dep = k8s.deployment(target.deployment, target.namespace) if target else None
            if dep is None or not dep.exists or dep.labels.get("mlops-acceptance/simulated") != "true":
                needs(k8s, "kserve-controller")  # no predictor the provider could make (e.g. Serverless mode)
            needs(k8s, "metrics-server")
        else:
            needs(k8s, "containers")
            finding = cpu_target_unreachable(self.stack, self.isvc)
            evidence(f"values: inference_cpu_request={v.inference_cpu_request}, inference_cpu_limit="
                     f"{v.inference_cpu_limit}, inference_scale_metric={v.inference_scale_metric}, "
                     f"inference_scale_target={v.inference_scale_target}, replicas {v.inference_min_replicas}.."
                     f"{v.inference_max_replicas}")
            if finding:
                pytest.fail(finding, pytrace=False)
            finding = no_gpu_for_a_replica(self.stack, evidence)
            if finding:
                pytest.fail(finding, pytrace=False)
        if self.stack.served_model is None and not self.stack.inference.model_ready:
            pytest.fail("the predictor serves no ready model to load")

    def _feeder(self):
        from urllib.parse import urlsplit

        from mlops_acceptance.fixtures.kube import usage_feeder

        inf = self.stack.inference
        port = urlsplit(inf.url).port
        pid = usage_feeder.listener_pid(port) if port else None
        if pid is None:
            pytest.fail(f"no process found listening on {inf.url}: the simulated pods would get no measured CPU")
        return usage_feeder.UsageFeeder(self.k8s, self.target, usage_feeder.ProcessTreeCpu(pid))

    def run(self, payload: dict, evidence) -> None:
        """Replicas at the minimum, the autoscaler has its metric, the load, then back to the minimum."""
        import tempfile

        from mlops_acceptance.load.harness import LoadError, run_load

        v, inf, minimum = self.v, self.stack.inference, self.minimum
        self.observer = observer = self.auto.ReplicaObserver(self.k8s, self.target).start()
        try:
            if self.feeder:
                self.feeder.start()
            if not observer.wait_for(lambda n: n <= minimum, timeout=self.down_limit):
                evidence(f"NOTE: {observer.current} replicas ready before the load, not the minimum {minimum}")
            if not self.kpa and not observer.wait_autoscaler(lambda desired, metric: bool(metric), timeout=60):
                raise AssertionError(f"{self.target.autoscaler_ref} got no {v.inference_scale_metric} metric within "
                                     f"60 s (the metrics pipeline: metrics-server, resource metrics API): "
                                     f"{observer.autoscaler[-1:] or 'no status'}")
            with tempfile.TemporaryDirectory(prefix="autoscaling-load-") as workdir:
                before = time.time()
                try:
                    self.result = run_load(inf.url, f"/v2/models/{inf.model_name}/infer", payload, users=v.load_users,
                                           spawn_rate=v.load_spawn_rate, duration_s=v.autoscaling_load_duration_s,
                                           shape=v.load_shape, processes=v.load_processes, workdir=workdir)
                except LoadError as exc:
                    pytest.fail(str(exc), pytrace=False)
                epoch = self.auto.locust_epoch(workdir)
            self.load_start = (epoch if epoch is not None else before) + self.result.load_window[0]
            self.load_stop = self.load_start + self.result.duration_s
            observer.wait_for(lambda n: n <= minimum, timeout=max(0.0, self.load_stop + self.down_limit - time.time()))
            self.observed_until = time.time()
        finally:
            if self.feeder:
                self.feeder.stop()
            observer.stop()

    def judge(self) -> tuple[bool, list[str]]:
        v, r = self.v, self.result
        self.up_limit = min(v.autoscaling_scale_up_timeout_s, r.duration_s)
        return self.auto.judge(self.observer.samples, minimum=self.minimum, maximum=self.maximum,
                               load_start=self.load_start, load_stop=self.load_stop,
                               scale_up_timeout_s=self.up_limit, scale_down_timeout_s=self.down_limit,
                               requests=r.requests, failures=r.failures, max_error_rate=v.load_max_error_rate,
                               observed_until=self.observed_until)

    def record(self, evidence, request) -> None:
        obs, start, feeder = self.observer, self.load_start, self.feeder
        f = self.auto.summarize(obs.samples, minimum=self.minimum, load_start=start, load_stop=self.load_stop)
        evidence(f"load: {self.result.summary()}")
        evidence("ready replicas (s since the load started): " + ", ".join(
            f"{t - start:+.0f}s={n}" for t, n in obs.samples))
        evidence(f"scale-up {_s(f.scale_up_s)} after the load started (limit {self.up_limit:.0f} s); peak {f.peak} "
                 f"(maximum {self.maximum}); back to {self.minimum} {_s(f.scale_down_s)} after it stopped (limit "
                 f"{self.down_limit:.0f} s)")
        if obs.autoscaler:
            evidence(f"{self.target.autoscaler_ref} (desired replicas, metric): " + ", ".join(
                f"{t - start:+.0f}s={d} {m}".rstrip() for t, d, m in obs.autoscaler[-12:]))
        if feeder:
            kwok_autoscaling_evidence(evidence, self.stack, self.isvc, feeder, start, self.load_stop)
        for problem in obs.errors[:3] + (feeder.errors[:3] if feeder else []):
            evidence(f"NOTE: {problem}")
        if request is None:
            return
        cpu = [(t, c) for t, c, _, _ in feeder.samples] if feeder else None
        first = obs.samples[0][0] if obs.samples else start
        request.node.user_properties.append(("figure", self.auto.chart(
            self.result, obs.samples, start, self.load_stop, cpu=cpu, observed=(first, self.observed_until))))
