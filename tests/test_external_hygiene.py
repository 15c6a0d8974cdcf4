"""Two runs against one external stack leave it as they found it, and never touch what they did not create.

The test starts an embedded stack in this process (it plays "a stack that already runs"), plants
objects of every kind the checks also create (objects in each bucket, a bucket, an MLflow experiment
with a run, a registered model, a database), runs `pytest suites/ --target external` against it twice
and compares everything with what it was before.
"""

from __future__ import annotations

import tempfile
import uuid

import psycopg
import pytest

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.local.provider import LocalProvider
from tests.conftest import statuses


@pytest.fixture
def running_stack(run_tmpdir, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(run_tmpdir))  # the stack's scratch folder lands here
    values = load_values()
    provider = LocalProvider(values)
    try:
        stack = provider.up()
        # The backup check restores into a scratch database: the external target needs CREATEDB for it.
        with psycopg.connect(stack.postgres.admin_conninfo, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {values.postgresql_user} CREATEDB")
        yield stack
    finally:
        provider.down()


def _state(stack) -> dict:
    s3 = stack.s3.client
    objects = {}
    for bucket in stack.s3.bucket_names():
        objects[bucket] = {o.object_name: o.etag for o in s3.list_objects(bucket, recursive=True)}
    experiments = stack.mlflow.post("experiments/search", {"max_results": 1000, "view_type": "ALL"})
    models = stack.mlflow.get("registered-models/search", max_results=1000)
    with psycopg.connect(stack.postgres.admin_conninfo) as conn:
        databases = sorted(r[0] for r in conn.execute("SELECT datname FROM pg_database"))
    return {
        "objects": objects,
        "experiments": {e["experiment_id"]: (e["name"], e["lifecycle_stage"]) for e in experiments["experiments"]},
        "models": sorted((m["name"], len(m.get("latest_versions", []))) for m in models.get("registered_models", [])),
        "databases": databases,
    }


def _plant(stack, values) -> dict:
    tag = uuid.uuid4().hex[:10]
    s3, mlflow = stack.s3.client, stack.mlflow
    for bucket in values.minio_buckets:
        stack.s3.put(bucket.name, f"planted/{tag}.txt", f"planted in {bucket.name}".encode())
    s3.make_bucket(f"planted-{tag}")
    stack.s3.put(f"planted-{tag}", "keep.txt", b"keep")
    experiment_id = mlflow.post("experiments/create", {"name": f"planted-{tag}"})["experiment_id"]
    run_id = mlflow.post("runs/create", {"experiment_id": experiment_id})["run"]["info"]["run_id"]
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "planted", "value": tag})
    mlflow.post("registered-models/create", {"name": f"planted-{tag}"})
    with psycopg.connect(stack.postgres.admin_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE planted_{tag}")
    return {"tag": tag, "run_id": run_id}


def test_two_external_runs_leave_the_stack_as_they_found_it(running_stack, suite_run, run_tmpdir):
    stack, values = running_stack, running_stack.values
    planted = _plant(stack, values)
    before = _state(stack)
    dsn = f"postgresql://{values.postgresql_user}@127.0.0.1:{stack.postgres.port}/{values.postgresql_database}"
    external = ("--target", "external", "--s3-endpoint", stack.s3.endpoint, "--postgres-dsn", dsn,
                "--mlflow-uri", stack.mlflow.uri, "--inference-url", stack.inference.url)
    for attempt in (1, 2):
        done, signoff = suite_run(*external, timeout=900)
        assert signoff is not None, f"run {attempt}: no signoff.json\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        status = statuses(signoff)
        service = [c["id"] for c in signoff["criteria"] if c["scope"].startswith("service")]
        # partial: the inference checks that compare with the model the suite trained skip on external
        not_ok = {cid: status[cid] for cid in service if status[cid] not in ("passed", "partial", "skipped")}
        assert not not_ok, f"run {attempt}: {not_ok}\n{done.stdout[-3000:]}"
        assert done.returncode == 0, done.stdout[-3000:]
        notes = "\n".join(signoff["notes"])
        assert "deleted at the end what the checks created in MLflow" in notes, notes
    after = _state(stack)

    # Nothing it created is left: the same buckets, objects (byte for byte), databases, registered models.
    assert after["objects"] == before["objects"]
    assert after["databases"] == before["databases"]
    assert after["models"] == before["models"]
    # MLflow keeps deleted experiments: every new one is deleted, and there were new ones (the runs made some).
    new = {eid: e for eid, e in after["experiments"].items() if eid not in before["experiments"]}
    assert new, "the runs created no experiment: this test would prove nothing"
    assert all(stage == "deleted" and name.startswith("acceptance-") for name, stage in new.values()), new
    # And nothing it did not create was touched.
    assert {eid: after["experiments"][eid] for eid in before["experiments"]} == before["experiments"]
    run = stack.mlflow.get("runs/get", run_id=planted["run_id"])["run"]
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"planted": planted["tag"]}
    assert run["info"]["lifecycle_stage"] == "active"
