"""3.2-backup's two halves share this: which backup is configured, whether a restore can be observed
here, and the restore of a dump into a scratch database with its row counts compared."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from mlops_acceptance.fixtures.capabilities.postgres import backup_cronjobs, read_archive

# Said by the service half where the target runs no Kubernetes (local, external): the row is partial.
NOT_SCHEDULED_HERE = ("the scheduled backup is a Kubernetes object (a CronJob) that this target does not run: "
                      "its pg_dump flags were read from the manifests and run from this machine; the node, kind "
                      "or cluster target proves that the CronJob's own Job dumps, uploads and restores")

_S3_URL = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])")


def configured_backup(stack, values, manifests: str | None) -> tuple[str, list[str] | None]:
    """(where it was read, the pg_dump command of the backup CronJob): on a Kubernetes target the CronJob as
    the API server holds it (what was applied from the manifests under test), elsewhere the CronJob of the
    manifests under test (--manifests DIR, else the suite's own manifests/) rendered with the values."""
    if stack.k8s is not None:
        ns = values.postgresql_namespace
        found = backup_cronjobs(cj.raw for cj in stack.k8s.cronjobs(ns))
        where = f"namespace {ns}"
    else:
        from mlops_acceptance.fixtures.kube.manifests import render_manifests
        from mlops_acceptance.fixtures.render import MANIFESTS

        folder = Path(manifests).resolve() if manifests else MANIFESTS
        found = backup_cronjobs(render_manifests(values, folder))
        where = f"the manifests {folder}"
    if not found:
        return where, None
    cronjob, command = found[0]
    return f"CronJob {cronjob['metadata']['name']} of {where}", command


def restore_gap(stack, pg, tools=("pg_dump", "pg_restore")) -> str | None:
    """Why a restore cannot be observed from this machine (the row is then partial), or None."""
    missing = [t for t in tools if t not in stack.pg_tools]
    if missing:
        return (f"{'/'.join(missing)} not found on this machine: the backup was not restored (install the "
                "PostgreSQL client of the server's major)")
    if not pg.may_create_database:
        return (f"the restore needs a scratch database: role {pg.user} has no CREATEDB and no admin connection "
                "was given (--postgres-admin-dsn or ACCEPTANCE_POSTGRES_ADMIN_DSN)")
    return None


def source_counts(pg) -> dict[str, int]:
    """Row counts of the configured database; a database without rows proves nothing when restored."""
    counts = pg.row_counts()
    assert sum(counts.values()) > 0, (
        f"database {pg.database} holds no rows: a backup of nothing proves nothing (tables: {len(counts)})")
    return counts


def check_archive(dump: Path, pg_restore: str, database: str, what: str, evidence) -> None:
    """The dump is an archive pg_restore reads, of `database`: fails on an empty, truncated or foreign
    file; a gap (skip) when only a newer pg_restore than this machine's could read it."""
    archive = read_archive(dump, pg_restore)
    if archive.too_new:
        pytest.skip(f"{what}: this machine's pg_restore ({pg_restore}) is older than the pg_dump that wrote it "
                    f"({archive.error}): install the PostgreSQL client of the server's major to restore it")
    if archive.plain:
        pytest.skip(f"{what} is a plain SQL script (pg_dump --format=plain): this check restores archives with "
                    "pg_restore, so it was not restored")
    assert archive.readable, f"{what} ({dump.stat().st_size} bytes) is not a dump pg_restore can read: {archive.error}"
    evidence(f"{what}: {archive.summary()}")
    dumped = archive.header.get("dbname")
    assert dumped == database, f"{what} is a dump of database {dumped!r}, not of the configured {database!r}"


def restore_and_compare(pg, dump: Path, pg_restore: str, counts: dict[str, int], what: str, evidence) -> None:
    """Restore `dump` into a fresh scratch database (dropped afterwards) and compare every table's rows
    with `counts`, the source database's when the dump was taken."""
    scratch = f"acceptance_restore_{uuid.uuid4().hex[:8]}"
    pg.create_scratch_database(scratch)
    try:
        restored = pg.restore(dump, scratch, pg_restore)
        assert restored.returncode == 0, f"pg_restore of {what} failed: {restored.stderr.strip()[-800:]}"
        restored_counts = pg.row_counts(scratch)
    finally:
        pg.drop_database(scratch)
    evidence(f"{what} ({dump.stat().st_size} bytes) restored into {scratch}: {len(restored_counts)} tables, "
             f"{sum(restored_counts.values())} rows; {pg.database} had {len(counts)} tables, "
             f"{sum(counts.values())} rows when the dump was taken")
    differing = {t: (n, restored_counts.get(t)) for t, n in counts.items() if restored_counts.get(t) != n}
    assert not differing, f"row counts differ after restore (table: source, restored): {differing}"


# --- what the CronJob's own Job uploaded -----------------------------------------------------------

def named_buckets(cronjob: dict) -> list[str]:
    """Buckets an s3:// URL in the CronJob's spec names (its upload script, its env), in order."""
    return list(dict.fromkeys(_S3_URL.findall(json.dumps(cronjob.get("spec") or {}))))


def store_snapshot(s3, buckets: list[str] | None) -> dict[str, dict[str, tuple[str, int, float]]]:
    """bucket -> key -> (etag, size, modified): of `buckets`, or of every bucket when None."""
    return {b: s3.listing(b) for b in (buckets if buckets is not None else s3.bucket_names())}


def new_objects(s3, before: dict, buckets: list[str] | None) -> list[tuple[str, str, int]]:
    """(bucket, key, size) of each object that is new or changed since `before`, the newest last (a bucket
    made since counts when every bucket was watched)."""
    after = store_snapshot(s3, buckets)
    found = [(modified, b, key, size) for b, objects in after.items()
             for key, (etag, size, modified) in objects.items() if before.get(b, {}).get(key, (None,))[0] != etag]
    return [(b, key, size) for _modified, b, key, size in sorted(found)]
