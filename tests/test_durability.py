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


# --- Kubernetes: when a component's pods count as replaced (fixtures/restarts.py) -------------------

def _pod(name: str, uid: str, ready: bool, deleting: bool = False) -> dict:
    md = {"name": name, "uid": uid, **({"deletionTimestamp": "2026-12-04T14:00:00Z"} if deleting else {})}
    return {"metadata": md, "status": {"phase": "Running",
                                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_a_restart_is_done_only_when_every_old_pod_is_gone_and_a_new_one_is_ready():
    from mlops_acceptance.fixtures.restarts import describe_pods, replaced

    done = replaced({"old-1"})
    # A StatefulSet's replacement has the old pod's name: only the uid tells them apart.
    assert not done({"postgresql-0": _pod("postgresql-0", "old-1", ready=True)})
    assert not done({"postgresql-0": _pod("postgresql-0", "new-1", ready=False)})
    assert done({"postgresql-0": _pod("postgresql-0", "new-1", ready=True)})
    # A Deployment's replacement is Ready while the old pod still terminates: not yet.
    pods = {"p-a": _pod("p-a", "old-1", ready=False, deleting=True), "p-b": _pod("p-b", "new-1", ready=True)}
    assert not done(pods)
    assert describe_pods(pods, {"old-1"}) == "p-a (old, Running, not Ready, deleting), p-b (new, Running, Ready)"
    assert not done({}) and describe_pods({}, {"old-1"}) == "none"
