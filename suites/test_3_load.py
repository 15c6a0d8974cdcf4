"""Phase 3 load: the inference endpoint under Locust load, within the configured limits.

The load runs in a Locust subprocess (load/harness.py) with the values' load settings:
load_users, load_spawn_rate, load_duration_s, load_shape, load_processes; it passes when
the error rate <= load_max_error_rate and p95 <= load_max_p95_ms.
"""

import pytest

from mlops_acceptance.load import harness
from mlops_acceptance.reports import charts

criterion = pytest.mark.criterion


@criterion("3-load")
def test_inference_endpoint_under_locust_load_stays_within_limits(stack, values, known_input, evidence, request):
    inf = stack.inference
    if known_input.payload is None:
        pytest.skip(known_input.reason)
    # The served model's own known input (fixtures/reference.py), as the V2 request every user sends.
    payload = known_input.payload
    path = f"/v2/models/{inf.model_name}/infer"
    try:
        result = harness.run_load(inf.url, path, payload, users=values.load_users, spawn_rate=values.load_spawn_rate,
                                  duration_s=values.load_duration_s, shape=values.load_shape,
                                  processes=values.load_processes)
    except harness.LoadError as exc:
        pytest.fail(str(exc), pytrace=False)  # one line: Locust missing, did not start or did not stop
    evidence(f"POST {path} with {known_input.rows} row(s): {result.summary()}")
    request.node.user_properties.append(("figure", charts.load_chart(result)))
    ok, reasons = harness.within_limits(result, values.load_max_error_rate, values.load_max_p95_ms)
    evidence(f"limits: error rate <= {values.load_max_error_rate:.2%}, p95 <= {values.load_max_p95_ms:g} ms: "
             + ("met" if ok else "NOT met: " + "; ".join(reasons)))
    assert ok, "; ".join(reasons)
