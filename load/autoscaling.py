"""3.4-autoscaling-load: replicas that follow the load, observed through the Kubernetes API.

    target = find_target(k8s, isvc)                # the Deployment the autoscaler scales (HPA or Knative KPA)
    with ReplicaObserver(k8s, target) as seen:     # a WATCH on it: (t, ready replicas) on every change
        ...run the load...
        seen.wait_for(lambda n: n <= minimum, timeout)
    ok, reasons = judge(seen.samples, minimum=..., maximum=..., load_start=..., load_stop=..., ...)

On kwok no container runs: fixtures.kube.usage_feeder makes the simulated predictor pods report the
CPU the real local MLServer measurably used, so the real HPA controller acts on it.

`judge` is the pure decision (no cluster, no clock): the project's tests exercise it alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

# What the HPA/KPA may take beyond its stabilization window to bring the replicas down: the
# metrics pipeline's delay (metrics-server's resolution, the HPA sync period) and the scale-down
# itself. A real cluster's default (KServe's HPA: 300 s window) + this = autoscaling_scale_down_timeout_s.
SCALE_DOWN_GRACE_S = 60.0
HPA_DEFAULT_WINDOW_S = 300.0   # autoscaling/v2 behavior.scaleDown.stabilizationWindowSeconds default
KPA_DEFAULT_WINDOW_S = 60.0    # Knative config-autoscaler stable-window default
KPA_SCALE_TO_ZERO_GRACE_S = 30.0

KNATIVE_CONFIGURATION_LABEL = "serving.knative.dev/configuration"


# --- the decision -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    """What the replica timeline shows, relative to the load (seconds; None: did not happen)."""

    at_load_start: int | None
    scale_up_s: float | None     # load start -> first count above the minimum
    peak: int | None             # the most replicas seen from the load start on
    scale_down_s: float | None   # load stop -> first count at or below the minimum
    final: int | None            # the last count seen


def value_at(samples: list[tuple[float, int]], t: float) -> int | None:
    """The count in effect at `t` (the last sample at or before it)."""
    current = None
    for ts, n in samples:
        if ts > t:
            break
        current = n
    return current


def summarize(samples: Iterable[tuple[float, int]], *, minimum: int, load_start: float,
              load_stop: float) -> Figures:
    ordered = sorted(samples)
    if not ordered:
        return Figures(None, None, None, None, None)
    start_value = value_at(ordered, load_start)
    during = [(t, n) for t, n in ordered if t >= load_start]
    up = next((t for t, n in during if n > minimum), None)
    if start_value is not None and start_value > minimum:
        up = load_start
    after = [(load_stop, value_at(ordered, load_stop))] + [(t, n) for t, n in ordered if t > load_stop]
    down = next((t for t, n in after if n is not None and n <= minimum), None)
    counts = [n for _, n in during] + ([start_value] if start_value is not None else [])
    return Figures(at_load_start=start_value,
                   scale_up_s=None if up is None else round(up - load_start, 1),
                   peak=max(counts) if counts else None,
                   scale_down_s=None if down is None else round(down - load_stop, 1),
                   final=ordered[-1][1])


def judge(samples: Iterable[tuple[float, int]], *, minimum: int, maximum: int, load_start: float,
          load_stop: float, scale_up_timeout_s: float, scale_down_timeout_s: float,
          requests: int, failures: int, max_error_rate: float,
          observed_until: float | None = None) -> tuple[bool, list[str]]:
    """Did the replicas follow the load? (passed, why not).

    `samples`: (t, ready replicas) on every change, on the same clock as load_start/load_stop.
    Passes when the count was at the minimum when the load started, rose above it within
    `scale_up_timeout_s` of the load start (and before the load stopped), never exceeded `maximum`,
    the requests kept succeeding (error rate <= max_error_rate), and the count was back at the
    minimum within `scale_down_timeout_s` of the load stop.
    """
    ordered = sorted(samples)
    if not ordered:
        return False, ["no replica count was observed"]
    f = summarize(ordered, minimum=minimum, load_start=load_start, load_stop=load_stop)
    end = observed_until if observed_until is not None else ordered[-1][0]
    reasons = []
    if f.at_load_start is None:
        reasons.append("the replica count was not known when the load started")
    elif f.at_load_start > minimum:
        reasons.append(f"{f.at_load_start} replicas were ready when the load started, above the minimum {minimum}: "
                       "a rise cannot be told from what was there before")
    up_limit = min(scale_up_timeout_s, load_stop - load_start)
    if f.at_load_start is not None and f.at_load_start <= minimum:
        if f.scale_up_s is None:
            reasons.append(f"replicas never rose above the minimum {minimum} under the load "
                           f"(peak {f.peak}; {load_stop - load_start:.0f} s of load)")
        elif f.scale_up_s > up_limit:
            reasons.append(f"replicas rose above the minimum {minimum} only {f.scale_up_s:.0f} s after the load "
                           f"started (limit {up_limit:.0f} s: autoscaling_scale_up_timeout_s, within the load)")
    over = [(t, n) for t, n in ordered if n > maximum]
    if over:
        t, n = max(over, key=lambda s: s[1])
        reasons.append(f"{n} replicas at t={t - load_start:+.0f} s: above the maximum {maximum}")
    if requests <= 0:
        reasons.append("no request completed under the load")
    elif failures / requests > max_error_rate:
        reasons.append(f"error rate {failures / requests:.2%} > limit {max_error_rate:.2%} "
                       f"({failures} of {requests} requests failed)")
    if f.scale_down_s is None:
        reasons.append(f"replicas did not come back to the minimum {minimum} after the load "
                       f"({f.final} at the end of the observation, {end - load_stop:.0f} s after the load stopped; "
                       f"limit {scale_down_timeout_s:.0f} s)")
    elif f.scale_down_s > scale_down_timeout_s:
        reasons.append(f"replicas came back to the minimum {minimum} only {f.scale_down_s:.0f} s after the load "
                       f"stopped (limit {scale_down_timeout_s:.0f} s)")
    return not reasons, reasons


# --- what is scaled, and by what ------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """The Deployment whose replicas follow the load, and the autoscaler object that scales it."""

    namespace: str
    deployment: str
    autoscaler: tuple[str, str, str]   # (apiVersion, kind, name)
    mode: str                          # "RawDeployment (HPA)" | "Serverless (Knative KPA)" | ...

    @property
    def autoscaler_ref(self) -> str:
        return f"{self.autoscaler[1]} {self.namespace}/{self.autoscaler[2]}"


def pick_target(isvc: dict, deployments: list[dict], revisions: list[dict] = ()) -> Target | None:
    """Which Deployment scales for this InferenceService (pure: from listed objects).

    RawDeployment: KServe's `<isvc>-predictor` Deployment (`-predictor-default` before 0.9), scaled by
    the HPA of the same name. Serverless: the newest Revision of `<isvc>-predictor`; its Deployment
    is `<revision>-deployment`, scaled through the Knative PodAutoscaler named after the revision
    (class kpa: the KPA; class hpa: Knative's HPA of that name)."""
    md = isvc.get("metadata", {})
    name, ns = md["name"], md.get("namespace") or "default"
    ann = md.get("annotations") or {}
    names = {d["metadata"]["name"] for d in deployments}
    if ann.get("serving.kserve.io/deploymentMode", "Serverless") == "RawDeployment":
        dep = next((n for n in (f"{name}-predictor", f"{name}-predictor-default") if n in names), None)
        if dep is None:
            return None
        return Target(ns, dep, ("autoscaling/v2", "HorizontalPodAutoscaler", dep), "RawDeployment (HPA)")
    status_rev = (((isvc.get("status") or {}).get("components") or {}).get("predictor") or {})
    revision = status_rev.get("latestCreatedRevision") or status_rev.get("latestReadyRevision")
    if not revision:
        ours = [r for r in revisions if (r["metadata"].get("labels") or {}).get(KNATIVE_CONFIGURATION_LABEL)
                in (f"{name}-predictor", f"{name}-predictor-default")]
        if ours:
            revision = max(ours, key=lambda r: int((r["metadata"].get("labels") or {})
                                                   .get("serving.knative.dev/configurationGeneration", 0)))
            revision = revision["metadata"]["name"]
    if not revision or f"{revision}-deployment" not in names:
        return None
    cls = ann.get("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev").split(".")[0]
    return Target(ns, f"{revision}-deployment", ("autoscaling.internal.knative.dev/v1alpha1", "PodAutoscaler", revision),
                  f"Serverless (Knative {cls.upper()})")


def find_target(k8s, isvc: dict) -> Target | None:
    md = isvc["metadata"]
    ns = md.get("namespace") or "default"
    deployments = k8s.list("apps/v1", "Deployment", ns)
    revisions = k8s.list("serving.knative.dev/v1", "Revision", ns) if k8s.has_kind("serving.knative.dev/v1",
                                                                                  "Revision") else []
    return pick_target(isvc, deployments, revisions)


def scale_down_window_s(k8s, target: Target) -> tuple[float, str]:
    """The autoscaler's scale-down stabilization, as configured on the cluster: (seconds, where from)."""
    from mlops_acceptance.fixtures.kube.client import dig

    api, kind, name = target.autoscaler
    obj = k8s.read(api, kind, name, target.namespace) or {}
    if kind == "HorizontalPodAutoscaler":
        window = dig(obj, "spec.behavior.scaleDown.stabilizationWindowSeconds")
        if window is None:
            # A cluster the suite made may run its controller-manager with a shorter default
            # (--horizontal-pod-autoscaler-downscale-stabilization); it says so on its Kube.
            cluster_default = getattr(k8s, "hpa_downscale_default_s", None)
            if cluster_default is not None:
                return float(cluster_default), (f"the HPA sets no behavior.scaleDown: the cluster's default "
                                                f"(--horizontal-pod-autoscaler-downscale-stabilization={cluster_default:g}s)")
            return HPA_DEFAULT_WINDOW_S, "the HPA sets no behavior.scaleDown: the 300 s default"
        return float(window), f"HPA behavior.scaleDown.stabilizationWindowSeconds={window}"
    ann = dig(obj, "metadata.annotations", {}) or {}
    text = ann.get("autoscaling.knative.dev/window")
    source = "autoscaling.knative.dev/window"
    if not text:
        cm = k8s.read("v1", "ConfigMap", "config-autoscaler", "knative-serving") or {}
        text, source = (cm.get("data") or {}).get("stable-window"), "config-autoscaler stable-window"
    seconds = _duration_s(text) if text else None
    if seconds is None:
        seconds, source = KPA_DEFAULT_WINDOW_S, "Knative's 60 s default stable window"
    return seconds + KPA_SCALE_TO_ZERO_GRACE_S, f"{source} ({seconds:g} s) + scale-to-zero grace"


def _duration_s(text: str) -> float | None:
    import re

    total, found = 0.0, False
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text or ""):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        found = True
    return total if found else None


# --- the observer: a watch on the scaled Deployment (and its autoscaler) ----------------------

class ReplicaObserver:
    """Records (time.time(), ready replicas) on every change of the Deployment, from a WATCH, and
    (time.time(), desired replicas, current metric) of its autoscaler. `wait_for` blocks on the
    recorded changes (a Condition), never on a timer."""

    def __init__(self, k8s, target: Target, *, clock: Callable[[], float] = time.time):
        self.k8s, self.target, self.clock = k8s, target, clock
        self.samples: list[tuple[float, int]] = []
        self.autoscaler: list[tuple[float, int | None, str]] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # lifecycle
    def start(self) -> "ReplicaObserver":
        api, kind, name = self.target.autoscaler
        for args in (("apps/v1", "Deployment", self.target.deployment, self._on_deployment),
                     (api, kind, name, self._on_autoscaler)):
            if not self.k8s.has_kind(args[0], args[1]):
                continue
            t = threading.Thread(target=self._watch, args=args, daemon=True, name=f"watch-{args[1]}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=6)

    def __enter__(self) -> "ReplicaObserver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # what it saw
    @property
    def current(self) -> int | None:
        with self._changed:
            return self.samples[-1][1] if self.samples else None

    def wait_for(self, predicate: Callable[[int], bool], timeout: float) -> bool:
        """Block until the ready count satisfies `predicate` (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.samples and predicate(self.samples[-1][1])):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_autoscaler(self, predicate: Callable[[int | None, str], bool], timeout: float) -> bool:
        """Block until the autoscaler's (desired replicas, metric) satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.autoscaler and predicate(*self.autoscaler[-1][1:])):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    # the watches
    def _on_deployment(self, obj: dict) -> None:
        ready = int((obj.get("status") or {}).get("readyReplicas") or 0)
        with self._changed:
            if not self.samples or self.samples[-1][1] != ready:
                self.samples.append((self.clock(), ready))
                self._changed.notify_all()

    def _on_autoscaler(self, obj: dict) -> None:
        st = obj.get("status") or {}
        desired = st.get("desiredReplicas", st.get("desiredScale"))
        metric = ""
        for m in st.get("currentMetrics") or []:
            cur = (m.get("resource") or {}).get("current") or {}
            if "averageUtilization" in cur:
                metric = f"{(m.get('resource') or {}).get('name')} {cur['averageUtilization']}%"
        limited = next((c for c in st.get("conditions") or [] if c.get("type") == "ScalingLimited"
                        and c.get("status") == "True"), None)
        if limited:
            metric += f" (ScalingLimited: {limited.get('reason')})"
        with self._changed:
            entry = (self.clock(), desired, metric)
            if not self.autoscaler or self.autoscaler[-1][1:] != entry[1:]:
                self.autoscaler.append(entry)
                self._changed.notify_all()

    def _watch(self, api_version: str, kind: str, name: str, on_object: Callable[[dict], None]) -> None:
        from mlops_acceptance.fixtures.kube import wait

        # The state now (SYNC, after every list), then every change; API errors are recorded, not raised.
        for event, payload in wait.changes(self.k8s, api_version, kind, self.target.namespace, name=name,
                                           stop=self._stop, errors=self.errors):
            for obj in payload if event == wait.SYNC else [payload] if event != "DELETED" else []:
                on_object(obj)


# --- the chart --------------------------------------------------------------------------------

def chart(result, replicas: list[tuple[float, int]], load_start: float, load_stop: float,
          cpu: list[tuple[float, float]] | None = None, observed: tuple[float, float] | None = None) -> str:
    """Two panels on one time axis (s since the load start): requests/s + p95, and requests/s +
    ready replicas (+ the measured server CPU in cores), load start/stop marked.

    `result`: load.harness.LoadResult; its timeline is shifted so that its load start is 0."""
    from mlops_acceptance.reports.charts import line_chart

    shift = result.load_window[0]
    rps = [(s.t_s - shift, s.rps) for s in result.timeline]
    p95 = [(s.t_s - shift, s.p95_ms) for s in result.timeline]
    rel = [(t - load_start, float(n)) for t, n in replicas]
    lo = min([x for x, _ in rps + rel] + [0.0, (observed[0] - load_start) if observed else 0.0])
    hi = max([x for x, _ in rps + rel] + [load_stop - load_start, (observed[1] - load_start) if observed else 0.0])
    if rel:  # a step line: each count holds until the next change, and to the end of the observation
        steps = []
        for (t, n), nxt in zip(rel, rel[1:] + [(hi, None)]):
            steps += [(t, n), (nxt[0], n)]
        rel = steps
    span = [(lo, None), (hi, None)]  # the same x range on both panels
    markers = {"load start": 0.0, "load stop": load_stop - load_start}
    right = {"ready replicas": rel}
    if cpu:
        right["MLServer CPU (cores, measured)"] = [(t - load_start, c) for t, c in cpu]
    return (line_chart({"requests/s": rps + span}, {"p95 latency (ms)": p95},
                       title=f"Load: {result.shape}, {result.users} users, {result.duration_s} s",
                       left_label="requests/s", right_label="p95 (ms, last 2 s)", markers=markers,
                       x_label="time since the load started (s)")
            + line_chart({"requests/s": rps + span}, right, title="Replicas under load",
                         left_label="requests/s", right_label="replicas / cores", markers=markers,
                         x_label="time since the load started (s)"))


def locust_epoch(workdir) -> float | None:
    """The wall-clock second of the first row Locust wrote (the origin of LoadResult.timeline)."""
    import csv
    from pathlib import Path

    path = Path(workdir) / "locust_stats_history.csv"
    try:
        with open(path, newline="") as f:
            stamps = [int(r["Timestamp"]) for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except (OSError, KeyError, ValueError):
        return None
    return float(min(stamps)) if stamps else None
