"""CLOUD-3.1 MinIO object storage: the service criteria, through the S3 API."""

import hashlib
import os
import uuid

import pytest

from mlops_acceptance.fixtures.capabilities.s3 import PROBE_PREFIXES, PROBES

criterion = pytest.mark.criterion


@criterion("3.1-health")
def test_s3_answers_liveness_and_readiness(stack, evidence):
    for kind in ("live", "ready"):
        response = stack.s3.probe(kind)
        evidence(f"{kind}: GET {PROBES[stack.s3.flavor][kind]} -> HTTP {response.status_code} ({stack.s3.flavor})")
        assert response.status_code == 200, f"{kind} probe {response.url} answered HTTP {response.status_code}"


@criterion("3.1-buckets")
def test_every_configured_bucket_exists(stack, values, evidence):
    configured = [b.name for b in values.minio_buckets]
    present = set(stack.s3.bucket_names())
    missing = [name for name in configured if name not in present]
    evidence(f"configured: {', '.join(configured)}; present on the server: {', '.join(sorted(present)) or 'none'}")
    assert not missing, f"configured buckets missing on the server: {', '.join(missing)}"


@criterion("3.1-buckets")
def test_bucket_creation_is_automatic(stack, values, evidence):
    """The bucket step of the manifests ran when the stack was provisioned (the Job on Kubernetes:
    test_k8s_31_minio.py), for every configured bucket."""
    if not stack.provisioned:
        evidence.out_of_scope("the stack was found running: how its buckets were made is not observable here "
                              "(a Kubernetes target proves the bucket Job completed)")
    log = stack.logs.get("create-buckets")
    if log is None and stack.k8s is not None:
        evidence.out_of_scope("on Kubernetes the bucket Job proves it (3.1-buckets, scope k8s)")
    assert log is not None and log.exists(), "no bucket-creation step ran when the stack was provisioned"
    done = {line.split(":")[0].removeprefix("bucket ").strip() for line in log.read_text().splitlines()
            if line.endswith((": created", ": exists"))}
    evidence(f"the manifests' bucket step ({log.name}) created or found: {', '.join(sorted(done)) or 'none'}")
    missing = [b.name for b in values.minio_buckets if b.name not in done]
    assert not missing, f"the bucket step did not create {', '.join(missing)}"


@criterion("3.1-policies")
def test_each_bucket_allows_exactly_its_policy(stack, values, evidence):
    wrong = []
    for bucket in values.minio_buckets:
        b = stack.s3.bucket(bucket.name)
        if not b.exists:  # a missing bucket has no policy at all: not the configured one
            evidence(f"{bucket.name}: MISSING")
            wrong.append(f"{bucket.name} should be {bucket.policy}, but the bucket does not exist")
            continue
        access = b.anonymous_access
        evidence(f"{bucket.name} (policy {bucket.policy}): anonymous {access}")
        if not b.allows_exactly(bucket.policy):
            wrong.append(f"{bucket.name} should be {bucket.policy}, anonymous {access}")
    evidence(f"anonymous list, get, put and delete tried under the key prefixes {', '.join(PROBE_PREFIXES)}")
    assert not wrong, "; ".join(wrong)


@criterion("3.1-roundtrip")
def test_upload_list_download_delete_roundtrip(stack, evidence):
    s3 = stack.s3.client
    bucket = f"acceptance-scratch-{uuid.uuid4().hex[:12]}"
    payload = os.urandom(3 * 1024 * 1024 + 17)  # over the 1 MiB boundary some servers chunk at
    digest = hashlib.sha256(payload).hexdigest()
    s3.make_bucket(bucket)
    try:
        stack.s3.put(bucket, "roundtrip/blob.bin", payload)
        listed = stack.s3.bucket(bucket).keys()
        assert listed == ["roundtrip/blob.bin"], f"listing shows {listed}"
        back = stack.s3.read(bucket, "roundtrip/blob.bin")
        assert hashlib.sha256(back).hexdigest() == digest, "downloaded bytes differ from the upload"
        s3.remove_object(bucket, "roundtrip/blob.bin")
        assert not stack.s3.bucket(bucket).keys(), "object still listed after delete"
    finally:
        for key in stack.s3.bucket(bucket).keys():
            s3.remove_object(bucket, key)
        s3.remove_bucket(bucket)
    assert bucket not in stack.s3.bucket_names(), f"scratch bucket {bucket} still exists after delete"
    evidence(f"bucket {bucket} created; {len(payload)} bytes uploaded, listed, downloaded with sha256 {digest[:16]}..., "
             "object and bucket deleted")


@criterion("3.1-auth")
def test_wrong_credentials_are_rejected(stack, values, evidence):
    wrong_secret = stack.s3.rejects(values.minio_access_key, values.minio_secret_key + "-wrong")
    unknown_key = stack.s3.rejects("acceptance-unknown-key", "not-a-secret-at-all")
    evidence(f"right key, wrong secret -> {wrong_secret or 'ACCEPTED'}; unknown key -> {unknown_key or 'ACCEPTED'}")
    assert wrong_secret, "a wrong secret key was accepted"
    assert unknown_key, "an unknown access key was accepted"
    assert stack.s3.rejects(values.minio_access_key, values.minio_secret_key) is None, \
        "the configured credentials were refused (the comparison proves nothing)"
