"""The sign-off table: statuses, reasons, redaction, and the catalog it is built from."""

from pathlib import Path

from mlops_acceptance.reports import catalog, signoff
from mlops_acceptance.reports.redact import Redactor

SPEC_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "spec" / "criteria.md"


def result(criterion, outcome, evidence=(), message="", name=None, **kwargs):
    nodeid = f"suites/x.py::{name or f'test_{criterion}_{outcome}'}"
    return signoff.CheckResult(nodeid, criterion, outcome, list(evidence), message, **kwargs)


def all_passed(**overrides):
    """Every criterion of the catalog passed live, except the results given per ID."""
    return [overrides.get(c.id) or result(c.id, "passed", ["ok"]) for c in catalog.load()]


def rows_by_id(results, **kwargs):
    return {r.id: r for r in signoff.build(results, **kwargs)}


def test_the_catalog_lists_every_criterion_of_the_spec():
    ids = [c.id for c in catalog.load()]
    assert len(ids) == len(set(ids)) == 45
    assert catalog.by_id()["3.4-durability"].scopes == ("disruptive",)
    assert {"3.1-pods", "3.2-backup", "3.4-gpu", "3-docs"} <= set(ids)
    assert catalog.by_id()["3.2-backup"].scopes == ("service", "k8s")
    if SPEC_CATALOG.exists():  # the copy beside the reports is the spec's, to the letter
        assert SPEC_CATALOG.read_text() == catalog.CATALOG.read_text()


def test_every_catalog_id_is_in_the_table_even_without_checks():
    rows = signoff.build([])
    assert [r.id for r in rows] == [c.id for c in catalog.load()]
    assert {r.status for r in rows} == {"not-covered"}


def test_any_failed_check_fails_its_criterion():
    rows = rows_by_id([result("3.1-auth", "passed", ["ok"]), result("3.1-auth", "failed", message="accepted")])
    assert rows["3.1-auth"].status == "failed"
    assert "accepted" in rows["3.1-auth"].evidence and "ok" in rows["3.1-auth"].evidence


def test_a_skipped_half_makes_the_row_partial_and_names_the_missing_half():
    rows = rows_by_id([result("3.4-inference", "passed", ["live"]),
                       result("3.4-inference", "skipped", message="no expected prediction", name="test_b")])
    assert rows["3.4-inference"].status == "partial"
    assert rows["3.4-inference"].evidence.splitlines()[0] == "partial: test_b skipped: no expected prediction"


def test_a_half_out_of_the_targets_scope_does_not_make_the_row_partial():
    """A row whose live half passed and whose other half is not this target's to run."""
    rows = rows_by_id([result("3.2-backup", "passed", ["restored"]),
                       result("3.2-backup", "skipped", message="needs Kubernetes", name="t2", out_of_scope=True)])
    assert rows["3.2-backup"].status == "passed" and rows["3.2-backup"].proof == "live"
    assert "t2: skipped: needs Kubernetes" in rows["3.2-backup"].evidence


def test_a_declared_half_beside_an_out_of_scope_half_is_partial_naming_the_missing_half():
    """3.2-backup on local: the service half restored the manifests' pg_dump, but the schedule is a
    Kubernetes object the target does not run (declared proof); the k8s half is out of scope."""
    note = "the scheduled backup is a Kubernetes object (a CronJob) that this target does not run"
    rows = rows_by_id([result("3.2-backup", "passed", ["restored"], proof="declared", proof_notes=[note]),
                       result("3.2-backup", "skipped", message="needs Kubernetes", name="t2", out_of_scope=True)])
    assert rows["3.2-backup"].status == "partial" and rows["3.2-backup"].proof == "declared"
    assert note in rows["3.2-backup"].evidence.splitlines()[0]
    assert "restored" in rows["3.2-backup"].evidence


def test_simulated_or_declared_proof_is_partial_naming_who_proves_it():
    note = "kwok simulates pods; the node, kind or cluster target proves it live"
    rows = rows_by_id([result("3.1-pods", "passed", ["2/2 Ready"], proof="simulated", proof_notes=[note]),
                       result("3.1-ingress", "passed", ["route to minio:9000"], proof="declared"),
                       result("3.1-service", "passed", proof="live"),
                       result("3.1-service", "passed", name="t2", proof="simulated", proof_notes=[note])])
    assert rows["3.1-pods"].status == "partial" and rows["3.1-pods"].proof == "simulated"
    assert note in rows["3.1-pods"].evidence.splitlines()[0]
    assert rows["3.1-ingress"].status == "partial" and rows["3.1-ingress"].proof == "declared"
    # The weakest proof of the row is its proof.
    assert rows["3.1-service"].status == "partial" and rows["3.1-service"].proof == "simulated"


def test_a_failure_wins_over_partial_and_not_run():
    rows = rows_by_id([result("3.1-pods", "passed", proof="simulated"), result("3.1-pods", "failed", name="t2")],
                      collected={"suites/x.py::t3": "3.1-pods"})
    assert rows["3.1-pods"].status == "failed"


def test_all_skipped_for_the_targets_scope_is_skipped_with_the_reason():
    rows = rows_by_id([result("3.1-pods", "skipped", message="needs Kubernetes", out_of_scope=True)])
    assert rows["3.1-pods"].status == "skipped" and rows["3.1-pods"].evidence.endswith("needs Kubernetes")


def test_all_skipped_for_another_reason_is_partial_not_skipped():
    """No known input for the served model is a gap of this run, not something the target cannot do."""
    rows = rows_by_id([result("3-load", "skipped", message="no known input for the served model")])
    assert rows["3-load"].status == "partial"
    assert "no known input" in rows["3-load"].evidence.splitlines()[0]


def test_no_check_and_unreachable_scope_is_skipped_not_passed():
    rows = rows_by_id([], unavailable={"k8s": "no Kubernetes here"})
    assert rows["3.4-crds"].status == "skipped" and rows["3.4-crds"].evidence == "no Kubernetes here"
    # A service criterion without a check stays an honest gap.
    assert rows["3-load"].status == "not-covered"
    # Partly reachable (service, k8s) without a check: not-covered, not skipped.
    assert rows["3.2-backup"].status == "not-covered"


def test_collected_checks_that_did_not_run_are_not_run_never_no_check():
    """Deselected, or left over after -x or an interrupt: collected, no result."""
    collected = {"suites/x.py::test_a": "3.1-auth", "suites/x.py::test_b": "3.1-auth",
                 "suites/x.py::test_c": "3.1-health"}
    rows = rows_by_id([result("3.1-auth", "passed", name="test_a")], collected=collected)
    assert rows["3.1-auth"].status == "not-run"
    assert "test_b collected but did not run" in rows["3.1-auth"].evidence and "ran: test_a" in rows["3.1-auth"].evidence
    assert rows["3.1-health"].status == "not-run"
    assert "no check exists" not in rows["3.1-health"].evidence
    assert rows["3.1-roundtrip"].status == "not-covered"
    # Deselected, but out of this target's reach anyway: skipped with the target's reason.
    rows = rows_by_id([], collected={"suites/x.py::test_pods": "3.1-pods"}, unavailable={"k8s": "no Kubernetes"})
    assert rows["3.1-pods"].status == "skipped" and rows["3.1-pods"].evidence == "no Kubernetes"
    assert signoff.verdict(list(rows.values())).verdict == "INCOMPLETE"


def test_a_blocked_failure_names_its_blocker_apart_from_root_failures():
    rows = signoff.build(all_passed(**{
        "3.2-database": result("3.2-database", "failed", message="database mlflow does not exist"),
        "3.2-schema": result("3.2-schema", "failed", message="blocked by 3.2-database: no database mlflow",
                             blocked_by="3.2-database"),
        "3.3-backend": result("3.3-backend", "failed", message="blocked by 3.2-database: no database mlflow"),
    }))
    by_id = {r.id: r for r in rows}
    assert by_id["3.2-schema"].status == "failed" and by_id["3.2-schema"].blocked_by == ["3.2-database"]
    assert "blocked by 3.2-database" in by_id["3.2-schema"].evidence
    # Parsed from the message when the check did not record it.
    assert signoff.blocked_by("blocked by 3.2-database: x") == "3.2-database"
    assert by_id["3.2-database"].blocked_by == []
    v = signoff.verdict(rows)
    assert v.verdict == "REJECTED" and v.root_failures == ["3.2-database"]
    assert v.blocked == {"3.2-schema": ["3.2-database"], "3.3-backend": ["3.2-database"]}
    assert "root failures: 3.2-database" in v.line() and "3.3-backend (by 3.2-database)" in v.line()


def test_verdict_accepted_only_when_every_row_in_scope_passed_live():
    rows = signoff.build(all_passed())
    assert signoff.verdict(rows).verdict == "ACCEPTED"
    # Out-of-scope rows (skipped) do not stand in the way.
    out = result("3.4-gpu", "skipped", message="needs GPU nodes", out_of_scope=True)
    v = signoff.verdict(signoff.build(all_passed(**{"3.4-gpu": out})))
    assert v.verdict == "ACCEPTED" and v.counts["skipped"] == 1 and v.counts["passed"] == 44


def test_verdict_incomplete_on_partial_not_run_or_not_covered():
    partial = signoff.build(all_passed(**{"3.1-pods": result("3.1-pods", "passed", proof="simulated")}))
    assert signoff.verdict(partial).verdict == "INCOMPLETE"
    assert signoff.verdict(partial).incomplete == ["3.1-pods"]
    results = [r for r in all_passed() if r.criterion != "3-load"]
    assert signoff.verdict(signoff.build(results)).verdict == "INCOMPLETE"  # 3-load not-covered
    not_run = signoff.build(results, collected={"suites/x.py::test_load": "3-load"})
    v = signoff.verdict(not_run)
    assert v.verdict == "INCOMPLETE" and v.counts["not-run"] == 1
    # Nothing in scope at all is not an acceptance.
    assert signoff.verdict(signoff.build([], unavailable={s: "no" for s in
                                                          ("service", "k8s", "gpu", "disruptive")})).verdict == "INCOMPLETE"


def test_verdict_rejected_on_any_failure_with_counts_per_component():
    rows = signoff.build(all_passed(**{"3.1-auth": result("3.1-auth", "failed", message="accepted")}))
    v = signoff.verdict(rows)
    assert v.verdict == "REJECTED" and v.counts["failed"] == 1 and v.root_failures == ["3.1-auth"]
    assert v.by_component["CLOUD-3.1 MinIO object storage"] == {"passed": 9, "failed": 1}
    banner = signoff.html_banner(rows, "local")
    assert "REJECTED" in banner and "CLOUD-3.1 MinIO object storage" in banner and "3.1-auth" in banner


def test_redaction_covers_text_html_and_json_forms():
    r = Redactor(["pa<ss\"word", "minioadmin123", "minioadmin"])
    text = 'url=postgresql://u:pa<ss"word@h s=minioadmin123 k=minioadmin html=pa&lt;ss&quot;word json=pa<ss\\"word'
    cleaned = r.text(text)
    for leaked in ("pa<ss", "minioadmin", "pa&lt;ss", "123"):
        assert leaked not in cleaned, cleaned


def test_json_and_html_carry_the_same_rows(tmp_path):
    rows = signoff.build([result("3.1-auth", "passed", ["wrong secret -> SignatureDoesNotMatch"])])
    signoff.write_json(tmp_path / "s.json", rows, "local", {"mlflow": "2.9.2"}, {"a": 1}, 12.3, ["note"])
    import json

    data = json.loads((tmp_path / "s.json").read_text())
    assert data["target"] == "local" and data["duration_s"] == 12.3 and data["versions"] == {"mlflow": "2.9.2"}
    assert [c["id"] for c in data["criteria"]] == [r.id for r in rows]
    assert data["verdict"] == "INCOMPLETE" and data["verdict_detail"]["incomplete"][0] == "3.1-pods"
    assert {c["id"]: c["proof"] for c in data["criteria"]}["3.1-auth"] == "live"
    page = signoff.html_table(rows, "local", {"mlflow": "2.9.2"}, {"a": 1}, 12.3, ["note"])
    assert page.count("<tr><td><b>") == len(rows)
    assert "SignatureDoesNotMatch" in page


def test_the_banner_says_which_criteria_a_narrow_verdict_covers():
    only_service = signoff.build([r for r in all_passed() if r.criterion.startswith("3.1-a")],
                                 unavailable={s: "not here" for s in ("k8s", "gpu", "disruptive", "service")})
    line = signoff.scope_line(only_service)
    assert "skipped" in line and "3.1-pods" in line and "outside it" in line
    assert "Scope:" in signoff.html_banner(only_service, "local")
    assert "all" in signoff.scope_line(signoff.build(all_passed()))


def local_like(**overrides):
    """A clean run on a target without Kubernetes: every k8s and gpu row skipped out of scope,
    everything else passed (3.2-backup's service half included)."""
    results = []
    for c in catalog.load():
        if c.id in overrides:
            results.append(overrides[c.id])
        elif c.scopes[0] in ("k8s", "gpu"):
            results.append(result(c.id, "skipped", message="needs a Kubernetes target", out_of_scope=True))
        else:
            results.append(result(c.id, "passed", ["ok"]))
    return signoff.build(results, unavailable={"k8s": "needs a Kubernetes target", "gpu": "needs GPU nodes"})


def test_the_catalog_scopes_are_the_ones_its_rows_use():
    assert set(catalog.SCOPES) == {s for c in catalog.load() for s in c.scopes}


def test_require_scope_values_are_catalog_scopes_and_a_bad_one_is_named():
    assert signoff.parse_scopes(["k8s,gpu", "k8s", " disruptive "]) == ("k8s", "gpu", "disruptive")
    assert signoff.parse_scopes([]) == () and signoff.parse_scopes(None) == ()
    for bad, named in ((["k8s,gpus"], "'gpus'"), (["kubernetes"], "'kubernetes'"), (["k8s,"], "''")):
        try:
            signoff.parse_scopes(bad)
        except ValueError as exc:
            assert str(exc).startswith(f"--require-scope {named}: not a scope of the catalog"), exc
            assert "service, k8s, gpu, disruptive" in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")


def test_a_required_scope_the_target_skipped_keeps_the_verdict_from_accepted():
    rows = local_like()
    assert signoff.verdict(rows, ("service",)).verdict == "ACCEPTED"
    v = signoff.verdict(rows, ("service", "k8s"))
    assert v.verdict == "INCOMPLETE"
    assert v.scope_gaps == ["required scope k8s not checked on this target (none of its 22 rows)"], v.scope_gaps
    assert "required scope k8s not checked on this target" in v.line()
    assert v.required_scopes == ["service", "k8s"] and "service" in v.covered_scopes
    # 3.2-backup (service, k8s) passed on its service half: its k8s half counts as not checked.
    assert {"3.1-pods", "3.2-backup"} <= set(v.unchecked_scopes["k8s"])
    assert {r.id: r for r in rows}["3.2-backup"].unchecked_scopes == ["k8s"]
    # A failure is still a rejection, whatever was required.
    failed = local_like(**{"3.1-auth": result("3.1-auth", "failed", message="accepted")})
    assert signoff.verdict(failed, ("service", "k8s")).verdict == "REJECTED"


def test_a_required_scope_checked_only_in_part_is_named_with_its_skipped_rows():
    """The node target: every k8s row runs but Knative's (skipped: no Envoy)."""
    knative = result("3.4-knative", "skipped", message="no Knative on this node", out_of_scope=True)
    rows = signoff.build(all_passed(**{"3.4-knative": knative}))
    assert signoff.verdict(rows).verdict == "ACCEPTED"  # nothing required: the old rule
    v = signoff.verdict(rows, ("service", "k8s"))
    assert v.verdict == "INCOMPLETE"
    assert v.scope_gaps == ["required scope k8s not fully checked on this target (3.4-knative not checked)"]
    assert signoff.verdict(rows, ("service", "gpu")).verdict == "ACCEPTED"


def test_the_scopes_a_verdict_covers_and_requires_are_in_every_report(tmp_path):
    import json

    rows = local_like()
    line = signoff.scopes_line(rows, ("service", "k8s"))
    assert line.startswith("scopes covered: service (all ")
    assert "not checked: k8s (none of its 22 rows), gpu (none of its 1 row)" in line
    assert line.endswith("required: service, k8s")
    banner = signoff.html_banner(rows, "local", ("service", "k8s"))
    assert "INCOMPLETE" in banner and "Required scope not checked" in banner and "required: service, k8s" in banner
    signoff.write_json(tmp_path / "s.json", rows, "local", {}, {}, 1.0, [], ("service", "k8s"))
    detail = json.loads((tmp_path / "s.json").read_text())["verdict_detail"]
    assert json.loads((tmp_path / "s.json").read_text())["verdict"] == "INCOMPLETE"
    assert detail["required_scopes"] == ["service", "k8s"] and "service" in detail["covered_scopes"]
    assert detail["scope_gaps"] and "3.1-pods" in detail["unchecked_scopes"]["k8s"]
