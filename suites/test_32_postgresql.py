"""CLOUD-3.2 PostgreSQL: the service criteria, over SQL and with the PostgreSQL client tools."""

import tempfile
from pathlib import Path

import pytest

from mlops_acceptance.fixtures.capabilities.postgres import MLFLOW_CORE_TABLES, dump_flags, size_bytes
from mlops_acceptance.suites.backup_helpers import (NOT_SCHEDULED_HERE, check_archive, configured_backup, restore_and_compare, restore_gap,
                                    source_counts)

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
def test_the_configured_backup_restores_with_identical_row_counts(stack, values, mlflow_database, evidence,
                                                                   pytestconfig):
    """The pg_dump command of the backup CronJob under test (the applied one on Kubernetes, else the one of
    --manifests DIR or of the suite's manifests), run against the stack now, restored into a scratch database.
    Where the target runs no Kubernetes, the schedule itself is only declared: the row is partial."""
    pg = mlflow_database
    where, command = configured_backup(stack, values, pytestconfig.getoption("manifests", None))
    if command is None:
        pytest.skip(f"{where}: no CronJob runs pg_dump, so no configured backup was run here (on a Kubernetes "
                    "target the k8s half fails the row)")
    evidence(f"the backup {where} runs: {' '.join(command)}")
    if stack.k8s is None:
        evidence.proof("declared", NOT_SCHEDULED_HERE)
    gap = restore_gap(stack, pg)
    if gap:
        pytest.skip(gap)
    counts = source_counts(pg)
    with tempfile.TemporaryDirectory(prefix="acceptance-backup-") as folder:
        dump = Path(folder) / "backup.dump"
        flags = dump_flags(command)
        what = f"pg_dump {' '.join(flags)} of {pg.database}"
        done = pg.dump(dump, stack.pg_tools["pg_dump"], flags)
        assert done.returncode == 0, f"{what} failed: {done.stderr.strip()[-800:]}"
        check_archive(dump, stack.pg_tools["pg_restore"], pg.database, what, evidence)
        restore_and_compare(pg, dump, stack.pg_tools["pg_restore"], counts, what, evidence)
