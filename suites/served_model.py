"""Judging what the inference endpoint answered against the registered version (fixtures/reference.py)."""

from __future__ import annotations

import math

import numpy as np


def output_problems(outputs: list[dict], ref) -> list[str]:
    """How the V2 outputs differ from the signature's: count, names (where the signature names
    them), datatypes, and shapes (one row per input row; the same elements per row)."""
    wanted = ref.signature_outputs
    if not wanted:
        wanted = [{"name": None, "datatype": ref.expected_datatype, "shape": [-1]}] if ref.expected_datatype else []
    problems = []
    if wanted and len(outputs) != len(wanted):
        return [f"{len(outputs)} outputs, the signature has {len(wanted)}"]
    for got, want in zip(outputs, wanted):
        label = got.get("name")
        if want["name"] and got.get("name") != want["name"]:
            problems.append(f"output {label!r}: the signature names it {want['name']!r}")
        if want["datatype"] and got.get("datatype") != want["datatype"]:
            problems.append(f"output {label!r}: datatype {got.get('datatype')}, the signature says {want['datatype']}")
        shape = list(got.get("shape") or [])
        if not shape or shape[0] != ref.rows:
            problems.append(f"output {label!r}: shape {shape}, expected {ref.rows} row(s) for {ref.rows} input row(s)")
            continue
        per_row = [d for d in want["shape"][1:] if d != -1]
        if len(per_row) == len(want["shape"][1:]) and math.prod(shape[1:]) != math.prod(per_row):
            problems.append(f"output {label!r}: shape {shape}, the signature says {want['shape']} "
                            f"({math.prod(per_row)} value(s) per row)")
        if len(got.get("data") or []) != math.prod(shape):
            problems.append(f"output {label!r}: {len(got.get('data') or [])} values for shape {shape}")
    return problems


def same_prediction(served, expected) -> bool:
    got, want = np.asarray(served).reshape(-1), np.asarray(expected).reshape(-1)
    if got.shape != want.shape:
        return False
    if np.issubdtype(want.dtype, np.floating) or np.issubdtype(got.dtype, np.floating):
        return bool(np.allclose(got.astype(float), want.astype(float), rtol=1e-5, atol=1e-8))
    return bool(np.array_equal(got, want))


def served_version(answer: dict, metadata: dict | None) -> tuple[str | None, str]:
    """The registry version the server says it serves, and where it said so: the V2 infer answer's
    `model_version`, else the model metadata's `versions` when they are one plain version number
    (MLServer lists its dependencies' versions there: `sklearn/1.3`, never read as the model's)."""
    named = answer.get("model_version")
    if named not in (None, ""):
        return str(named), "the infer answer's model_version"
    versions = [str(v) for v in (metadata or {}).get("versions") or []]
    if len(versions) == 1 and versions[0].isdigit():
        return versions[0], "the model metadata's versions"
    return None, "the server names no model version (neither the infer answer's model_version nor the metadata)"
