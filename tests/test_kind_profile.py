"""The kind profile (`tox -e kind`: the default values, nothing set) rendered and validated against what a
kind cluster is: its only StorageClass is `standard` (the default one), its pods reach PyPI, and the bucket
Job's image is the stock `python:3.12-slim` (no MinIO SDK in it).

- with the StorageClass the kind target chooses (fixtures/kube/storage.py), every claim names `standard`
  and the objects pass offline validation (schemas + lint) with no error;
- the bucket Job's command provides MinIO's SDK where the image lacks it: its start, run here in a fresh
  Python without `minio`, installs it from PyPI; in an image that carries it it installs nothing; and in
  the node target's own s3-client image (its pods reach no network) it starts inside a network
  namespace with no network at all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.kube import storage
from mlops_acceptance.fixtures.kube.manifests import claims_of, render_manifests
from mlops_acceptance.fixtures.kube.validate import validate_objects

KIND_STORAGE_CLASSES = [{"metadata": {"name": "standard", "creationTimestamp": "2026-01-01T00:00:00Z",
                                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}]


@pytest.fixture(scope="module")
def kind_profile():
    values = load_values()  # what `tox -e kind` runs with
    choice = storage.choose(values, KIND_STORAGE_CLASSES)
    assert not choice.problems
    values = values.model_copy(update=choice.used)
    return values, render_manifests(values)


def test_kind_profile_claims_use_kinds_class_and_validate(kind_profile):
    values, objects = kind_profile
    assert load_values().minio_storage_class == "local-path", "the defaults changed: revisit this profile"
    classes = {c["name"]: c["spec"].get("storageClassName") for c in claims_of(objects)}
    assert classes and set(classes.values()) == {"standard"}, classes
    errors = [str(f) for f in validate_objects(objects, values) if f.severity == "error"]
    assert not errors, errors


def bucket_job_start(objects, image: str = "python:3.12-slim") -> str:
    """The bucket Job's shell script up to its wait for the S3 server (what runs before the script)."""
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "minio-create-buckets")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    assert container["command"][:2] == ["sh", "-c"]
    script = container["command"][2]
    start, _, rest = script.partition("# The S3 server may still be starting")
    assert rest and "exec python3 /scripts/create_buckets.py" in rest, script
    return start


def run_start(start: str, venv: Path, **env) -> subprocess.CompletedProcess:
    check = 'python3 -c "import minio, sys; print(minio.__file__)"\n'
    path = f"{venv / 'bin'}:/usr/bin:/bin"
    return subprocess.run(["sh", "-c", start + check], capture_output=True, text=True, timeout=300,
                          env={"PATH": path, "HOME": str(venv), **env})


def test_bucket_job_installs_the_sdk_where_the_image_lacks_it(kind_profile, tmp_path):
    _values, objects = kind_profile
    start = bucket_job_start(objects)
    venv = tmp_path / "python-slim"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    missing = subprocess.run([str(venv / "bin" / "python3"), "-c", "import minio"], capture_output=True)
    assert missing.returncode != 0, "the fresh Python already has minio"
    done = run_start(start, venv, PIP_DEFAULT_TIMEOUT="60")
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(venv) in done.stdout, done.stdout
    # The SDK it installed is the one the script is written for (create_buckets.py: Minio, S3Error).
    api = subprocess.run([str(venv / "bin" / "python3"), "-c", "from minio import Minio; from minio.error import "
                          "S3Error; import minio; print(minio.__version__)"], capture_output=True, text=True)
    assert api.returncode == 0 and api.stdout.startswith("7."), api.stdout + api.stderr


def test_bucket_job_installs_nothing_where_the_image_carries_the_sdk(kind_profile, tmp_path):
    _values, objects = kind_profile
    start = bucket_job_start(objects)
    venv = tmp_path / "s3-client"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip_log = tmp_path / "pip-ran"
    (venv / "bin" / "pip").write_text(f"#!/bin/sh\ntouch {pip_log}\nexit 1\n")  # any pip run would show
    done = run_start(start, venv, PYTHONPATH=str(Path(__import__("minio").__file__).parent.parent))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not pip_log.exists(), "pip ran although the image carries minio"


def test_the_node_images_bucket_job_starts_without_any_network(tmp_path):
    """The node target's pods reach no network: its s3-client image (built by fixtures/node, cached) runs
    the rendered Job's start in a network namespace of its own, and finds the SDK it carries."""
    import json
    import os
    import shutil
    import tarfile

    from mlops_acceptance.fixtures.node.images import archive_path
    from mlops_acceptance.fixtures.node.stack_images import image_values, s3_client_image

    archive = archive_path(s3_client_image())
    if os.geteuid() != 0 or not shutil.which("unshare") or not archive.is_file():
        pytest.skip(f"needs root, `unshare` and the node's cached s3-client image ({archive}: python -m mlops_acceptance.fixtures.node "
                    "prebuild builds it)")
    values = load_values()
    values = values.model_copy(update=image_values(values))
    start = bucket_job_start(render_manifests(values), image=values.s3_client_image)
    rootfs = tmp_path / "rootfs"
    with tarfile.open(archive) as image:
        (manifest,) = json.load(image.extractfile("manifest.json"))
        config = json.load(image.extractfile(manifest["Config"]))
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=image.extractfile(layer)) as files:
                kwargs = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}  # Python >= 3.11.4
                files.extractall(rootfs, **kwargs)
    (rootfs / "start.sh").write_text(start + 'python3 -c "import minio; print(minio.__version__)"\n')
    env = [e for e in config["config"].get("Env") or [] if e.startswith("PATH=")]
    done = subprocess.run(["unshare", "--net", "env", "-i", *env, "chroot", str(rootfs), "sh", "/start.sh"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("7."), done.stdout + done.stderr
