"""The sign-off table: one status per criterion of the catalog, from the checks that ran.

A criterion's status:
  failed       any of its checks failed or errored
  passed       at least one check passed and none failed (skipped parts are named in the evidence)
  skipped      every check was skipped (the reasons are the evidence)
  not-covered  no check exists for it, or none was selected in this run
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reports import catalog


@dataclass
class CheckResult:
    nodeid: str
    criterion: str
    outcome: str  # passed | failed | skipped
    evidence: list[str] = field(default_factory=list)
    message: str = ""  # the failure or skip reason
    logs: list[str] = field(default_factory=list)  # report-relative paths
    figures: list[str] = field(default_factory=list)  # inline SVG (reports/charts.py), HTML report only


@dataclass
class CriterionStatus:
    id: str
    scope: str
    criterion: str
    status: str
    evidence: str
    checks: list[str]
    logs: list[str]
    figures: list[str] = field(default_factory=list)  # inline SVG, kept out of signoff.json


def _status(results: list[CheckResult]) -> str:
    outcomes = {r.outcome for r in results}
    if not results:
        return "not-covered"
    if "failed" in outcomes:
        return "failed"
    if "passed" in outcomes:
        return "passed"
    return "skipped"


def _evidence(results: list[CheckResult], status: str) -> str:
    if status == "not-covered":
        return "no check exists for this criterion yet"
    parts: list[str] = []
    for r in results:
        name = r.nodeid.split("::")[-1]
        if r.outcome == "skipped":
            parts.append(f"{name}: skipped: {r.message}")
            continue
        parts.extend(r.evidence)
        if r.outcome == "failed":
            parts.append(f"{name} FAILED: {r.message}")
    # Repeated skip reasons (many checks, one target limitation) are said once.
    return "\n".join(dict.fromkeys(parts))


def build(results: list[CheckResult], deselected: set[str] = frozenset(),
          unavailable: dict[str, str] | None = None) -> list[CriterionStatus]:
    """`unavailable`: scope -> why the target cannot check it; a criterion with no check
    whose every scope is unavailable is skipped for that reason (no check could run here)."""
    unavailable = unavailable or {}
    rows = []
    for c in catalog.load():
        mine = [r for r in results if r.criterion == c.id]
        status = _status(mine)
        evidence = _evidence(mine, status)
        if status == "not-covered" and all(s in unavailable for s in c.scopes):
            status, evidence = "skipped", "; ".join(dict.fromkeys(unavailable[s] for s in c.scopes))
        elif status == "not-covered" and c.id in deselected:
            evidence = "its checks were not selected in this run"
        rows.append(CriterionStatus(
            id=c.id, scope=", ".join(c.scopes), criterion=c.text, status=status, evidence=evidence,
            checks=[r.nodeid for r in mine], logs=sorted({log for r in mine for log in r.logs}),
            figures=[f for r in mine for f in r.figures],
        ))
    return rows


def counts(rows: list[CriterionStatus]) -> dict[str, int]:
    found = {"passed": 0, "failed": 0, "skipped": 0, "not-covered": 0}
    for row in rows:
        found[row.status] += 1
    return found


def write_json(path: Path, rows: list[CriterionStatus], target: str, versions: dict, values: dict,
               duration_s: float, notes: list[str]) -> None:
    path.write_text(json.dumps({
        "target": target,
        "summary": counts(rows),
        "criteria": [{k: v for k, v in asdict(r).items() if k != "figures"} for r in rows],
        "versions": versions,
        "values": values,
        "notes": notes,
        "duration_s": round(duration_s, 1),
    }, indent=2) + "\n")


_COLOURS = {"passed": "#1b7f3b", "failed": "#c62828", "skipped": "#8d6e00", "not-covered": "#555"}


def html_table(rows: list[CriterionStatus], target: str, versions: dict, values: dict, duration_s: float,
               notes: list[str]) -> str:
    """The sign-off section that opens the HTML report."""
    e = html.escape
    summary = ", ".join(f"{n} {s}" for s, n in counts(rows).items())
    body = []
    for r in rows:
        logs = " ".join(f'<a href="{e(log)}">{e(Path(log).name)}</a>' for log in r.logs)
        body.append(
            f'<tr><td><b>{e(r.id)}</b></td><td>{e(r.scope)}</td>'
            f'<td style="color:{_COLOURS[r.status]};font-weight:bold">{e(r.status)}</td>'
            f'<td>{e(r.criterion)}</td><td style="white-space:pre-wrap">{e(r.evidence)}</td><td>{logs}</td></tr>'
        )
        if r.figures:  # the checks' own SVG (reports/charts.py escapes its texts), under the row
            body.append(f'<tr><td colspan="6">{"".join(r.figures)}</td></tr>')
    version_rows = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in versions.items())
    note_items = "".join(f"<li>{e(n)}</li>" for n in notes)
    return f"""
<section id="signoff">
<h2>Sign-off: {e(target)} target</h2>
<p>{e(summary)} &middot; verdict in {duration_s:.1f} s</p>
<table class="signoff" border="1" cellpadding="4" style="border-collapse:collapse;width:100%">
<thead><tr><th>ID</th><th>Scope</th><th>Status</th><th>Criterion</th><th>Evidence / reason</th><th>Logs</th></tr></thead>
<tbody>{''.join(body)}</tbody></table>
<h3>Environment</h3>
<table border="1" cellpadding="4" style="border-collapse:collapse"><tbody>
<tr><td>target</td><td>{e(target)}</td></tr>{version_rows}</tbody></table>
<ul>{note_items}</ul>
<details><summary>Values used (secrets redacted)</summary><pre>{e(json.dumps(values, indent=2))}</pre></details>
</section>
"""
