"""A pytest plugin that builds a deliberately broken embedded stack (`-p tests.faults --fault NAME`).

The project's tests run `pytest suites/` with it and assert that exactly the
criteria the fault violates fail. It uses the provisioning hooks
(fixtures/hookspecs.py); the product itself never breaks anything.
"""

import json
import pytest

from mlops_acceptance.manifests.minio.create_buckets import policy_document

# Durability faults (run with --disruptive): the component keeps its data in a scratch folder that
# its restart wipes.
WIPED = {"wipe-s3": ("s3", {"3.1-durability"}), "wipe-postgresql": ("postgresql", {"3.2-durability"}),
         "wipe-inference": ("inference", {"3.4-durability"})}

# fault -> the criteria it must fail, and nothing else
EXPECTED = {
    # A missing bucket has no policy at all: both rows fail.
    "missing-bucket": {"3.1-buckets", "3.1-policies"},
    # The buckets exist, all but MLflow's made by hand after the stack came up: creation was not automatic.
    "manual-buckets": {"3.1-buckets"},
    # Anonymous get granted under one key prefix of a private bucket only.
    "prefix-policy": {"3.1-policies"},
    # Healthy, in MLflow's proxied-artifact mode (--serve-artifacts, mlflow-artifacts:/ URIs): nothing fails.
    "proxied-artifacts": set(),
    "public-bucket": {"3.1-policies"},
    "wrong-setting": {"3.2-settings"},
    # No MLflow tables in PostgreSQL: the schema, the backup (nothing to back up) and the
    # end-to-end path (the model's run is not in PostgreSQL) fail with the backend check.
    "file-store": {"3.3-backend", "3.2-schema", "3.2-backup", "3-integration"},
    "artifacts-outside": {"3.3-artifacts", "3.3-registry", "3-integration"},
    "unregistered-model": {"3-integration"},
    # An S3 server that checks no credentials: any key is accepted, anonymous requests may do
    # everything, and the bucket list (owned by no identity) comes back empty.
    "open-s3": {"3.1-auth", "3.1-policies", "3.1-buckets"},
    "trust-auth": {"3.2-database"},
}


# fault -> the criteria it must leave `partial` (not proven here, never passed, never failed)
PARTIAL = {
    # No pg_dump/pg_restore on the machine that runs the suite: the backup was not run.
    "no-pg-tools": {"3.2-backup"},
}


def pytest_addoption(parser):
    parser.addoption("--fault", choices=sorted(EXPECTED) + sorted(WIPED) + sorted(PARTIAL), required=True)


def _fault(config) -> str:
    return config.getoption("fault")


@pytest.hookimpl
def pytest_acceptance_local_plan(plan):
    fault = _fault(pytest_config)
    scratch = plan.workdir  # removed with the stack
    if fault in WIPED:
        plan.wipe_on_restart = {WIPED[fault][0]}
    if fault == "wrong-setting":
        plan.postgres.max_connections = plan.postgres.max_connections // 2
    elif fault == "file-store":
        plan.backend_store_uri = f"file://{scratch}/mlruns"
    elif fault == "artifacts-outside":
        plan.artifact_root = f"file://{scratch}/artifacts"
    elif fault == "unregistered-model":
        plan.register_model = False
    elif fault == "open-s3":
        plan.s3_check_credentials = False
    elif fault == "trust-auth":
        plan.postgres.host_auth = "trust"
    elif fault == "manual-buckets":  # the step makes only MLflow's bucket; the others come by hand
        plan.buckets = [b for b in plan.buckets if b["name"] == "mlflow-artifacts"]
    elif fault == "proxied-artifacts":
        plan.artifacts_proxied = True


@pytest.hookimpl
def pytest_acceptance_stack_ready(stack):
    fault = _fault(pytest_config)
    s3 = stack.s3.client
    if fault == "missing-bucket":
        for key in stack.s3.bucket("datasets").keys():
            s3.remove_object("datasets", key)
        s3.remove_bucket("datasets")
    elif fault == "public-bucket":
        s3.set_bucket_policy("models", json.dumps(policy_document("models", "download")))
    elif fault == "no-pg-tools":
        stack.pg_tools = {}
    elif fault == "manual-buckets":
        for bucket in stack.values.minio_buckets[1:]:
            s3.make_bucket(bucket.name)
    elif fault == "prefix-policy":
        s3.set_bucket_policy("datasets", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
             "Resource": ["arn:aws:s3:::datasets/acceptance-probe-2/*"]}]}))


pytest_config = None


def pytest_configure(config):
    global pytest_config
    pytest_config = config
