"""Durability rows (`--disruptive`): pass on the healthy embedded stack, fail when a restart wipes the data."""

import pytest

from tests.conftest import statuses
from tests.faults import WIPED

DURABILITY = {"3.1-durability", "3.2-durability", "3.4-durability"}
# Only the service checks that write, restart and read: the rest is covered elsewhere.
SELECT = ["-k", "durability"]


def test_without_disruptive_the_durability_rows_are_skipped_with_the_reason(suite_run):
    done, signoff = suite_run(*SELECT)
    rows = {c["id"]: c for c in signoff["criteria"]}
    for cid in DURABILITY:
        assert rows[cid]["status"] == "skipped" and "--disruptive" in rows[cid]["evidence"], rows[cid]


def test_disruptive_local_run_passes_the_durability_rows(suite_run):
    done, signoff = suite_run("--disruptive", *SELECT)
    assert signoff is not None, done.stdout[-3000:]
    rows = {c["id"]: c for c in signoff["criteria"]}
    for cid in DURABILITY:
        assert rows[cid]["status"] == "passed", (cid, rows[cid]["evidence"])
        assert "before:" in rows[cid]["evidence"] and "after" in rows[cid]["evidence"]
    assert done.returncode == 0


@pytest.mark.parametrize("fault", sorted(WIPED))
def test_a_restart_that_wipes_the_data_fails_exactly_its_row(fault, suite_run):
    done, signoff = suite_run("-p", "tests.faults", "--fault", fault, "--disruptive", *SELECT)
    assert signoff is not None, done.stdout[-3000:]
    failed = {cid for cid, s in statuses(signoff).items() if s == "failed"}
    expected = WIPED[fault][1]
    assert failed == expected, (failed, [c["evidence"] for c in signoff["criteria"] if c["status"] == "failed"])
    assert done.returncode == 1
