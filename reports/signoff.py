"""The sign-off: one status per criterion of the catalog, and one verdict for the stack.

Each check result carries its outcome and its proof (how it knew: `live`, `simulated`,
`declared`). A criterion's status, as reports/criteria.md defines it:
  failed       a check failed or errored (`blocked_by` set when it could not be judged because
               another criterion's precondition failed: a consequence, not a root failure)
  not-run      some of its checks were collected but did not run (deselected, -x, interrupted)
  passed       every check this target can run ran, on live proof, and passed
  partial      nothing failed, but a check was skipped for a reason other than the target's scope,
               or proved only a simulation or the declared configuration
  skipped      every check was skipped because the target cannot reach its scope
  not-covered  no check exists for it
The verdict: ACCEPTED when every criterion in the target's scope passed, REJECTED when any
failed, INCOMPLETE otherwise. A run names the scopes it requires (`--require-scope`; the target's
default otherwise): a required scope whose rows were skipped makes an otherwise clean verdict
INCOMPLETE, so a narrow target cannot sign off what it never checked.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlops_acceptance.reports import catalog

PROOFS = ("live", "simulated", "declared")  # strongest first
STATUSES = ("passed", "partial", "failed", "skipped", "not-run", "not-covered")
BLOCKED = re.compile(r"\bblocked by (?P<id>3[.\d]*-[a-z-]+)")


@dataclass
class CheckResult:
    nodeid: str
    criterion: str
    outcome: str  # passed | failed | skipped
    evidence: list[str] = field(default_factory=list)
    message: str = ""  # the failure or skip reason
    logs: list[str] = field(default_factory=list)  # report-relative paths
    figures: list[str] = field(default_factory=list)  # inline SVG (reports/charts.py), HTML report only
    proof: str = "live"  # the weakest proof the check recorded
    proof_notes: list[str] = field(default_factory=list)  # for a non-live proof: what is missing, who proves it
    out_of_scope: bool = False  # skipped because the target cannot reach the criterion's scope
    blocked_by: str | None = None  # failed because another criterion's precondition failed

    @property
    def name(self) -> str:
        return self.nodeid.split("::")[-1]


@dataclass
class CriterionStatus:
    id: str
    scope: str
    criterion: str
    status: str
    evidence: str
    checks: list[str]
    logs: list[str]
    proof: str | None = None  # the weakest proof of the checks that passed; None when none ran
    blocked_by: list[str] = field(default_factory=list)  # set when every failure of the row is a consequence
    section: str = ""
    figures: list[str] = field(default_factory=list)  # inline SVG, kept out of signoff.json
    # the row's scopes this target did not check: all of a skipped row's; of a row of several scopes
    # (3.2-backup: service, k8s), those the target cannot reach
    unchecked_scopes: list[str] = field(default_factory=list)


def weakest(proofs) -> str | None:
    found = [p for p in proofs if p in PROOFS]
    return max(found, key=PROOFS.index) if found else None


def blocked_by(message: str) -> str | None:
    """The criterion a failure message says it was blocked by (`blocked by 3.2-database: ...`)."""
    match = BLOCKED.search(message or "")
    return match["id"] if match else None


def _judge(results: list[CheckResult], unrun: list[str]) -> str:
    if any(r.outcome == "failed" for r in results):
        return "failed"
    if unrun:
        return "not-run"
    if not results:
        return "not-covered"
    if all(r.outcome == "skipped" and r.out_of_scope for r in results):
        return "skipped"
    gaps = [r for r in results if r.outcome == "skipped" and not r.out_of_scope]
    weak = [r for r in results if r.outcome == "passed" and r.proof != "live"]
    return "partial" if gaps or weak else "passed"


def _evidence(results: list[CheckResult], unrun: list[str], status: str) -> str:
    parts: list[str] = []
    if status == "not-run":
        ran = [r.name for r in results]
        parts.append(f"not run: {', '.join(n.split('::')[-1] for n in unrun)} collected but did not run "
                     "(deselected, stopped by -x or interrupted)" + (f"; ran: {', '.join(ran)}" if ran else ""))
    if status == "partial":
        for r in results:
            if r.outcome == "skipped" and not r.out_of_scope:
                parts.append(f"partial: {r.name} skipped: {r.message}")
            elif r.outcome == "passed" and r.proof != "live":
                why = "; ".join(r.proof_notes) or "no live observation"
                parts.append(f"partial: {r.name} proved it on {r.proof} proof only: {why}")
    for r in results:
        if r.outcome == "skipped":
            if status != "partial" or r.out_of_scope:
                parts.append(f"{r.name}: skipped: {r.message}")
            continue
        parts.extend(r.evidence)
        if r.outcome == "failed":
            parts.append(f"{r.name} FAILED: {r.message}")
    # Repeated lines (many checks, one target limitation) are said once.
    return "\n".join(dict.fromkeys(parts))


def build(results: list[CheckResult], collected: dict[str, str] | None = None,
          unavailable: dict[str, str] | None = None) -> list[CriterionStatus]:
    """`collected`: nodeid -> criterion of every check collected (deselected ones included): one
    without a result did not run. `unavailable`: scope -> why the target cannot check it; a
    criterion with no check whose every scope is unavailable is skipped for that reason."""
    unavailable, collected = unavailable or {}, collected or {}
    done = {r.nodeid for r in results}
    rows = []
    for c in catalog.load():
        mine = [r for r in results if r.criterion == c.id]
        unrun = sorted(n for n, cid in collected.items() if cid == c.id and n not in done)
        status = _judge(mine, unrun)
        evidence = _evidence(mine, unrun, status)
        if status in ("not-covered", "not-run") and all(s in unavailable for s in c.scopes):
            # Unrun or absent, this target could not have checked it anyway.
            status, evidence = "skipped", "; ".join(dict.fromkeys(unavailable[s] for s in c.scopes))
        elif status == "not-covered":
            evidence = "no check of it was collected in this run (none exists yet, or its suite file was not given)"
        failures = [r for r in mine if r.outcome == "failed"]
        unchecked = list(c.scopes) if status == "skipped" else [s for s in c.scopes if s in unavailable]
        blockers = [r.blocked_by or blocked_by(r.message) for r in failures]
        rows.append(CriterionStatus(
            id=c.id, scope=", ".join(c.scopes), criterion=c.text, status=status, evidence=evidence,
            checks=[r.nodeid for r in mine] + unrun, logs=sorted({log for r in mine for log in r.logs}),
            proof=weakest(r.proof for r in mine if r.outcome == "passed"),
            blocked_by=sorted(set(blockers)) if failures and all(blockers) else [],
            section=c.section, figures=[f for r in mine for f in r.figures], unchecked_scopes=unchecked,
        ))
    return rows


def counts(rows: list[CriterionStatus]) -> dict[str, int]:
    found = dict.fromkeys(STATUSES, 0)
    for row in rows:
        found[row.status] += 1
    return found


def parse_scopes(given) -> tuple[str, ...]:
    """`--require-scope` values (repeatable, each a comma list) as catalog scopes, in the order given;
    ValueError naming a value that is not one."""
    found = []
    for item in given or ():
        for part in str(item).split(","):
            scope = part.strip()
            if scope not in catalog.SCOPES:
                raise ValueError(f"--require-scope {scope!r}: not a scope of the catalog "
                                 f"(choose from {', '.join(catalog.SCOPES)})")
            found.append(scope)
    return tuple(dict.fromkeys(found))


@dataclass
class ScopeCoverage:
    """Which rows of one scope the verdict judged (a row of several scopes counts for each)."""
    scope: str
    rows: list[str]
    skipped: list[str]  # rows whose part of this scope was not checked

    @property
    def judged(self) -> int:
        return len(self.rows) - len(self.skipped)

    @property
    def state(self) -> str:  # covered | partly | not checked
        if not self.skipped:
            return "covered"
        return "partly" if self.judged else "not checked"

    def describe(self) -> str:
        n = f"{len(self.rows)} row{'s' if len(self.rows) != 1 else ''}"
        if self.state == "covered":
            return f"{self.scope} (all {n})"
        if self.state == "partly":
            return f"{self.scope} ({self.judged} of {n}; not checked: {', '.join(self.skipped)})"
        return f"{self.scope} (none of its {n})"


def coverage(rows: list[CriterionStatus]) -> dict[str, ScopeCoverage]:
    """scope -> the rows of that scope and those whose part of it was not checked, for every scope of the
    catalog."""
    found = {s: ScopeCoverage(s, [], []) for s in catalog.SCOPES}
    for r in rows:
        unchecked = set(r.unchecked_scopes) | ({s.strip() for s in r.scope.split(",")} if r.status == "skipped"
                                               else set())
        for scope in (s.strip() for s in r.scope.split(",")):
            entry = found.setdefault(scope, ScopeCoverage(scope, [], []))
            entry.rows.append(r.id)
            if scope in unchecked:
                entry.skipped.append(r.id)
    return found


def scope_gap(c: ScopeCoverage) -> str:
    """Why a required scope keeps the verdict from ACCEPTED."""
    if c.state == "not checked":
        return f"required scope {c.scope} not checked on this target (none of its {len(c.rows)} rows)"
    return f"required scope {c.scope} not fully checked on this target ({', '.join(c.skipped)} not checked)"


@dataclass
class Verdict:
    verdict: str  # ACCEPTED | REJECTED | INCOMPLETE
    counts: dict[str, int]
    root_failures: list[str]  # failed rows that are not consequences of another
    blocked: dict[str, list[str]]  # failed row -> the criteria that blocked it
    incomplete: list[str]  # partial, not-run and not-covered rows
    by_component: dict[str, dict[str, int]]
    required_scopes: list[str] = field(default_factory=list)
    covered_scopes: list[str] = field(default_factory=list)  # every row of the scope was judged
    unchecked_scopes: dict[str, list[str]] = field(default_factory=dict)  # scope -> its skipped rows
    scope_gaps: list[str] = field(default_factory=list)  # required scopes with skipped rows, said why

    def line(self) -> str:
        shown = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        text = f"{self.verdict}: {shown}"
        if self.root_failures:
            text += f"; root failures: {', '.join(self.root_failures)}"
        if self.blocked:
            text += "; blocked: " + ", ".join(f"{k} (by {', '.join(v)})" for k, v in self.blocked.items())
        if self.scope_gaps:
            text += "; " + "; ".join(self.scope_gaps)
        return text


def verdict(rows: list[CriterionStatus], required: tuple[str, ...] | list[str] = ()) -> Verdict:
    """ACCEPTED when every row in the target's scope (every row not `skipped`) passed, at least one
    did, and no row of a `required` scope was skipped; REJECTED when any failed; INCOMPLETE
    otherwise."""
    found = counts(rows)
    failed = [r for r in rows if r.status == "failed"]
    in_scope = [r for r in rows if r.status != "skipped"]
    scopes = coverage(rows)
    gaps = [scope_gap(scopes[s]) for s in required if s in scopes and scopes[s].skipped]
    if failed:
        word = "REJECTED"
    elif not gaps and in_scope and all(r.status == "passed" for r in in_scope):
        word = "ACCEPTED"
    else:
        word = "INCOMPLETE"
    by_component: dict[str, dict[str, int]] = {}
    for r in rows:
        component = by_component.setdefault(r.section, {})
        component[r.status] = component.get(r.status, 0) + 1
    return Verdict(
        verdict=word, counts=found,
        root_failures=[r.id for r in failed if not r.blocked_by],
        blocked={r.id: r.blocked_by for r in failed if r.blocked_by},
        incomplete=[r.id for r in rows if r.status in ("partial", "not-run", "not-covered")],
        by_component=by_component,
        required_scopes=list(required),
        covered_scopes=[s for s, c in scopes.items() if c.rows and c.state == "covered"],
        unchecked_scopes={s: c.skipped for s, c in scopes.items() if c.skipped},
        scope_gaps=gaps,
    )


def write_json(path: Path, rows: list[CriterionStatus], target: str, versions: dict, values: dict,
               duration_s: float, notes: list[str], required: tuple[str, ...] | list[str] = ()) -> None:
    v = verdict(rows, required)
    path.write_text(json.dumps({
        "target": target,
        "verdict": v.verdict,
        "verdict_detail": {"root_failures": v.root_failures, "blocked": v.blocked, "incomplete": v.incomplete,
                           "by_component": v.by_component, "required_scopes": v.required_scopes,
                           "covered_scopes": v.covered_scopes, "unchecked_scopes": v.unchecked_scopes,
                           "scope_gaps": v.scope_gaps},
        "summary": counts(rows),
        "criteria": [{k: val for k, val in asdict(r).items() if k not in ("figures", "section")} for r in rows],
        "versions": versions,
        "values": values,
        "notes": notes,
        "duration_s": round(duration_s, 1),
    }, indent=2) + "\n")


_COLOURS = {"passed": "#1b7f3b", "partial": "#b26a00", "failed": "#c62828", "skipped": "#8d6e00",
            "not-run": "#6a1b9a", "not-covered": "#555"}
_VERDICT_COLOURS = {"ACCEPTED": "#1b7f3b", "REJECTED": "#c62828", "INCOMPLETE": "#b26a00"}


def scope_line(rows: list[CriterionStatus], required: tuple[str, ...] | list[str] = ()) -> str:
    """What the verdict covers, so an ACCEPTED on a narrow target is not read as the whole catalog."""
    skipped = [r.id for r in rows if r.status == "skipped"]
    judged = len(rows) - len(skipped)
    if not skipped:
        text = f"the verdict covers all {len(rows)} criteria of the catalog"
    else:
        text = (f"the verdict covers the {judged} of {len(rows)} criteria this target could check; "
                f"{len(skipped)} skipped (each with its reason below) are outside it: {', '.join(skipped)}")
    return f"{text}. {scopes_line(rows, required)}"


def scopes_line(rows: list[CriterionStatus], required: tuple[str, ...] | list[str] = ()) -> str:
    """The verdict's scopes: covered, partly covered, not checked, and which the run required."""
    by_state: dict[str, list[str]] = {}
    for c in coverage(rows).values():
        if c.rows:
            by_state.setdefault(c.state, []).append(c.describe())
    parts = [f"{state}: {', '.join(found)}" for state in ("covered", "partly", "not checked")
             if (found := by_state.get(state))]
    parts.append(f"required: {', '.join(required) or 'none'}")
    return "scopes " + "; ".join(parts)


def html_banner(rows: list[CriterionStatus], target: str, required: tuple[str, ...] | list[str] = ()) -> str:
    """The verdict, first thing on the page: counts overall and per component."""
    e = html.escape
    v = verdict(rows, required)
    colour = _VERDICT_COLOURS[v.verdict]
    head = "".join(f"<th>{e(s)}</th>" for s in STATUSES)
    body = "".join(
        f"<tr><td>{e(section)}</td>" + "".join(f"<td>{n.get(s, 0) or ''}</td>" for s in STATUSES) + "</tr>"
        for section, n in v.by_component.items())
    details = []
    if v.root_failures:
        details.append(f"<p><b>Root failures:</b> {e(', '.join(v.root_failures))}</p>")
    if v.blocked:
        details.append("<p><b>Blocked (not judged, a consequence):</b> "
                       + e(", ".join(f"{k} by {', '.join(b)}" for k, b in v.blocked.items())) + "</p>")
    if v.scope_gaps:
        details.append(f"<p><b>Required scope not checked:</b> {e('; '.join(v.scope_gaps))}</p>")
    if v.incomplete:
        details.append(f"<p><b>Not proven here:</b> {e(', '.join(v.incomplete))}</p>")
    details.append(f"<p><b>Scope:</b> {e(scope_line(rows, required))}</p>")
    return f"""
<div id="verdict" style="border:4px solid {colour};padding:8px 16px;margin:8px 0 16px 0">
<h1 style="color:{colour};margin:4px 0">{e(v.verdict)} &middot; {e(target)} target</h1>
<p style="font-size:1.1em">{e(v.line())}</p>
{''.join(details)}
<table border="1" cellpadding="3" style="border-collapse:collapse"><thead><tr><th>component</th>{head}</tr></thead>
<tbody>{body}</tbody></table>
</div>
"""


def html_table(rows: list[CriterionStatus], target: str, versions: dict, values: dict, duration_s: float,
               notes: list[str], required: tuple[str, ...] | list[str] = ()) -> str:
    """The sign-off section of the HTML report."""
    e = html.escape
    summary = ", ".join(f"{n} {s}" for s, n in counts(rows).items())
    body = []
    for r in rows:
        logs = " ".join(f'<a href="{e(log)}">{e(Path(log).name)}</a>' for log in r.logs)
        body.append(
            f'<tr><td><b>{e(r.id)}</b></td><td>{e(r.scope)}</td>'
            f'<td style="color:{_COLOURS[r.status]};font-weight:bold">{e(r.status)}</td>'
            f'<td>{e(r.proof or "")}</td>'
            f'<td>{e(r.criterion)}</td><td style="white-space:pre-wrap">{e(r.evidence)}</td><td>{logs}</td></tr>'
        )
        if r.figures:  # the checks' own SVG (reports/charts.py escapes its texts), under the row
            body.append(f'<tr><td colspan="7">{"".join(r.figures)}</td></tr>')
    version_rows = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in versions.items())
    note_items = "".join(f"<li>{e(n)}</li>" for n in notes)
    return f"""
<section id="signoff">
<h2>Sign-off: {e(target)} target</h2>
<p>{e(verdict(rows, required).verdict)}: {e(summary)} &middot; verdict in {duration_s:.1f} s</p>
<table class="signoff" border="1" cellpadding="4" style="border-collapse:collapse;width:100%">
<thead><tr><th>ID</th><th>Scope</th><th>Status</th><th>Proof</th><th>Criterion</th><th>Evidence / reason</th>
<th>Logs</th></tr></thead>
<tbody>{''.join(body)}</tbody></table>
<h3>Environment</h3>
<table border="1" cellpadding="4" style="border-collapse:collapse"><tbody>
<tr><td>target</td><td>{e(target)}</td></tr>{version_rows}</tbody></table>
<ul>{note_items}</ul>
<details><summary>Values used (secrets redacted)</summary><pre>{e(json.dumps(values, indent=2))}</pre></details>
</section>
"""
