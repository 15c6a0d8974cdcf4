"""The sign-off table: statuses, reasons, redaction, and the catalog it is built from."""

from pathlib import Path

from reports import catalog, signoff
from reports.redact import Redactor

SPEC_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "spec" / "criteria.md"


def result(criterion, outcome, evidence=(), message=""):
    return signoff.CheckResult(f"suites/x.py::test_{criterion}_{outcome}", criterion, outcome, list(evidence), message)


def rows_by_id(results, **kwargs):
    return {r.id: r for r in signoff.build(results, **kwargs)}


def test_the_catalog_lists_every_criterion_of_the_spec():
    ids = [c.id for c in catalog.load()]
    assert len(ids) == len(set(ids)) == 42
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


def test_passed_with_a_skipped_part_names_the_skip():
    rows = rows_by_id([result("3.4-inference", "passed", ["live"]),
                       result("3.4-inference", "skipped", message="no expected prediction")])
    assert rows["3.4-inference"].status == "passed"
    assert "skipped: no expected prediction" in rows["3.4-inference"].evidence


def test_all_skipped_is_skipped_with_the_reason():
    rows = rows_by_id([result("3.1-pods", "skipped", message="needs Kubernetes")])
    assert rows["3.1-pods"].status == "skipped" and rows["3.1-pods"].evidence.endswith("needs Kubernetes")


def test_no_check_and_unreachable_scope_is_skipped_not_passed():
    rows = rows_by_id([], unavailable={"k8s": "no Kubernetes here"})
    assert rows["3.4-crds"].status == "skipped" and rows["3.4-crds"].evidence == "no Kubernetes here"
    # A service criterion without a check stays an honest gap.
    assert rows["3-load"].status == "not-covered"
    # Partly reachable (service, k8s) without a check: not-covered, not skipped.
    assert rows["3.2-backup"].status == "not-covered"


def test_deselected_checks_are_said_so():
    rows = rows_by_id([], deselected={"3.1-auth"})
    assert rows["3.1-auth"].status == "not-covered"
    assert "not selected" in rows["3.1-auth"].evidence


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
    page = signoff.html_table(rows, "local", {"mlflow": "2.9.2"}, {"a": 1}, 12.3, ["note"])
    assert page.count("<tr><td><b>") == len(rows)
    assert "SignatureDoesNotMatch" in page
