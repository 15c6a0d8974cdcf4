"""A target that cannot reach the predictor says why on every request, never points at a dead port."""

from __future__ import annotations

import pytest


def test_an_unreachable_endpoint_says_why_instead_of_pointing_at_a_dead_port():
    from mlops_acceptance.fixtures.capabilities.inference import Inference, Unreachable

    inference = Inference(None, "model", unreachable="InferenceService mlops/model Ready: not reached within 300 s")
    with pytest.raises(Unreachable, match="no inference endpoint: InferenceService mlops/model Ready"):
        inference.infer([[1.0]])
