"""CLOUD-3.2 PostgreSQL: the service criteria, over SQL and with the PostgreSQL client tools."""

import tempfile
import uuid
from pathlib import Path

import pytest

from fixtures.capabilities.postgres import MLFLOW_CORE_TABLES, configured_dump_flags, size_bytes

criterion = pytest.mark.criterion


@criterion("3.2-version")
def test_server_reports_the_configured_major_version(stack, values, evidence):
    evidence(f"SELECT version() -> {stack.postgres.version}")
    assert stack.postgres.major_version == values.postgresql_major, (
        f"server is PostgreSQL {stack.postgres.server_version}, configured postgresql_version is "
        f"{values.postgresql_version}")


@criterion("3.2-settings")
def test_tuning_settings_are_applied(stack, values, evidence):
    pg = stack.postgres
    observed = {name: pg.setting(name) for name in ("max_connections", "shared_buffers", "effective_cache_size")}
    evidence("SHOW -> " + ", ".join(f"{k}={v}" for k, v in observed.items()))
    wrong = []
    if int(observed["max_connections"]) != values.postgresql_max_connections:
        wrong.append(f"max_connections={observed['max_connections']}, configured {values.postgresql_max_connections}")
    for name, configured in (("shared_buffers", values.postgresql_shared_buffers),
                             ("effective_cache_size", values.postgresql_effective_cache_size)):
        if pg.setting_bytes(name) != size_bytes(configured):
            wrong.append(f"{name}={observed[name]}, configured {configured}")
    assert not wrong, "; ".join(wrong)


@criterion("3.2-database")
def test_database_and_user_with_password_auth(stack, values, evidence):
    pg = stack.postgres
    assert values.postgresql_database in pg.databases(), f"database {values.postgresql_database} does not exist"
    current = pg.scalar("SELECT current_user || '@' || current_database()")
    refused = pg.login_error(values.postgresql_user, values.postgresql_password + "-wrong")
    evidence(f"connected as {current} with the configured password; a wrong password -> "
             f"{refused or 'ACCEPTED'}")
    assert current == f"{values.postgresql_user}@{values.postgresql_database}"
    assert refused, "a wrong password was accepted: the server does not enforce password authentication"


@criterion("3.2-schema")
def test_mlflow_schema_at_the_deployed_alembic_head(stack, mlflow_database, evidence):
    tables = set(stack.postgres.tables())
    missing = [t for t in MLFLOW_CORE_TABLES if t not in tables]
    evidence(f"{len(tables)} tables in {stack.postgres.database}; core tables missing: {', '.join(missing) or 'none'}")
    assert not missing, f"MLflow core tables missing: {', '.join(missing)}"
    revision = stack.postgres.scalar("SELECT version_num FROM alembic_version")
    head = stack.mlflow.alembic_head
    evidence(f"alembic_version={revision}; head of MLflow {stack.mlflow.version} is {head}")
    assert revision == head, f"schema at revision {revision}, MLflow {stack.mlflow.version} expects {head}"


@criterion("3.2-backup", scope="service")
def test_the_configured_backup_restores_with_identical_row_counts(stack, values, mlflow_database, evidence):
    """The manifests' own pg_dump command, run against the stack now, restored into a scratch database."""
    pg = mlflow_database
    if not {"pg_dump", "pg_restore"} <= set(stack.pg_tools):
        pytest.skip("pg_dump/pg_restore not found on this machine: the backup was not run (install the "
                    "PostgreSQL client)")
    if not pg.may_create_database:
        pytest.skip(f"the restore needs a scratch database: role {pg.user} has no CREATEDB and no admin connection "
                    "was given (--postgres-admin-dsn or ACCEPTANCE_POSTGRES_ADMIN_DSN)")
    flags, command = configured_dump_flags(values)
    evidence(f"the manifests' backup CronJob runs: {command}")
    source_counts = pg.row_counts()
    assert sum(source_counts.values()) > 0, (
        f"database {pg.database} holds no rows: a backup of nothing proves nothing (tables: {len(source_counts)})")
    with tempfile.TemporaryDirectory(prefix="acceptance-backup-") as folder:
        dump = Path(folder) / "backup.dump"
        pg.dump(dump, stack.pg_tools["pg_dump"], flags)
        dump_size = dump.stat().st_size
        _restore_and_compare(pg, dump, stack.pg_tools["pg_restore"], source_counts, dump_size, evidence)


def _restore_and_compare(pg, dump, pg_restore, source_counts, dump_size, evidence):
    scratch = f"acceptance_restore_{uuid.uuid4().hex[:8]}"
    pg.create_scratch_database(scratch)
    try:
        restored = pg.restore(dump, scratch, pg_restore)
        assert restored.returncode == 0, f"pg_restore failed: {restored.stderr.strip()[-800:]}"
        restored_counts = pg.row_counts(scratch)
    finally:
        pg.drop_database(scratch)
    evidence(f"pg_dump of {pg.database} ({dump_size} bytes, {len(source_counts)} tables, "
             f"{sum(source_counts.values())} rows) restored into {scratch}: "
             f"{sum(restored_counts.values())} rows")
    differing = {t: (n, restored_counts.get(t)) for t, n in source_counts.items() if restored_counts.get(t) != n}
    assert not differing, f"row counts differ after restore (table: source, restored): {differing}"
