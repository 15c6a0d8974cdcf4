"""pytest plugin: gathers each check's outcome and evidence, writes the three reports.

It never talks to the stack: the fixtures plugin hands it the environment
(target, versions, values, notes, secrets) through `environment(config)`.

The run's state lives on one `AcceptanceReport` object, registered with pytest's
plugin manager when a run is an acceptance run (as pytest-html registers its
report object); its methods are the hooks. The only module-level table is the
report folders this process holds locked (the kernel releases them at exit).
"""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlops_acceptance.reports import signoff
from mlops_acceptance.reports.redact import Redactor

# The checkout's root, or the installed package's folder (mlops_acceptance/): `suites` is beside us in both.
ROOT = Path(__file__).resolve().parent.parent
# Under the directory pytest was started in: an installed suite's own folder may not be writable.
DEFAULT_DIR = Path("reports") / "out"


@dataclass
class RunEnvironment:
    target: str = "unknown"
    versions: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    secrets: list = field(default_factory=list)
    unavailable: dict = field(default_factory=dict)  # scope -> why the target cannot check it
    # scopes the verdict must cover to be ACCEPTED: --require-scope, else the target's default
    required_scopes: tuple = ()


_ENV = pytest.StashKey[RunEnvironment]()
PLUGIN_NAME = "acceptance-report"


def environment(config: pytest.Config) -> RunEnvironment:
    """What the fixtures side tells the report about the run (create on first use)."""
    if _ENV not in config.stash:
        config.stash[_ENV] = RunEnvironment()
    return config.stash[_ENV]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("acceptance")
    group.addoption("--report-dir", default=None, metavar="DIR",
                    help="where acceptance.html, junit.xml and signoff.json go (default: reports/out under the "
                    "current directory)")
    group.addoption("--require-accepted", action="store_true",
                    help="exit non-zero unless the verdict is ACCEPTED (a CI gate; pytest's own exit code otherwise)")
    group.addoption("--require-scope", action="append", default=[], metavar="SCOPE[,SCOPE]",
                    help="scopes the verdict must cover to be ACCEPTED (service, k8s, gpu, disruptive; repeatable "
                    "or a comma list): a required scope whose rows are skipped on this target makes the verdict "
                    "INCOMPLETE (default: service, plus k8s on the Kubernetes targets)")


def _is_acceptance_run(config: pytest.Config) -> bool:
    if config.getoption("report_dir"):
        return True
    suites = (ROOT / "suites").resolve()
    paths = [_arg_path(config, a.split("::")[0]) for a in config.args] or [Path.cwd()]
    return any(p == suites or suites in p.parents or p == ROOT for p in paths)


def _arg_path(config: pytest.Config, arg: str) -> Path:
    """An argument as the path pytest collects: with --pyargs, a module name is its file or folder
    (`--pyargs mlops_acceptance.suites` is the installed suite)."""
    if config.option.pyargs and not (config.invocation_params.dir / arg).exists():
        try:
            spec = importlib.util.find_spec(arg)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            origin = Path(spec.origin)
            return (origin.parent if origin.name == "__init__.py" else origin).resolve()
    return (config.invocation_params.dir / arg).resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Installed runs read no ini file: the marker is declared here, not in pyproject.toml.
    config.addinivalue_line("markers", "criterion(id): the acceptance criterion (reports/criteria.md) a check proves")
    if not _is_acceptance_run(config) or hasattr(config, "workerinput"):
        return
    wanted = (config.invocation_params.dir / (config.getoption("report_dir") or DEFAULT_DIR)).resolve()
    report_dir = _claim(wanted)
    if report_dir != wanted:
        # Two runs at once (two `tox -e local`): the second must not overwrite the first's reports.
        print(f"{wanted} is in use by another run: this run writes its reports to {report_dir}", file=sys.stderr)
    shutil.rmtree(report_dir / "logs", ignore_errors=True)
    for stale in ("signoff.json", "acceptance.html", "junit.xml"):
        (report_dir / stale).unlink(missing_ok=True)
    # pytest-html and junitxml read these options in their own pytest_configure, which runs after ours.
    if not config.option.htmlpath:
        config.option.htmlpath = str(report_dir / "acceptance.html")
    config.option.self_contained_html = True
    if not config.option.xmlpath:
        config.option.xmlpath = str(report_dir / "junit.xml")
    config.pluginmanager.register(AcceptanceReport(config, report_dir), PLUGIN_NAME)


# Report folders this process holds (folder -> the open lock file); the kernel releases them at exit.
_CLAIMED: dict[Path, object] = {}


def _claim(wanted: Path) -> Path:
    """`wanted`, or `wanted-2`, `wanted-3`, ... when another run on the machine holds it now.

    The lock is a file beside the folder (`.out.lock` for `out`), held for the life of the run."""
    for n in range(1, 100):
        folder = wanted if n == 1 else wanted.with_name(f"{wanted.name}-{n}")
        if folder in _CLAIMED:
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(folder.parent / f".{folder.name}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        folder.mkdir(exist_ok=True)
        _CLAIMED[folder] = lock
        return folder
    raise pytest.UsageError(f"--report-dir {wanted}: it and 98 numbered siblings are in use by other runs")


def _state(config: pytest.Config) -> AcceptanceReport | None:
    """The run's report object; None when this is not an acceptance run."""
    return config.pluginmanager.get_plugin(PLUGIN_NAME)


def record_log(config: pytest.Config, nodeid: str, name: str, source: Path) -> str | None:
    """Copy a component's log (secrets redacted) next to the reports; return its report-relative path."""
    state = _state(config)
    return state.record_log(nodeid, name, source) if state is not None else None


class AcceptanceReport:
    """One acceptance run's reporting: each check's outcome and evidence, then the three reports."""

    def __init__(self, config: pytest.Config, report_dir: Path):
        self.config = config
        self.report_dir = report_dir
        self.started = time.monotonic()
        self.criteria: dict[str, str] = {}  # nodeid -> criterion id, deselected included
        self.results: dict[str, signoff.CheckResult] = {}
        self.html_report = None  # pytest-html's report object: its title carries the verdict
        self.rows: list | None = None
        self.duration = 0.0

    def record_log(self, nodeid: str, name: str, source: Path) -> str | None:
        if not source.exists():
            return None
        target = self.report_dir / "logs" / f"{name}.log"
        target.parent.mkdir(exist_ok=True)
        target.write_text(Redactor(environment(self.config).secrets).text(
            source.read_text(errors="replace")[-200_000:]))
        relative = f"logs/{target.name}"
        result = self.results.get(nodeid)
        if result is not None and relative not in result.logs:
            result.logs.append(relative)
        return relative

    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            marker = item.get_closest_marker("criterion")
            if marker:
                self.criteria[item.nodeid] = marker.args[0]

    def pytest_deselected(self, items) -> None:
        """Deselected checks stay collected: their criteria read `not-run`, never "no check exists"."""
        for item in items:
            marker = item.get_closest_marker("criterion")
            if marker:
                self.criteria[item.nodeid] = marker.args[0]

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes the properties
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.criteria:
            return
        result = self.results.setdefault(
            report.nodeid, signoff.CheckResult(report.nodeid, self.criteria[report.nodeid], "passed"))
        result.evidence.extend(v for k, v in report.user_properties if k == "evidence" and v not in result.evidence)
        for k, v in report.user_properties:
            if k == "log" and v not in result.logs:
                result.logs.append(v)
            if k == "figure" and v not in result.figures:
                result.figures.append(v)
            if k == "proof_note" and v not in result.proof_notes:
                result.proof_notes.append(v)
            if k == "out_of_scope":
                result.out_of_scope = True
            if k == "blocked_by":
                result.blocked_by = v
        proofs = [v for k, v in report.user_properties if k == "proof"]
        if proofs and report.when == "call":
            result.proof = signoff.weakest(proofs)
        # Charts belong to the HTML sign-off; junit.xml would carry each SVG as a property.
        report.user_properties = [(k, v) for k, v in report.user_properties if k != "figure"]
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            if result.outcome != "failed":
                result.outcome = "skipped"
                result.message = reason.removeprefix("Skipped: ")
        elif report.failed:
            result.outcome = "failed"
            result.message = _failure_text(report)
            result.blocked_by = result.blocked_by or signoff.blocked_by(result.message)


    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        env = environment(self.config)
        redact = Redactor(env.secrets)
        for result in self.results.values():
            result.evidence = [redact.text(e) for e in result.evidence]
            result.message = redact.text(result.message)
        rows = signoff.build(list(self.results.values()), self.criteria, env.unavailable)
        self.rows, self.duration = rows, time.monotonic() - self.started
        signoff.write_json(self.report_dir / "signoff.json", rows, env.target, env.versions, env.values,
                           self.duration, env.notes, env.required_scopes)
        verdict = signoff.verdict(rows, env.required_scopes)
        _junit_properties(self.config, rows, verdict)
        if self.html_report is not None:
            self.html_report.title = f"MLOps stack acceptance: {verdict.verdict} ({env.target} target)"
        # pytest's exit code stays; the gate turns anything but ACCEPTED into a failure.
        if self.config.getoption("require_accepted") and verdict.verdict != "ACCEPTED" and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix, summary, postfix, session) -> None:
        if self.rows is None:
            return
        env = environment(self.config)
        prefix.insert(0, signoff.html_table(self.rows, env.target, env.versions, env.values, self.duration,
                                            env.notes, env.required_scopes))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report) -> None:
        report.title = "MLOps stack acceptance"
        self.html_report = report

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.rows is None:
            return
        tr = terminalreporter
        tr.write_sep("=", f"sign-off ({environment(self.config).target} target, {self.duration:.1f} s)")
        for row in self.rows:
            tr.write_line(f"{row.status:<12} {row.proof or '':<10} {row.id:<22} "
                          f"{row.evidence.splitlines()[0][:100] if row.evidence else ''}")
        required = environment(self.config).required_scopes
        verdict = signoff.verdict(self.rows, required)
        tr.write_line(f"VERDICT {verdict.line()}", bold=True,
                      **{"green" if verdict.verdict == "ACCEPTED" else "red": True})
        tr.write_line(signoff.scopes_line(self.rows, required))
        tr.write_line(f"reports: {self.report_dir}/{{acceptance.html,signoff.json,junit.xml}}")

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._banner_first()
        # A last pass over every written file: captured output may hold what a check printed.
        redact = Redactor(environment(config).secrets)
        for path in self.report_dir.rglob("*"):
            if path.is_file():
                redact.file(path)
        config.pluginmanager.unregister(self)

    def _banner_first(self) -> None:
        """The verdict banner goes right after <body>, above pytest-html's own header."""
        page = Path(self.config.option.htmlpath or "")
        if self.rows is None or not page.is_file():
            return
        text = page.read_text()
        if 'id="verdict"' in text:
            return
        env = environment(self.config)
        page.write_text(text.replace("<body>", "<body>" + signoff.html_banner(self.rows, env.target,
                                                                               env.required_scopes), 1))


def _failure_text(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash else str(report.longrepr)
    phase = "" if report.when == "call" else f"(in {report.when}) "
    text = text.strip()
    if len(text) > 3000:  # the head says what failed, the end (a log's last lines) says why
        text = f"{text[:1000]}\n[...]\n{text[-2000:]}"
    return phase + text


def _junit_properties(config: pytest.Config, rows, verdict) -> None:
    """The verdict, its counts and each row's status and proof as properties of the JUnit test suite."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    xml.add_global_property("verdict", verdict.verdict)
    for status, n in verdict.counts.items():
        xml.add_global_property(f"count.{status}", n)
    if verdict.root_failures:
        xml.add_global_property("root_failures", ",".join(verdict.root_failures))
    xml.add_global_property("scopes.required", ",".join(verdict.required_scopes))
    xml.add_global_property("scopes.covered", ",".join(verdict.covered_scopes))
    xml.add_global_property("scopes.unchecked", ",".join(verdict.unchecked_scopes))
    if verdict.scope_gaps:
        xml.add_global_property("scope_gaps", "; ".join(verdict.scope_gaps))
    for row in rows:
        blocked = f" blocked by {','.join(row.blocked_by)}" if row.blocked_by else ""
        xml.add_global_property(f"criterion.{row.id}", f"{row.status} ({row.proof or 'no proof'}){blocked}")
