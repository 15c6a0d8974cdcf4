"""CLOUD-3.4 KServe model serving: the Open Inference Protocol (V2) criterion.

The Kubernetes criteria of 3.4 (CRDs, runtime, InferenceService, GPU,
autoscaling) need a Kubernetes target; on the others they are skipped.
"""

import numpy as np
import pytest

criterion = pytest.mark.criterion


@criterion("3.4-inference")
def test_server_and_model_live_ready_and_described(stack, evidence):
    inf = stack.inference
    server = inf.server_metadata
    evidence(f"server {server.get('name')} {server.get('version')}: live={inf.live} ready={inf.ready} "
             f"model {inf.model_name} ready={inf.model_ready}")
    assert inf.live and inf.ready and inf.model_ready
    meta = inf.metadata
    evidence(f"model metadata: name={meta['name']}, inputs={meta.get('inputs')}, outputs={meta.get('outputs')}")
    assert meta["name"] == inf.model_name


@criterion("3.4-inference")
def test_infer_over_raw_http_returns_the_expected_prediction(stack, evidence):
    inf = stack.inference
    model = stack.served_model
    if model is None:
        pytest.skip("the expected prediction is unknown: this target's model was not trained by the suite")
    response = inf.infer(model.input)
    assert response.status_code == 200, f"POST /v2/models/{inf.model_name}/infer -> {response.status_code} {response.text[:300]}"
    outputs = response.json()["outputs"]
    first = outputs[0]
    evidence(f"raw HTTP infer of {len(model.input)} rows -> output {first['name']} shape {first['shape']} "
             f"data {first['data']}; the local model predicts {model.expected}")
    assert first["shape"][0] == len(model.input)
    assert list(first["data"]) == list(model.expected)


@criterion("3.4-inference")
def test_infer_through_tritonclient_returns_the_expected_prediction(stack, evidence):
    model = stack.served_model
    if model is None:
        pytest.skip("the expected prediction is unknown: this target's model was not trained by the suite")
    got = stack.inference.triton_infer(model.input)
    evidence(f"tritonclient infer -> {got.tolist()} (shape {list(got.shape)})")
    assert got.shape[0] == len(model.input)
    assert np.array_equal(got.reshape(-1), np.array(model.expected))


@criterion("3.4-inference")
def test_malformed_requests_get_errors_and_the_server_keeps_serving(stack, evidence):
    inf = stack.inference
    path = f"/v2/models/{inf.model_name}/infer"
    cases = {
        "not JSON": dict(data=b"{not json", headers={"Content-Type": "application/json"}),
        "no inputs": dict(json={"outputs": []}),
        "shape/data mismatch": dict(json={"inputs": [{"name": inf.input_name, "shape": [1, 4], "datatype": "FP64",
                                                      "data": [1.0]}]}),
        "unknown datatype": dict(json={"inputs": [{"name": inf.input_name, "shape": [1, 1], "datatype": "NOPE",
                                                   "data": [1]}]}),
    }
    answered = {}
    for label, kwargs in cases.items():
        response = inf.post_alone(path, **kwargs)
        answered[label] = response.status_code
        assert 400 <= response.status_code < 600, f"{label}: answered HTTP {response.status_code}, not an error"
    unknown = inf.post_alone("/v2/models/acceptance-no-such-model/infer", json={"inputs": []}).status_code
    evidence(f"malformed requests -> {answered}; unknown model -> HTTP {unknown}")
    assert unknown in (400, 404), f"unknown model answered HTTP {unknown}"
    assert inf.live and inf.model_ready, "the server stopped serving after malformed requests"
    if stack.served_model is not None:
        assert inf.infer(stack.served_model.input).status_code == 200, "a valid request fails after malformed ones"
