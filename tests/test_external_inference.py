"""The `external` target judges the served model: inference faults behind real endpoints.

One real embedded stack is brought up for the module; the suite then runs as `--target external`
against its endpoints, with the inference URL pointed at a misbehaving real proxy in front of the
real MLServer (tests/inference_proxy.py), or at a second real MLServer that serves another model
under the same name. Each fault must fail exactly its criteria; healthy, everything passes.
"""

from __future__ import annotations

import secrets

import pytest

from mlops_acceptance.fixtures import envs
from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.local.mlserver import LocalMlserver
from mlops_acceptance.fixtures.local.provider import LocalProvider
from mlops_acceptance.fixtures.ports import free_port
from tests.conftest import statuses
from tests.inference_proxy import Proxy

# A model that answers 2 to everything, with the same signature (FP64 [-1, 4] -> INT64 [-1]).
_OTHER_MODEL = r"""
import sys, mlflow, numpy as np
from mlflow.models import infer_signature
from sklearn.dummy import DummyClassifier
X = np.array([[5.1, 3.5, 1.4, 0.2], [5.7, 2.8, 4.1, 1.3], [6.9, 3.1, 5.1, 2.3]])
model = DummyClassifier(strategy="constant", constant=2).fit(X, [0, 1, 2])
mlflow.set_experiment("acceptance-other-model")
with mlflow.start_run():
    info = mlflow.sklearn.log_model(model, "model", signature=infer_signature(X, model.predict(X)),
                                    pip_requirements=["scikit-learn"])
print(mlflow.register_model(info.model_uri, sys.argv[1]).version)
"""

# Two registered versions of the served model's run (the same model twice: only the version tells them apart).
_TWO_VERSIONS = r"""
import sys, mlflow
print(" ".join(mlflow.register_model(sys.argv[1], sys.argv[2]).version for _ in range(2)))
"""

EXPECTED = {
    "first-row-only": {"3.4-inference", "3-integration"},
    "fail-share": {"3-load"},
    "slow": {"3-load"},
    "wrong-shape": {"3.4-inference"},
    "wrong-dtype": {"3.4-inference"},
}


@pytest.fixture(scope="module")
def running_stack():
    provider = LocalProvider(load_values())
    try:
        yield provider.up()
    finally:
        provider.down()


def dsn_of(stack, database: str | None = None) -> str:
    from urllib.parse import quote

    pg, v = stack.postgres, stack.values
    return (f"postgresql://{quote(v.postgresql_user)}:{quote(v.postgresql_password, safe='')}@{pg.host}:{pg.port}/"
            f"{database or pg.database}")


def run_external(suite_run, stack, inference_url: str, *args: str):
    """The whole suite against the stack's endpoints; the DSNs through the environment, not argv."""
    return suite_run("--target", "external", "--s3-endpoint", stack.s3.endpoint, "--mlflow-uri", stack.mlflow.uri,
                     "--inference-url", inference_url, "--set", "load_duration_s=4", *args,
                     env={"ACCEPTANCE_POSTGRES_DSN": dsn_of(stack),
                          "ACCEPTANCE_POSTGRES_ADMIN_DSN": stack.postgres.admin_conninfo})


def assert_fails_exactly(done, signoff, expected: set[str]) -> None:
    assert signoff is not None, f"no signoff.json:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    status = statuses(signoff)
    failed = {cid for cid, s in status.items() if s == "failed"}
    detail = "\n".join(f"{c['id']} {c['status']}: {c['evidence'][-600:]}" for c in signoff["criteria"]
                       if c["status"] not in ("passed", "skipped"))
    assert failed == expected, f"expected {sorted(expected)} to fail, got {sorted(failed)}\n{detail}"
    # 3.2-backup's schedule is a Kubernetes object the external target cannot observe: partial, never passed
    # (its dump still restored); so a healthy external stack is INCOMPLETE, not ACCEPTED.
    service = {c["id"] for c in signoff["criteria"] if c["scope"].startswith("service")}
    not_passed = {cid for cid in service - failed - {"3.2-backup"} if status[cid] != "passed"}
    assert not not_passed, f"{sorted(not_passed)} not passed\n{detail}"
    if "3.2-backup" not in failed:
        backup = next(c for c in signoff["criteria"] if c["id"] == "3.2-backup")
        assert backup["status"] == "partial" and "restored into" in backup["evidence"], backup
    assert signoff["verdict"] == ("REJECTED" if expected else "INCOMPLETE")


def test_a_healthy_external_stack_passes_every_service_criterion_its_target_can_prove(running_stack, suite_run):
    done, signoff = run_external(suite_run, running_stack, running_stack.inference.url)
    assert_fails_exactly(done, signoff, set())
    assert done.returncode == 0 and signoff["verdict_detail"]["required_scopes"] == ["service"]
    evidence = {c["id"]: c["evidence"] for c in signoff["criteria"]}
    assert "predicted by the MLflow" in evidence["3.4-inference"]  # judged against the registered version
    # The input example has one row: widened, so that more than one row's answer is compared.
    assert "widened to 2 rows" in evidence["3-integration"] and "for 2 row(s)" in evidence["3-integration"], \
        evidence["3-integration"]
    assert "served version: not named (the server names no model version" in evidence["3-integration"]


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_an_inference_fault_fails_exactly_its_criterion(mode, running_stack, suite_run):
    with Proxy(running_stack.inference.url, mode) as proxy:
        done, signoff = run_external(suite_run, running_stack, proxy.url)
    assert_fails_exactly(done, signoff, EXPECTED[mode])
    if mode == "fail-share":
        assert proxy.counts["failed"] > 0


def test_another_model_served_than_the_registered_version_fails_inference_and_integration(
        running_stack, suite_run, tmp_path):
    stack = running_stack
    done = stack.mlflow.run_client(_OTHER_MODEL, "acceptance-other-model")
    assert done.returncode == 0, done.stderr[-2000:]
    version = done.stdout.strip().splitlines()[-1]
    server = LocalMlserver(envs.mlserver_env(stack.values.mlserver_version), tmp_path, tmp_path, free_port(),
                           free_port(), free_port(), stack.inference.model_name,
                           {**stack.mlflow.client_env, "MLFLOW_TRACKING_URI": stack.mlflow.uri})
    try:
        server.start(180)
        server.load(f"models:/acceptance-other-model/{version}", 180)
        done, signoff = run_external(suite_run, stack, server.url)
    finally:
        if server.service:
            server.service.stop()
    assert_fails_exactly(done, signoff, {"3.4-inference", "3-integration"})


def test_a_missing_database_fails_its_row_and_blocks_the_rows_that_need_it(running_stack, suite_run):
    """PostgreSQL without the configured database: 3.2-database is the root failure; the rows that read
    MLflow's tables say `blocked by 3.2-database`; version, settings and docs are still judged (passed)."""
    stack = running_stack
    missing = "acceptance_no_such_db"
    dsn = dsn_of(stack, missing)
    done, signoff = suite_run("--target", "external", "--s3-endpoint", stack.s3.endpoint, "--mlflow-uri",
                              stack.mlflow.uri, "--inference-url", stack.inference.url, "--set", "load_duration_s=2",
                              "--set", f"postgresql_database={missing}",
                              env={"ACCEPTANCE_POSTGRES_DSN": dsn,
                                   "ACCEPTANCE_POSTGRES_ADMIN_DSN": stack.postgres.admin_conninfo})
    assert signoff is not None, done.stdout[-3000:]
    rows = {c["id"]: c for c in signoff["criteria"]}
    blocked = {"3.2-schema", "3.2-backup", "3.3-backend", "3-integration"}
    assert {cid for cid, c in rows.items() if c["status"] == "failed"} == {"3.2-database"} | blocked
    for cid in blocked:
        assert rows[cid]["blocked_by"] == ["3.2-database"], rows[cid]
    assert rows["3.2-database"]["blocked_by"] == []
    for cid in ("3.2-version", "3.2-settings", "3-docs"):
        assert rows[cid]["status"] == "passed", rows[cid]
    assert signoff["verdict"] == "REJECTED"
    assert signoff["verdict_detail"]["root_failures"] == ["3.2-database"]


def test_an_endpoint_serving_another_version_than_the_one_to_serve_fails_integration(running_stack, suite_run,
                                                                                    tmp_path):
    """Versions 1 and 2 of one model (the same artifacts: their predictions cannot tell them apart), served
    by a real MLServer that names version 1 in its answers. Version 2 is the newest: 3-integration fails
    naming both; asked for version 1 (--model-version 1) it passes; asked for a version the registry lacks,
    it fails saying so."""
    stack = running_stack
    name = f"acceptance-versioned-{secrets.token_hex(3)}"
    done = stack.mlflow.run_client(_TWO_VERSIONS, f"runs:/{stack.served_model.run_id}/model", name)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1 2"
    server = LocalMlserver(envs.mlserver_env(stack.values.mlserver_version), tmp_path, tmp_path, free_port(),
                           free_port(), free_port(), name,
                           {**stack.mlflow.client_env, "MLFLOW_TRACKING_URI": stack.mlflow.uri})
    only = ("--model-name", name, "-k", "served_model_is_the_registered_version")
    try:
        server.start(180)
        server.load(f"models:/{name}/1", 180, version="1")
        newest, asked, missing = (run_external(suite_run, stack, server.url, *only, *extra)
                                  for extra in ((), ("--model-version", "1"), ("--model-version", "7")))
        runs = {"newest": newest, "asked": asked, "missing": missing}
        rows = {k: {c["id"]: c for c in signoff["criteria"]}["3-integration"] for k, (done, signoff) in runs.items()
                if signoff is not None}
    finally:
        if server.service:
            server.service.stop()
    assert set(rows) == set(runs), {k: d.stdout[-2000:] for k, (d, _) in runs.items()}
    assert rows["newest"]["status"] == "failed", rows["newest"]
    assert (f"the endpoint serves version 1 of {name} (the infer answer's model_version), not version 2 (the newest "
            f"version of {name!r})") in rows["newest"]["evidence"], rows["newest"]["evidence"]
    assert rows["asked"]["status"] == "passed", rows["asked"]
    assert "served version: 1 (the infer answer's model_version); to serve: version 1 (the version asked for " \
           "(--model-version 1))" in rows["asked"]["evidence"], rows["asked"]["evidence"]
    assert rows["missing"]["status"] == "failed", rows["missing"]
    assert f"--model-version 7: {name!r} has no version 7 in the registry (versions 1, 2)" in rows["missing"]["evidence"]
