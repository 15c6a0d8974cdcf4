"""Where an MLflow artifact URI lands in the object store.

Direct mode: `s3://BUCKET/KEY`. Proxied mode (`mlflow server --serve-artifacts`): the client sees
`mlflow-artifacts:/PATH` and the server writes to its artifacts destination, the configured
`mlflow_artifact_root` (s3://BUCKET[/PREFIX]), under PATH. Either passes when the bytes are in
the configured bucket.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def object_location(artifact_root: str, uri: str) -> tuple[str, str] | None:
    """(bucket, key) of `uri` in the object store, or None when it is not stored there."""
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        return parts.netloc, parts.path.lstrip("/")
    if parts.scheme == "mlflow-artifacts":
        root = urlsplit(artifact_root)
        prefix = root.path.strip("/")
        path = parts.path.lstrip("/")
        return root.netloc, f"{prefix}/{path}" if prefix else path
    return None


def describe(artifact_root: str, uri: str) -> str:
    found = object_location(artifact_root, uri)
    if found is None:
        return f"{uri} (not in the object store)"
    mode = "proxied by the tracking server" if uri.startswith("mlflow-artifacts:") else "direct"
    return f"{uri} -> s3://{found[0]}/{found[1]} ({mode})"
