"""CLOUD-3.2 PostgreSQL: the Kubernetes criteria through the Kubernetes API."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from mlops_acceptance.fixtures.kube.client import dig
from mlops_acceptance.suites.backup_helpers import (check_archive, named_buckets, new_objects, restore_and_compare, restore_gap,
                                   source_counts, store_snapshot)
from mlops_acceptance.suites.k8s_helpers import check_claim, check_service, run_cronjob_once, running_pods

criterion = pytest.mark.criterion

_CRON_FIELD = r"(\*|\d+|\d+-\d+|\*/\d+|\d+(,\d+)+)(/\d+)?"
_CRON = re.compile(rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$")


@criterion("3.2-pods", scope="k8s")
def test_postgresql_statefulset_ready(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.postgresql_namespace
    sts = k8s.statefulset("postgresql", ns)
    pod = k8s.pod("postgresql-0", ns)
    evidence(f"{sts.summary()}; " + (pod.summary() if pod.exists else "pod postgresql-0 missing"))
    assert sts.exists, f"StatefulSet {ns}/postgresql is missing"
    assert sts.replicas >= 1 and sts.ready_replicas == sts.replicas, (
        f"{sts.ready_replicas}/{sts.replicas} replicas ready")
    assert pod.exists, "pod postgresql-0 is missing"
    assert pod.phase == "Running" and pod.ready, f"postgresql-0 is {pod.phase}, ready={pod.ready}"


# Where the postgres image keeps its data unless PGDATA says otherwise.
IMAGE_PGDATA = "/var/lib/postgresql/data"


@criterion("3.2-storage", scope="k8s")
def test_postgresql_claim_template_bound(stack, evidence):
    """The StatefulSet's claims are Bound, of the configured size and class, and hold PostgreSQL's data:
    read from the pods themselves (the volume that holds the data directory in each pod's own spec is a
    claim of the template) and from the running server (its live `data_directory` lies on that claim's
    mount, not on the container's own filesystem)."""
    v, k8s = stack.values, stack.k8s
    ns = v.postgresql_namespace
    sts = k8s.statefulset("postgresql", ns)
    templates = sts.volume_claim_templates
    shown = [(t["metadata"]["name"], dig(t, "spec.storageClassName"), dig(t, "spec.resources.requests.storage"))
             for t in templates]
    evidence(f"volumeClaimTemplates (name, class, size): {shown}")
    assert templates, f"StatefulSet {ns}/postgresql has no volumeClaimTemplate"
    pods = sts.pods()
    assert pods, f"no pod of StatefulSet {ns}/postgresql"
    live = _live_data_directory(stack, evidence)
    held = {}
    for pod in pods:
        container = pod.template.container("postgresql") or pod.template.container()
        declared = container.env_sources().get("PGDATA", ("literal", IMAGE_PGDATA))
        path = live or (declared[1] if declared[0] == "literal" else IMAGE_PGDATA)
        held[pod.name] = (container.name, path, *pod.template.claim_holding(container, path))
    evidence("; ".join(f"pod {name}: data directory {path} held by " + (f"claim {claim} mounted at {mount}" if claim
                                                                       else f"no claim (mount {mount})")
                       for name, (_c, path, claim, mount) in held.items()))
    missing = {name: (path, mount) for name, (_c, path, claim, mount) in held.items() if not claim}
    assert not missing, ("no PersistentVolumeClaim holds PostgreSQL's data directory in pod(s) " + ", ".join(
        f"{name} ({'live data_directory' if live else 'PGDATA'} {path!r}, held by "
        f"{'the volume mounted at ' + mount if mount else 'the container filesystem'})"
        for name, (path, mount) in missing.items()))
    names = sts.pvc_names()
    foreign = sorted({claim for *_x, claim, _m in held.values()} - set(names))
    assert not foreign, f"the data directory is on claim(s) {foreign}, not the volumeClaimTemplate's {names}"
    for name in names:
        check_claim(k8s.pvc(name, ns), v.postgresql_storage_size, v.postgresql_storage_class, "postgresql", evidence,
                    getattr(stack, "values_replaced", {}).get("postgresql_storage_class"))
    running_pods(pods, next(iter(held.values()))[0], f"StatefulSet {ns}/postgresql")


def _live_data_directory(stack, evidence) -> str | None:
    """The running server's data directory (None where it cannot be asked: kwok's database is not the pod's)."""
    if stack.k8s.simulated:
        evidence(f"the server's data_directory not read ({stack.k8s.simulated}): PGDATA from the pod's spec")
        return None
    try:
        found = stack.postgres.data_directory
    except Exception as exc:  # noqa: BLE001 - no superuser: the spec's PGDATA is all there is
        evidence(f"SHOW data_directory failed ({type(exc).__name__}: {str(exc).strip()[:200]})", proof="declared",
                 note="where the data lies was read from the pod's PGDATA only: a superuser (or "
                      "pg_read_all_settings) connection reads the live data_directory")
        return None
    evidence(f"the running server: SHOW data_directory -> {found}")
    return found


@criterion("3.2-service", scope="k8s")
def test_postgresql_service_with_ready_endpoints(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.postgresql_namespace
    svc = k8s.service("postgresql", ns)
    pods = k8s.pods(ns, "app=postgresql")
    check_service(svc, 5432, pods, "postgresql", evidence)


@criterion("3.2-backup", scope="k8s")
def test_backup_cronjob_scheduled(stack, evidence):
    """The backup is configured: a scheduled CronJob runs pg_dump of the database (the CronJob as the API
    server holds it; test_backup_job_from_the_cronjob_uploads_a_dump_that_restores runs it and restores its dump)."""
    v, k8s = stack.values, stack.k8s
    ns = v.postgresql_namespace
    cronjobs = k8s.cronjobs(ns)
    dumping = []
    for cj in cronjobs:
        tmpl = cj.template
        commands = [" ".join(c.command + c.args) for c in tmpl.containers + tmpl.init_containers]
        if any("pg_dump" in c or "pg_dumpall" in c or "pg_basebackup" in c for c in commands):
            dumping.append((cj, commands))
    evidence(f"CronJobs in {ns}: " + (", ".join(f"{cj.name} schedule={cj.schedule!r} suspend={cj.suspend}"
                                                for cj in cronjobs) or "none"))
    assert dumping, f"no CronJob in {ns} runs pg_dump (or another PostgreSQL backup tool)"
    cj, commands = dumping[0]
    assert cj.schedule and _CRON.match(cj.schedule.strip()), f"CronJob {cj.name} schedule {cj.schedule!r} is not a cron schedule"
    assert not cj.suspend, f"CronJob {cj.name} is suspended"
    dump = next(c for c in commands if "pg_dump" in c or "pg_dumpall" in c or "pg_basebackup" in c)
    evidence(f"{cj.name} runs: {dump}")
    assert v.postgresql_database in dump or "pg_dumpall" in dump or "pg_basebackup" in dump, (
        f"the backup does not name database {v.postgresql_database}")
    literal = [(c.name, k) for c in cj.template.containers + cj.template.init_containers
               for k, s in c.env_sources().items() if s[0] == "literal" and s[1] in v.secrets()]
    assert not literal, f"the backup passes credentials as literal env values: {literal}"


@criterion("3.2-backup", scope="k8s")
def test_backup_job_from_the_cronjob_uploads_a_dump_that_restores(stack, mlflow_database, evidence):
    """The configured backup works in the cluster: a Job made from the CronJob's template (as
    `kubectl create job --from=cronjob/...`) runs to completion, and the dump it uploaded (the newest new
    object in the bucket its spec names, else in any bucket of the object store), fetched through the S3
    API, restores into a scratch database with the row counts the database had when the Job started."""
    v, k8s, pg = stack.values, stack.k8s, mlflow_database
    ns = v.postgresql_namespace
    cronjobs = [cj for cj in k8s.cronjobs(ns) if any("pg_dump" in " ".join(c.command + c.args)
                                                     for c in cj.template.containers + cj.template.init_containers)]
    assert cronjobs, f"no CronJob in {ns} runs pg_dump"
    cronjob = cronjobs[0]
    buckets = named_buckets(cronjob.raw) or None  # None: watch every bucket
    if not k8s.simulated:  # kwok runs no container: nothing is uploaded, nothing to compare
        before = store_snapshot(stack.s3, buckets)
        # MLflow's tables change only when a check writes, and none runs beside this one.
        counts = source_counts(pg)
    job = run_cronjob_once(k8s, cronjob, timeout=v.timeouts.model)
    evidence(f"Job {ns}/{job['metadata']['name']} from CronJob {cronjob.name}: succeeded "
             f"{dig(job, 'status.succeeded', 0)}, failed {dig(job, 'status.failed', 0)}")
    assert dig(job, "status.succeeded", 0) >= 1, f"the backup Job did not complete: {dig(job, 'status.conditions')}"
    if k8s.simulated:
        evidence.proof("simulated", f"{k8s.simulated}: the Job dumped and uploaded nothing; a real cluster (node, "
                                    "kind or cluster target) restores what it uploads")
        return
    watched = ", ".join(buckets) if buckets else "every bucket"
    uploaded = new_objects(stack.s3, before, buckets)
    if not uploaded:
        pytest.skip(f"the backup Job completed, but no new object appeared in the object store ({watched}): "
                    "where its dump went is not observable here, so it was not restored")
    bucket, key, size = uploaded[-1]
    what = f"s3://{bucket}/{key}"
    evidence(f"the Job uploaded {what} ({size} bytes), the newest of {len(uploaded)} new object(s) in {watched}")
    try:
        gap = restore_gap(stack, pg, tools=("pg_restore",))
        if gap:
            pytest.skip(gap)
        with tempfile.TemporaryDirectory(prefix="acceptance-backup-") as folder:
            dump = Path(folder) / Path(key).name
            stack.s3.download(bucket, key, dump)
            check_archive(dump, stack.pg_tools["pg_restore"], v.postgresql_database, what, evidence)
            restore_and_compare(pg, dump, stack.pg_tools["pg_restore"], counts, what, evidence)
    finally:
        stack.s3.remove(bucket, key)  # made by this check's Job
