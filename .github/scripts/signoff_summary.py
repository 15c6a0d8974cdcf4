"""The job summary of a nightly acceptance run (nightly-kind.yml, nightly-gpu.yml): the verdict and
the sign-off table from signoff.json, then the JUnit counts and failures from junit.xml.

    REPORT_DIR=reports/out/kind SUMMARY_TITLE="Nightly acceptance on kind" python .github/scripts/signoff_summary.py

Appends Markdown to $GITHUB_STEP_SUMMARY (prints it without one). Missing or unreadable reports are
said in the summary (the run ended before writing them); the script itself always exits 0, so the
job's result stays the acceptance run's. Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import json
import os
import pathlib
import xml.etree.ElementTree as ET


def cell(text, limit=300):
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.replace("|", "\\|")


def signoff_lines(report: pathlib.Path) -> list[str]:
    signoff_file = report / "signoff.json"
    try:
        signoff = json.loads(signoff_file.read_text())
    except (OSError, ValueError) as exc:
        return [f"**No sign-off**: {signoff_file} could not be read ({exc.__class__.__name__}); "
                "the run ended before the report was written: see the job log."]
    counts = ", ".join(f"{n} {status}" for status, n in (signoff.get("summary") or {}).items())
    out = [f"**{signoff.get('verdict', 'no verdict')}**: target `{signoff.get('target')}`, "
           f"{signoff.get('duration_s', 0)} s: {counts}",
           "", "| criterion | status | evidence |", "|---|---|---|"]
    for row in signoff.get("criteria", []):
        status = row.get("status", "")
        if status == "failed":
            status = "**failed**"
        out.append(f"| {cell(row.get('id', ''))} | {status} | {cell(row.get('evidence', ''))} |")
    return out


def junit_lines(report: pathlib.Path) -> list[str]:
    junit_file = report / "junit.xml"
    try:
        root = ET.parse(junit_file).getroot()
    except (OSError, ET.ParseError) as exc:
        return [f"No JUnit result: {junit_file} could not be read ({exc.__class__.__name__})."]
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = {k: sum(int(s.get(k, 0) or 0) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    out = ["### JUnit", "",
           f"{total['tests']} tests: {total['failures']} failed, {total['errors']} errors, {total['skipped']} skipped"]
    broken = [(case, problem) for case in root.iter("testcase")
              for problem in list(case) if problem.tag in ("failure", "error")]
    if broken:
        out += ["", "| test | problem |", "|---|---|"]
        for case, problem in broken[:50]:
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            out.append(f"| {cell(name, 200)} | {problem.tag}: {cell(problem.get('message', ''))} |")
        if len(broken) > 50:
            out.append(f"| ... | {len(broken) - 50} more in junit.xml |")
    return out


def summary(report: pathlib.Path, title: str) -> str:
    return "\n".join([f"## {title}", "", *signoff_lines(report), "", *junit_lines(report)]) + "\n"


def main() -> int:
    text = summary(pathlib.Path(os.environ["REPORT_DIR"]), os.environ.get("SUMMARY_TITLE", "Acceptance"))
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
