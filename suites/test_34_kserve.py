"""CLOUD-3.4 KServe model serving: the Open Inference Protocol (V2) criterion, on every target.

The served model is judged against the registered version itself (fixtures/reference.py): a
known input, the signature's outputs and the version's own prediction. The Kubernetes criteria
of 3.4 are in test_k8s_34_*.py.
"""

import numpy as np
import pytest

from mlops_acceptance.suites.served_model import output_problems, same_prediction

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
def test_infer_answers_as_the_signature_says_with_the_registered_versions_prediction(stack, known_input, evidence):
    ref = known_input
    if ref.payload is None:
        pytest.skip(ref.reason)
    inf = stack.inference
    response = inf.post(f"/v2/models/{inf.model_name}/infer", json=ref.payload)
    assert response.status_code == 200, (
        f"POST /v2/models/{inf.model_name}/infer -> {response.status_code} {response.text[:300]}")
    outputs = response.json()["outputs"]
    evidence(f"raw HTTP infer of {ref.rows} row(s) -> "
             + "; ".join(f"{o['name']} {o['datatype']} shape {o['shape']} data {o['data'][:10]}" for o in outputs))
    evidence(f"signature outputs {ref.signature_outputs or 'none logged'}; {ref.source or ref.reason}")
    problems = output_problems(outputs, ref)
    assert not problems, "; ".join(problems)
    if ref.expected is None:
        pytest.skip(f"outputs match the signature, but the expected prediction is unknown: {ref.reason}")
    evidence(f"served {outputs[0]['data']}; expected {ref.expected}")
    assert same_prediction(outputs[0]["data"], ref.expected), (
        f"the served model predicts {outputs[0]['data']}, the registered version {ref.model_uri or ''} "
        f"predicts {ref.expected}: another model is served")


@criterion("3.4-inference")
def test_infer_through_tritonclient_gives_the_same_prediction(stack, known_input, evidence):
    ref = known_input
    if ref.payload is None or ref.expected is None:
        pytest.skip(ref.reason or "no expected prediction")
    tensor = ref.payload["inputs"][0]
    data = np.array(tensor["data"]).reshape(tensor["shape"])
    got = stack.inference.triton_infer(data, name=tensor["name"], datatype=tensor["datatype"])
    evidence(f"tritonclient infer -> {got.reshape(-1).tolist()} (shape {list(got.shape)}); expected {ref.expected}")
    assert got.shape[0] == ref.rows
    assert same_prediction(got, ref.expected)


@criterion("3.4-inference")
def test_malformed_requests_get_client_errors_and_the_server_keeps_serving(stack, known_input, evidence):
    """Requests the protocol's schema rejects must get a 4xx: a 5xx is the server failing, not
    the request being refused."""
    inf = stack.inference
    path = f"/v2/models/{inf.model_name}/infer"
    cases = {
        "not JSON": dict(data=b"{not json", headers={"Content-Type": "application/json"}),
        "no inputs": dict(json={"outputs": []}),
        "unknown datatype": dict(json={"inputs": [{"name": inf.input_name, "shape": [1, 1], "datatype": "NOPE",
                                                   "data": [1]}]}),
        "inputs not a list": dict(json={"inputs": "x"}),
    }
    answered = {label: inf.post_alone(path, **kwargs).status_code for label, kwargs in cases.items()}
    unknown = inf.post_alone("/v2/models/acceptance-no-such-model/infer", json={"inputs": []}).status_code
    # The tensor's size against its shape is the runtime's to check, past the schema: recorded, not judged.
    mismatch = inf.post_alone(path, json={"inputs": [{"name": inf.input_name, "shape": [1, 4], "datatype": "FP64",
                                                      "data": [1.0]}]}).status_code
    evidence(f"malformed requests -> {answered}; unknown model -> HTTP {unknown}; data/shape size mismatch -> "
             f"HTTP {mismatch} (recorded only: the V2 schema does not cover tensor sizes)")
    wrong = {label: code for label, code in answered.items() if not 400 <= code < 500}
    assert not wrong, f"malformed requests not refused with a 4xx: {wrong}"
    assert unknown in (400, 404), f"unknown model answered HTTP {unknown}"
    assert inf.live and inf.model_ready, "the server stopped serving after malformed requests"
    if known_input.payload is not None:
        assert inf.post(path, json=known_input.payload).status_code == 200, "a valid request fails after malformed ones"
