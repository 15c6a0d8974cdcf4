"""Each check fails when its criterion is violated: the suite against deliberately broken stacks."""

import shutil

import pytest

from mlops_acceptance.fixtures.render import MANIFESTS
from tests.conftest import statuses
from tests.faults import EXPECTED, PARTIAL
from tests.leftovers import assert_nothing_left

# Rows the local target proves only in part, by design (their scheduled half is a Kubernetes object).
LOCAL_PARTIAL = {"3.2-backup"}

@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_a_fault_fails_exactly_its_criteria(fault, suite_run, run_tmpdir):
    # A short load run: 3-load must still pass under every fault (it checks the serving path).
    done, signoff = suite_run("-p", "tests.faults", "--fault", fault, "--set", "load_duration_s=3")
    assert signoff is not None, f"no signoff.json; pytest said:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    status = statuses(signoff)
    failed = {cid for cid, s in status.items() if s == "failed"}
    assert failed == EXPECTED[fault], (
        f"fault {fault}: expected exactly {sorted(EXPECTED[fault])} to fail, got {sorted(failed)}\n"
        + "\n".join(f"{c['id']}: {c['evidence']}" for c in signoff["criteria"] if c["status"] == "failed"))
    # Everything else the target can check still passes: the fault is what broke them. 3.2-backup's
    # schedule is a Kubernetes object: on the local target the row is partial at best, never passed.
    service = {c["id"] for c in signoff["criteria"] if c["scope"].startswith("service")}
    unexpected = {cid for cid in service - failed - LOCAL_PARTIAL if status[cid] != "passed"}
    assert not unexpected, f"fault {fault}: {sorted(unexpected)} not passed"
    assert all(status[cid] == "partial" for cid in LOCAL_PARTIAL - failed), {c: status[c] for c in LOCAL_PARTIAL}
    # A failed criterion fails the run; a healthy variant (proxied-artifacts) passes it.
    assert done.returncode == (1 if EXPECTED[fault] else 0), f"exit {done.returncode} with {sorted(failed)} failed"
    assert_nothing_left(run_tmpdir)



def test_a_version_the_running_stack_does_not_match_fails_its_criterion(suite_run, run_tmpdir):
    """The machine's PostgreSQL is 15; values that name 16 fail 3.2-version, and only it."""
    done, signoff = suite_run("--set", "postgresql_version=16.4", "--set", "load_duration_s=3")
    assert signoff is not None, done.stdout[-3000:]
    failed = {cid for cid, s in statuses(signoff).items() if s == "failed"}
    assert failed == {"3.2-version"}, failed
    assert_nothing_left(run_tmpdir)


@pytest.mark.parametrize("fault", sorted(PARTIAL))
def test_a_half_that_cannot_run_here_is_partial_never_passed(fault, suite_run):
    done, signoff = suite_run("-p", "tests.faults", "--fault", fault, "-k", "backup", "--set", "load_duration_s=3")
    assert signoff is not None, done.stdout[-3000:]
    rows = {c["id"]: c for c in signoff["criteria"]}
    for cid in PARTIAL[fault]:
        assert rows[cid]["status"] == "partial", rows[cid]
        assert rows[cid]["evidence"].startswith("partial: "), rows[cid]["evidence"]
    assert signoff["verdict"] == "INCOMPLETE"


# --- 3.2-backup on the local target: the manifests under test (--manifests DIR) decide what is run --------

BACKUP_TEMPLATE = "postgresql/postgresql-backup-cronjob.yaml.j2"


def _without_backup(folder):
    (folder / BACKUP_TEMPLATE).unlink()


def _dump_without_alembic_rows(folder):
    """A CronJob whose pg_dump leaves out the rows of MLflow's alembic_version: its dump restores, with fewer rows."""
    path = folder / BACKUP_TEMPLATE
    path.write_text(path.read_text().replace("- --format=custom\n", "- --format=custom\n"
                                             "                - --exclude-table-data=alembic_version\n", 1))
    assert "--exclude-table-data=alembic_version" in path.read_text()


# change to a copy of manifests/ -> 3.2-backup's status on local, and a line its evidence must hold
BACKUP_MANIFESTS = {
    # The suite's own manifests: the dump ran and restored, but the schedule is only declared here.
    "as-shipped": (None, "partial", "partial: test_the_configured_backup_restores_with_identical_row_counts "
                                    "proved it on declared proof only: the scheduled backup is a Kubernetes object"),
    # No backup configured at all: nothing to run, never passed.
    "no-backup-cronjob": (_without_backup, "partial", "no CronJob runs pg_dump"),
    # The flags of the manifests under test are the ones run (not the suite's own): rows are missing.
    "dump-without-alembic-rows": (_dump_without_alembic_rows, "failed", "row counts differ after restore"),
}


@pytest.mark.parametrize("case", sorted(BACKUP_MANIFESTS))
def test_the_local_backup_row_runs_the_manifests_under_test_and_is_never_passed(case, suite_run, tmp_path):
    change, expected, line = BACKUP_MANIFESTS[case]
    args = ["-k", "backup"]
    if change:
        folder = tmp_path / "manifests"
        shutil.copytree(MANIFESTS, folder)
        change(folder)
        args += ["--manifests", str(folder)]
    done, signoff = suite_run(*args)
    assert signoff is not None, done.stdout[-3000:] + done.stderr[-2000:]
    row = next(c for c in signoff["criteria"] if c["id"] == "3.2-backup")
    assert row["status"] == expected, row
    assert line in row["evidence"], row["evidence"]
    if expected == "partial":
        # The first line names the missing half; the k8s half is out of this target's scope.
        assert row["evidence"].startswith("partial: "), row["evidence"]
        assert "skipped: needs a Kubernetes target" in row["evidence"], row["evidence"]
    if case == "as-shipped":
        assert "restored into acceptance_restore_" in row["evidence"] and row["proof"] == "declared", row
    assert signoff["verdict"] == ("REJECTED" if expected == "failed" else "INCOMPLETE")
