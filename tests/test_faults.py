"""Each check fails when its criterion is violated: the suite against deliberately broken stacks."""

import pytest

from tests.conftest import statuses
from tests.faults import EXPECTED, PARTIAL
from tests.leftovers import assert_nothing_left


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
    # Everything else the target can check still passes: the fault is what broke them.
    service = {c["id"] for c in signoff["criteria"] if c["scope"].startswith("service")}
    unexpected = {cid for cid in service - failed if status[cid] != "passed"}
    assert not unexpected, f"fault {fault}: {sorted(unexpected)} not passed"
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
