"""CLOUD-3.4 autoscaling: the autoscaling objects match the configuration, and the replicas follow
Locust load (up within the limit, never past the maximum, back down after).

On kwok the HPA controller, metrics-server and the API server are real; the predictor pods are
simulated and their CPU is the measured CPU of the real local MLServer (README: Autoscaling).
"""

from __future__ import annotations

import pytest

from mlops_acceptance.suites.autoscaling_helpers import DECLARED_AUTOSCALING, ScalingExperiment, knative_autoscaler_config, kserve_hpa
from mlops_acceptance.suites.kserve_helpers import isvc_of

criterion = pytest.mark.criterion


@criterion("3.4-autoscaling-config", scope="k8s")
def test_autoscaling_objects_match_the_configuration(stack, evidence):
    v = stack.values
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    pred = isvc.get("spec.predictor", {})
    ann = isvc.annotations
    got = {k: pred.get(k) for k in ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric")}
    want = {"minReplicas": v.inference_min_replicas, "maxReplicas": v.inference_max_replicas,
            "scaleTarget": v.inference_scale_target, "scaleMetric": v.inference_scale_metric}
    mode = ann.get("serving.kserve.io/deploymentMode", "Serverless")
    evidence(f"InferenceService predictor {got} (configured {want}); deploymentMode {mode}; annotations "
             f"{ {k: val for k, val in ann.items() if 'autoscal' in k or 'deploymentMode' in k} }")
    assert got == want, f"predictor autoscaling {got}, configured {want}"
    if mode == "RawDeployment":
        assert v.kserve_enable_raw_deployment, "RawDeployment mode but kserve_enable_raw_deployment is false"
        cls = ann.get("serving.kserve.io/autoscalerClass", "hpa")
        assert cls in ("hpa", "external"), f"RawDeployment autoscalerClass {cls!r}"
        if v.inference_scale_metric in ("concurrency", "rps"):
            raise AssertionError(f"scaleMetric {v.inference_scale_metric} needs Knative (KPA); RawDeployment's HPA "
                                 "scales on cpu or memory")
    else:
        want_cls = f"{v.knative_autoscaling_class}.autoscaling.knative.dev"
        assert ann.get("autoscaling.knative.dev/class") == want_cls, (
            f"autoscaling.knative.dev/class {ann.get('autoscaling.knative.dev/class')!r}, want {want_cls}")
    knative_autoscaler_config(stack, evidence)
    if not kserve_hpa(stack, mode, evidence):
        evidence.proof("declared", DECLARED_AUTOSCALING)


@criterion("3.4-autoscaling-load", scope="k8s")
def test_replicas_follow_the_load(stack, evidence, request):
    """Locust loads the inference endpoint; a WATCH on the predictor's Deployment records the ready
    replicas; they must rise above the minimum within the scale-up timeout, never pass the maximum,
    keep the requests succeeding, and be back at the minimum within the autoscaler's scale-down
    window + grace after the load (load.autoscaling.judge; the run: ScalingExperiment)."""
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    experiment = ScalingExperiment(stack, isvc, evidence)
    # The served model's known input (fixtures/reference.py); called outside pytest, a fixed row.
    lookup = getattr(request, "getfixturevalue", None)
    known = lookup("known_input").payload if lookup else None
    payload = known or stack.inference.infer_payload([[5.1, 3.5, 1.4, 0.2]])
    experiment.run(payload, evidence)
    ok, reasons = experiment.judge()
    experiment.record(evidence, request)
    assert ok, "; ".join(reasons)
