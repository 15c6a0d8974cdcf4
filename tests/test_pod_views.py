"""The views the proof of 3.1-storage, 3.2-storage, 3.1-credentials and 3.3-config reads from a pod's own
spec and status (fixtures/kube/objects.py): which claim holds a path, where a variable comes from
(envFrom included), whether a container runs. Pure: no cluster (the checks on real pods:
tests/test_node_stack.py)."""

from __future__ import annotations

from mlops_acceptance.fixtures.kube.objects import Container, Pod, PodTemplate
from mlops_acceptance.suites.test_k8s_31_minio import s3_answer


def _template(mounts, volumes) -> PodTemplate:
    return PodTemplate({"spec": {"containers": [{"name": "minio", "volumeMounts": mounts}], "volumes": volumes}})


CLAIM = {"name": "data", "persistentVolumeClaim": {"claimName": "minio-data"}}


def test_the_claim_mounted_at_the_data_path_holds_it():
    t = _template([{"name": "data", "mountPath": "/data"}], [CLAIM])
    assert t.claim_holding(t.container(), "/data") == ("minio-data", "/data")
    assert t.claim_holding(t.container(), "/data/seaweedfs") == ("minio-data", "/data")


def test_a_deeper_emptydir_hides_the_claim_above_it():
    t = _template([{"name": "data", "mountPath": "/data"}, {"name": "scratch", "mountPath": "/data/pgdata"}],
                  [CLAIM, {"name": "scratch", "emptyDir": {}}])
    assert t.claim_holding(t.container(), "/data/pgdata") == (None, "/data/pgdata")


def test_a_claim_mounted_beside_the_data_path_does_not_hold_it():
    t = _template([{"name": "data", "mountPath": "/claim"}, {"name": "x", "mountPath": "/dat"}],
                  [CLAIM, {"name": "x", "emptyDir": {}}])
    assert t.claim_holding(t.container(), "/data") == (None, None)  # /dat is not a parent of /data
    assert t.claim_holding(t.container(), None) == (None, None)


def test_env_from_brings_every_key_with_its_prefix_and_env_wins():
    c = Container({"name": "mlflow",
                   "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "s"}, "prefix": "AWS_"}],
                   "env": [{"name": "AWS_REGION", "value": "us-east-1"}]})
    keys = {("configmap", "cfg"): ["AWS_SECRET_ACCESS_KEY", "HOST"], ("secret", "s"): ["SECRET_ACCESS_KEY", "REGION"]}
    sources = c.env_sources(lambda kind, name: keys[(kind, name)])
    assert sources["AWS_SECRET_ACCESS_KEY"] == ("secret", "s", "SECRET_ACCESS_KEY")  # the later envFrom wins
    assert sources["HOST"] == ("configmap", "cfg", "HOST")
    assert sources["AWS_REGION"] == ("literal", "us-east-1")  # env over envFrom
    assert "HOST" not in c.env_sources()  # without the keys, envFrom is not resolved (as before)


def test_a_container_runs_only_when_its_status_says_so():
    pod = Pod(None, "p", "ns", {"status": {"phase": "Running", "containerStatuses": [
        {"name": "a", "state": {"running": {"startedAt": "x"}}},
        {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})
    assert pod.running("a") and not pod.running("b") and not pod.running("c")


class _Response:
    def __init__(self, status_code, text):
        self.status_code, self.text = status_code, text


def test_only_the_s3_server_s_own_answers_count_through_the_controller():
    assert s3_answer(_Response(403, "<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>"))
    assert s3_answer(_Response(404, "<Error><Code>NoSuchBucket</Code></Error>"))
    assert not s3_answer(_Response(404, "404 page not found\n"))  # the controller: no route
    assert not s3_answer(_Response(502, "Bad Gateway"))  # the controller: the backend does not answer
