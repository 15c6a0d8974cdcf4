"""The route to a predictor by deployment mode, and the Host header it needs (no cluster)."""

from __future__ import annotations

import pytest

from mlops_acceptance.fixtures.capabilities.inference import Inference
from mlops_acceptance.fixtures.kserve.route import Route, inference_route


def isvc(mode: str | None, url: str | None = None) -> dict:
    annotations = {"serving.kserve.io/deploymentMode": mode} if mode else {}
    return {"metadata": {"name": "m", "namespace": "team", "annotations": annotations},
            "status": {"url": url} if url else {}}


def test_raw_deployment_goes_to_the_predictor_service_without_a_host():
    assert inference_route(isvc("RawDeployment"), "istio") == Route("team", "m-predictor", 80, None)


@pytest.mark.parametrize("layer, gateway", [("istio", ("istio-system", "istio-ingressgateway", 80)),
                                            ("kourier", ("kourier-system", "kourier", 80)),
                                            ("contour", ("contour-external", "envoy", 80))])
def test_serverless_goes_through_the_gateway_with_the_isvc_host(layer, gateway):
    route = inference_route(isvc("Serverless", "http://m-team.example.com"), layer)
    assert (route.namespace, route.service, route.port) == gateway
    assert route.host == "m-team.example.com"
    assert "Host: m-team.example.com" in route.describe()


def test_no_annotation_is_kserves_default_serverless():
    assert inference_route(isvc(None, "http://m-team.example.com"), "kourier").host == "m-team.example.com"


def test_serverless_without_a_url_is_one_clear_error():
    with pytest.raises(ValueError, match="team/m has no status.url yet"):
        inference_route(isvc("Serverless"), "istio")


def test_the_host_header_goes_with_every_request(monkeypatch):
    sent = []

    class Recorder:
        status_code = 200

    def record(method):
        def call(self_or_url, *args, **kwargs):
            sent.append((method, kwargs.get("headers")))
            return Recorder()
        return call

    inf = Inference("http://127.0.0.1:9", "m", host="m-team.example.com")
    assert inf.http.headers["Host"] == "m-team.example.com"
    import requests

    monkeypatch.setattr(requests, "post", record("post"))
    inf.post_alone("/v2/models/m/infer", json={})
    assert sent == [("post", {"Host": "m-team.example.com", "Connection": "close"})]
    assert "Host" not in Inference("http://127.0.0.1:9", "m").http.headers
