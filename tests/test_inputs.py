"""Bad input fails fast: one clear line naming the bad value, non-zero exit, nothing provisioned."""

import socket

import pytest

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.errors import UsageError
from mlops_acceptance.fixtures.process import require_program

BAD_INPUTS = [
    (["--set", "minio_buckets.1.name=Models_Bucket"], "minio_buckets[1].name='Models_Bucket'"),
    (["--set", "minio_buckets.0.policy=world-readable"], "minio_buckets[0].policy='world-readable'"),
    (["--set", "minio_storage_size=100GB"], "minio_storage_size='100GB': not a Kubernetes quantity"),
    (["--set", "postgresql_shared_buffers=lots"], "postgresql_shared_buffers='lots'"),
    (["--set", "mlflow_version=v2.9.2"], "mlflow_version='v2.9.2': not a version"),
    (["--set", "mlflow_port=70000"], "mlflow_port=70000"),
    (["--set", "mlflow_s3_endpoint_url=minio:9000"], "mlflow_s3_endpoint_url='minio:9000'"),
    (["--set", "mlflow_artifact_root=gs://bucket"], "mlflow_artifact_root='gs://bucket': not an s3://"),
    (["--set", "mlflow_backend_store_uri=sqlite:///mlflow.db"], "mlflow_backend_store_uri: not a postgresql://"),
    (["--set", "minio_replics=2"], "unknown key 'minio_replics' (did you mean 'minio_replicas'?)"),
    (["--set", "knative_min_scale=20"], "knative_min_scale=20 is above knative_max_scale=10"),
    (["--set", "minio_replicas=two"], "minio_replicas='two'"),
    (["--set", "no-equals-sign"], "--set 'no-equals-sign': expected key=value"),
    (["--values", "/nonexistent/values.yaml"], "--values /nonexistent/values.yaml: no such file"),
    (["--profile", "staging"], "--profile 'staging': unknown profile"),
    (["--profile", "production"], "minio_secret_key is the spec's published default credential"),
    (["--target", "moon"], "--target 'moon': unknown target"),
    (["--target", "external"], "--s3-endpoint: required by --target external"),
    (["--target", "external", "--s3-endpoint", "ftp://x", "--mlflow-uri", "http://m", "--inference-url",
      "http://i", "--postgres-dsn", "postgresql://u@h/db"], "--s3-endpoint 'ftp://x': not an http(s):// URL"),
    (["--mlflow-port", "99999"], "--mlflow-port 99999: not a TCP port"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--target", "kwok", "--manifests", "/nonexistent/templates"], "--manifests /nonexistent/templates: no such folder"),
    # The local target reads the backup CronJob of --manifests too (3.2-backup).
    (["--manifests", "/nonexistent/templates"], "--manifests /nonexistent/templates: no such folder"),
    # The spec's own templates: flagged offline, before any cluster is touched.
    (["--target", "kwok", "--manifests", "tests/data/spec_templates"],
     "[runtime-visibility] predictor's runtime 'mlflow-serving' is a ServingRuntime in namespace 'kserve-system'"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[" ".join(a)[:40] for a, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_nothing_starts(args, message, suite_run, run_tmpdir):
    # The timeout only guards against a hang: how fast it refuses depends on the machine's load.
    done, signoff = suite_run(*args, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 4, f"exit {done.returncode}: {output[-1500:]}"
    assert message in output, output[-1500:]
    assert "Traceback" not in output
    assert signoff is None, "a report was written: something ran"
    assert not any(run_tmpdir.iterdir()), "a stack folder was created"


def test_a_taken_port_is_refused_before_provisioning(suite_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, _ = suite_run("--mlflow-port", str(port), timeout=300)
    assert done.returncode == 4
    assert f"--mlflow-port: port {port} on 127.0.0.1 is already in use" in done.stdout + done.stderr


def test_secret_values_are_never_echoed_in_errors():
    with pytest.raises(UsageError) as err:
        load_values(sets=["postgresql_password=short"])
    assert "short" not in str(err.value)
    assert "value not shown: it is a secret" in str(err.value)


def test_a_missing_program_is_named():
    with pytest.raises(UsageError, match="required program 'no-such-binary-xyz' not found on PATH: install it"):
        require_program("no-such-binary-xyz", "install it")


def test_an_ansible_role_defaults_file_is_accepted_as_is(tmp_path):
    role_defaults = tmp_path / "main.yml"
    role_defaults.write_text("---\nmlflow_namespace: mlops\nmlflow_version: \"2.9.2\"\nmlflow_replicas: 3\n"
                             "mlflow_workers: 2\n")
    values = load_values([role_defaults], ["mlflow_workers=1"])
    assert values.mlflow_replicas == 3 and values.mlflow_workers == 1


def test_set_keeps_strings_as_strings():
    assert load_values(sets=["mlflow_version=3.0"]).mlflow_version == "3.0"
    assert load_values(sets=["minio_buckets.1.policy=download"]).minio_buckets[1].policy == "download"


def test_production_profile_accepts_own_credentials():
    values = load_values(sets=["minio_access_key=platform-ops", "minio_secret_key=Zq8-long-secret",
                               "mlflow_aws_access_key_id=platform-ops", "mlflow_aws_secret_access_key=Zq8-long-secret",
                               "postgresql_password=another-long-one",
                               "mlflow_backend_store_uri=postgresql://mlflow:another-long-one@postgresql:5432/mlflow"],
                         profile="production")
    assert values.default_credentials_in_use() == []
    assert "another-long-one" not in str(values.redacted())
