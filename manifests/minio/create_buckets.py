"""Create the configured buckets and apply their anonymous-access policies.

One script for every target: the MinIO bucket Job runs it on Kubernetes (from
a ConfigMap; the Job pip-installs MinIO's Python SDK, `minio`, first when its
image lacks it) and the embedded target runs it at provisioning. Input: S3_ENDPOINT (http(s)://host:port),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and BUCKETS (JSON: [{"name": ...,
"policy": private|download|upload|public}]).
Idempotent: an existing bucket is kept, its policy set to what is configured.
"""

import json
import os
import sys
from urllib.parse import urlsplit

try:
    from minio import Minio
    from minio.error import S3Error
except ImportError:  # the Job installs the SDK before it runs this; without it main says so in one line
    Minio = S3Error = None

# MinIO's `mc anonymous set` vocabulary, as S3 bucket-policy statements.
_BUCKET_ACTIONS = {
    "download": ["s3:GetBucketLocation", "s3:ListBucket"],
    "upload": ["s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
}
_OBJECT_ACTIONS = {
    "download": ["s3:GetObject"],
    "upload": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
}


def policy_document(bucket: str, policy: str):
    """The bucket policy for `policy`, or None for private (no anonymous access at all)."""
    grants = {"download": ["download"], "upload": ["upload"], "public": ["download", "upload"]}.get(policy, [])
    if not grants:
        return None
    bucket_actions = sorted({a for g in grants for a in _BUCKET_ACTIONS[g]})
    object_actions = sorted({a for g in grants for a in _OBJECT_ACTIONS[g]})
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": bucket_actions,
             "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": object_actions,
             "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        ],
    }


def apply(client, buckets):
    for bucket in buckets:
        name, policy = bucket["name"], bucket.get("policy", "private")
        try:
            client.make_bucket(name)
            print(f"bucket {name}: created")
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            print(f"bucket {name}: exists")
        document = policy_document(name, policy)
        if document is None:
            try:
                client.delete_bucket_policy(name)
            except S3Error as exc:
                if exc.code not in ("NoSuchBucketPolicy", "NoSuchBucket"):
                    raise
        else:
            client.set_bucket_policy(name, json.dumps(document))
        print(f"bucket {name}: policy {policy}")


def client_from_env():
    endpoint = urlsplit(os.environ["S3_ENDPOINT"])
    return Minio(endpoint.netloc, access_key=os.environ["AWS_ACCESS_KEY_ID"],
                 secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], secure=endpoint.scheme == "https",
                 region=os.environ.get("AWS_REGION", "us-east-1"))


if __name__ == "__main__":
    if Minio is None:
        sys.exit(f"create_buckets.py: the `minio` Python SDK is not installed in this image ({sys.executable})")
    apply(client_from_env(), json.loads(os.environ["BUCKETS"]))
    sys.exit(0)
