"""A component that dies or hangs in the middle of the checks: its criteria fail and say so, the others
are still judged, teardown completes, nothing is left behind.

Each case runs the real suite on a fresh embedded stack with tests/midrun.py, which breaks the
component after the first check of its own file (that check passed: the break is what fails the rest).
"""

import pytest

from tests.conftest import statuses
from tests.leftovers import assert_nothing_left

# component -> (the file after whose first check it breaks, criteria that must fail, criteria that must pass)
CASES = {
    "s3": ("suites/test_31_minio.py",
           # the bucket checks; the MLflow client's artifact upload; the object store's version in the report.
           # 3.3-client (the spec's log-a-param check) stores no artifact: it must still pass.
           {"3.1-buckets", "3.1-policies", "3.1-roundtrip", "3.1-auth", "3.3-artifacts", "3.3-registry",
            "3-docs"},
           {"3.1-health", "3.2-version", "3.2-settings", "3.2-database", "3.2-schema", "3.2-backup", "3.3-health",
            "3.3-rest", "3.3-backend", "3.3-client", "3.4-inference", "3-load"}),
    "postgresql": ("suites/test_32_postgresql.py",
                   # MLflow's backend store is gone too: everything that writes or reads runs fails
                   {"3.2-settings", "3.2-database", "3.2-schema", "3.2-backup", "3.3-rest", "3.3-backend",
                    "3.3-artifacts", "3.3-registry", "3.3-client", "3-integration", "3-docs"},
                   {"3.1-health", "3.1-buckets", "3.1-policies", "3.1-roundtrip", "3.1-auth", "3.2-version",
                    "3.4-inference", "3-load"}),
    "mlflow": ("suites/test_33_mlflow.py",
               {"3.3-rest", "3.3-backend", "3.3-artifacts", "3.3-registry", "3.3-client", "3-integration"},
               {"3.1-health", "3.1-buckets", "3.1-policies", "3.1-roundtrip", "3.1-auth", "3.2-version",
                "3.2-settings", "3.2-database", "3.2-schema", "3.2-backup", "3.3-health", "3.4-inference",
                "3-load"}),
    "mlserver": ("suites/test_34_kserve.py",
                 # 3.4-inference: its first check passed, the three after it fail
                 {"3.4-inference", "3-integration", "3-load", "3-docs"},
                 {"3.1-health", "3.1-buckets", "3.1-policies", "3.1-roundtrip", "3.1-auth", "3.2-version",
                  "3.2-settings", "3.2-database", "3.2-schema", "3.2-backup", "3.3-health", "3.3-rest",
                  "3.3-backend", "3.3-artifacts", "3.3-registry", "3.3-client"}),
}

# A hung component answers nothing: its checks wait for `timeouts.request` each (5 s here, to keep the
# test short; the default is 30 s) and fail; the failure says the component accepts TCP and never answers.
# PostgreSQL's backends leave the postmaster's process group (setsid): stopping the group stops the
# postmaster only, so new connections hang while MLflow's pooled ones keep working (its REST checks pass).
HANG_CASES = {
    "mlflow": CASES["mlflow"],
    # The model server: the inference requests, the integration's prediction and the load run wait out
    # their timeouts; MLflow, PostgreSQL and S3 are still judged on their own.
    "mlserver": CASES["mlserver"],
    "postgresql": ("suites/test_32_postgresql.py",
                   {"3.2-settings", "3.2-database", "3.2-schema", "3.2-backup", "3.3-backend", "3-integration",
                    "3-docs"},
                   {"3.1-health", "3.1-buckets", "3.1-policies", "3.1-roundtrip", "3.1-auth", "3.2-version",
                    "3.4-inference", "3-load"}),
}


def _run_with_break(suite_run, tmp_path, component, how, after, *extra):
    log = tmp_path / "checks-before-break.txt"
    # Hang guard only, far above what the run needs: a run that hangs on a dead component fails here.
    done, signoff = suite_run("-p", "tests.midrun", "--break", f"{component}={how}", "--break-after", after,
                              "--break-log", str(log), "--set", "load_duration_s=3", *extra, timeout=1200)
    assert signoff is not None, f"no signoff.json; pytest said:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    ran_before = log.read_text().splitlines() if log.exists() else []
    assert ran_before and ran_before[-1].startswith(after), f"the break did not happen after {after}: {ran_before}"
    return done, signoff


def _judge(signoff, component, must_fail, must_pass, says):
    status = statuses(signoff)
    failed = {cid for cid, s in status.items() if s == "failed"}
    evidence = {c["id"]: c["evidence"] for c in signoff["criteria"]}
    assert must_fail <= failed, f"{component}: expected {sorted(must_fail - failed)} to fail too; failed: {sorted(failed)}"
    # passed, or partial where a Kubernetes-only part of the criterion is skipped on this target
    not_passed = {cid: status[cid] for cid in must_pass if status[cid] not in ("passed", "partial")}
    assert not not_passed, (f"{component}: criteria that do not need it were not judged passed: {not_passed}\n"
                            + "\n".join(f"{c}: {evidence[c][-600:]}" for c in not_passed))
    # Every failure names the broken component, says what is wrong with it and shows its log's tail.
    for cid in sorted(failed):
        assert says in evidence[cid], f"{cid} does not say '{says}':\n{evidence[cid][-1500:]}"
        assert f"last lines of {component}.log:" in evidence[cid], f"{cid}: no log tail:\n{evidence[cid][-1500:]}"
    # No healthy component is blamed.
    for other in ("s3", "postgresql", "mlflow", "mlserver"):
        if other != component:
            assert not any(f"stack: {other} " in e for e in evidence.values()), f"{other} was blamed"


@pytest.mark.parametrize("component", sorted(CASES))
def test_a_component_killed_during_the_checks(component, suite_run, run_tmpdir, tmp_path):
    after, must_fail, must_pass = CASES[component]
    done, signoff = _run_with_break(suite_run, tmp_path, component, "kill", after)
    _judge(signoff, component, must_fail, must_pass, f"stack: {component} is not running (killed by SIGKILL)")
    assert (tmp_path / "report" / "logs" / f"{component}.log").exists(), "the dead component's log is not in the report"
    assert done.returncode == 1, f"exit {done.returncode}"
    assert_nothing_left(run_tmpdir)


@pytest.mark.parametrize("component", sorted(HANG_CASES))
def test_a_component_that_hangs_during_the_checks(component, suite_run, run_tmpdir, tmp_path):
    after, must_fail, must_pass = HANG_CASES[component]
    done, signoff = _run_with_break(suite_run, tmp_path, component, "hang", after, "--set", "timeouts.request=5")
    _judge(signoff, component, must_fail, must_pass, f"stack: {component} accepts TCP on 127.0.0.1:")
    evidence = "\n".join(c["evidence"] for c in signoff["criteria"])
    assert "but sent no answer within" in evidence
    assert done.returncode == 1, f"exit {done.returncode}"
    # Teardown wakes the stopped group and stops it: nothing is left.
    assert_nothing_left(run_tmpdir)
