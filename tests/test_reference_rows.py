"""3-integration's inputs and the served version: a one-row input widened to two rows, and the version a
server names in its answers (pure parts; the real-stack faults are in tests/test_external_inference.py)."""

from __future__ import annotations

from mlops_acceptance.fixtures.errors import UsageError
from mlops_acceptance.fixtures.reference import check_model_version, rows_of, widen
from mlops_acceptance.suites.served_model import served_version

ONE_ROW = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def test_a_one_row_input_is_widened_to_two_rows_of_the_same_tensor():
    wider = widen(ONE_ROW)
    assert rows_of(wider) == 2
    assert wider["inputs"][0] == {"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                                  "data": [5.1, 3.5, 1.4, 0.2, 0.2, 1.4, 3.5, 5.1]}
    assert widen(ONE_ROW, "repeated")["inputs"][0]["data"] == [5.1, 3.5, 1.4, 0.2] * 2
    assert ONE_ROW["inputs"][0]["shape"] == [1, 4]  # the original is left as it was


def test_what_cannot_be_reversed_is_not_widened_that_way_and_two_rows_are_left_alone():
    single = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "INT64", "data": [3]}]}
    assert widen(single) is None and widen(single, "repeated")["inputs"][0]["data"] == [3, 3]
    palindrome = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 1]}]}
    assert widen(palindrome) is None
    two = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 4.0]}]}
    assert widen(two) is None and rows_of(two) == 2


def test_the_served_version_is_what_the_server_names_never_a_dependency_version():
    assert served_version({"model_version": "3"}, {}) == ("3", "the infer answer's model_version")
    assert served_version({}, {"versions": ["2"]}) == ("2", "the model metadata's versions")
    # MLServer lists its dependencies' versions in the metadata: not the model's.
    assert served_version({"model_version": None}, {"versions": ["sklearn/1.3.2"]})[0] is None
    assert served_version({}, {"versions": ["1", "2"]})[0] is None
    assert served_version({}, None)[1].startswith("the server names no model version")


def test_model_version_must_be_a_registry_version():
    check_model_version(None)
    check_model_version("12")
    for bad in ("v2", "0", "-1", "latest", ""):
        try:
            check_model_version(bad)
        except UsageError as exc:
            assert exc.lines == [f"--model-version {bad!r}: not a model registry version (a positive integer)"]
        else:
            raise AssertionError(f"{bad!r} accepted")
