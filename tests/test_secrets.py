"""Secrets that are not the spec's defaults: passwords holding `@ : / % ; # ' "` and spaces work, and no
output of a run carries one, as written, percent-encoded or base64-encoded."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import secrets
import signal
import string
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import psutil
import yaml
from psycopg.conninfo import conninfo_to_dict

from mlops_acceptance.fixtures.capabilities.postgres import password_of, with_password
from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.local.postgres import split_statements
from mlops_acceptance.reports.redact import Redactor
from tests.conftest import statuses
from tests.leftovers import assert_nothing_left, stop_processes_under

AWKWARD = "@:/%;#'\" "


def awkward_secret(length: int = 24) -> str:
    """Random letters and digits with every awkward character somewhere inside (not at the ends)."""
    body = [secrets.choice(string.ascii_letters + string.digits) for _ in range(length)]
    for c in AWKWARD:
        body.insert(1 + secrets.randbelow(len(body) - 1), c)
    return "".join(body)


def spellings(secret: str) -> set[str]:
    """How a secret could be written into an output: as is, percent-encoded, base64 (checked apart)."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def _decoded_base64_runs(text: str) -> list[bytes]:
    """Every run of base64 characters in `text`, decoded at each of the four alignments."""
    found = []
    for run in re.findall(r"[A-Za-z0-9+/_-]{12,}={0,2}", text):
        run = run.rstrip("=").replace("-", "+").replace("_", "/")
        for start in range(4):
            chunk = run[start:]
            if len(chunk) % 4 == 1:  # a lone trailing character encodes no whole byte
                chunk = chunk[:-1]
            chunk += "=" * (-len(chunk) % 4)
            try:
                found.append(base64.b64decode(chunk))
            except ValueError:
                continue
    return found


def leaks(text: str, secret: str) -> list[str]:
    """Which spellings of `secret` `text` carries (also after undoing HTML and JSON/repr escaping)."""
    views = {text, html.unescape(text)}
    views |= {v.replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\") for v in list(views)}
    found = [s for s in spellings(secret) if any(s in v for v in views)]
    if any(secret.encode() in blob for v in views for blob in _decoded_base64_runs(v)):
        found.append("base64")
    return found


def test_leak_finder_finds_every_spelling():
    """The grep below must be able to fail: each spelling of a secret is found."""
    secret = awkward_secret()
    for text in (f"x {secret} y", f"uri=postgresql://u:{quote(secret, safe='')}@h/db", f"q={quote_plus(secret)}",
                 html.escape(f"<p>{secret}</p>"), '{"p": %s}' % json.dumps(secret),
                 "Authorization: Basic " + base64.b64encode(f"user:{secret}".encode()).decode(),
                 "data: " + base64.urlsafe_b64encode(f"ab{secret}".encode()).decode()):
        assert leaks(text, secret), text


def test_redactor_masks_every_spelling():
    secret = awkward_secret()
    texts = [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), html.escape(secret),
             repr(secret), json.dumps(secret)]
    texts += [base64.b64encode((prefix + secret + suffix).encode()).decode()
              for prefix in ("", "u:", "us:", "use:") for suffix in ("", "x", "xy")]
    cleaned = Redactor([secret]).text("\n".join(texts))
    assert not leaks(cleaned, secret), cleaned


def test_init_sql_keeps_a_password_literal_whole():
    password = "a;b'c -- d\"e"
    statements = split_statements(f"-- comment; here\nCREATE ROLE x LOGIN PASSWORD '{password.replace(chr(39), chr(39) * 2)}';"
                                  "\nCREATE DATABASE y OWNER x;\n")
    assert statements == ["CREATE ROLE x LOGIN PASSWORD 'a;b''c -- d\"e'", "CREATE DATABASE y OWNER x"]


def test_dsns_are_built_and_parsed_by_libpq_rules():
    password = awkward_secret()
    conninfo = with_password("postgresql://mlflow@db.example:5433/mlflow", password)
    assert conninfo_to_dict(conninfo)["password"] == password
    assert password_of(f"postgresql://mlflow:{quote(password, safe='')}@db:5432/mlflow") == password
    values = load_values(sets=[f"mlflow_backend_store_uri=postgresql://mlflow:{quote(password, safe='')}@pg:5432/m"])
    assert password in values.secrets(), "the backend URI's password is a secret as the server sees it (decoded)"
    assert password not in repr(values) and quote(password, safe="") not in repr(values)


def _stop_kept(pids: list[int], workdir: Path) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 60
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            break
        time.sleep(0.5)
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)


def test_awkward_secrets_work_and_never_reach_an_output(suite_run, run_tmpdir, tmp_path):
    access_key = "acc" + secrets.token_hex(8)  # an access key is part of a SigV4 header: letters and digits
    s3_secret, pg_password = awkward_secret(), awkward_secret()
    values = tmp_path / "secrets.yaml"
    values.write_text(yaml.safe_dump({
        "minio_access_key": access_key, "minio_secret_key": s3_secret,
        "mlflow_aws_access_key_id": access_key, "mlflow_aws_secret_access_key": s3_secret,
        "postgresql_password": pg_password,
        "mlflow_backend_store_uri": f"postgresql://mlflow:{quote(pg_password, safe='')}@postgresql:5432/mlflow",
    }))
    # MLServer dies after the first inference check: failures, error messages and every log copied
    # into the report, and the --keep-stack message, all with these secrets in play.
    try:
        done, signoff = suite_run("--values", str(values), "--keep-stack", "--set", "load_duration_s=3",
                                  "-p", "tests.midrun", "--break", "mlserver=kill",
                                  "--break-after", "suites/test_34_kserve.py", timeout=1200)
        output = done.stdout + done.stderr
        kept = re.search(r"stop it with: kill -TERM -- (.+); rm -rf (\S+)", output)
        if kept:  # stopped the way the message says
            _stop_kept([int(p.lstrip("-")) for p in kept.group(1).split()], Path(kept.group(2)))
    finally:
        stop_processes_under(run_tmpdir)  # whatever the message did not stop
    assert kept, f"no --keep-stack message:\n{output[-3000:]}"
    assert signoff is not None, output[-3000:]
    status = statuses(signoff)
    # The secrets work: every check of S3, PostgreSQL and MLflow (client, artifacts, registry) passed.
    for cid in ("3.1-auth", "3.1-buckets", "3.1-roundtrip", "3.2-database", "3.3-backend",
                "3.3-artifacts", "3.3-registry", "3.3-client"):
        assert status[cid] == "passed", f"{cid}: {status[cid]}"
    # The backup's dump and restore ran with these secrets; its schedule is a Kubernetes object: partial here.
    backup = next(c for c in signoff["criteria"] if c["id"] == "3.2-backup")
    assert backup["status"] == "partial" and "restored into" in backup["evidence"], backup
    assert status["3.4-inference"] == "failed"
    report_dir = tmp_path / "report"
    outputs = {"pytest output": output}
    outputs |= {str(p.relative_to(report_dir)): p.read_text(errors="replace") for p in report_dir.rglob("*")
                if p.is_file()}
    assert {"acceptance.html", "signoff.json", "junit.xml"} <= set(outputs), sorted(outputs)
    assert any(name.startswith("logs/") for name in outputs), "no log was copied into the report"
    found = {(name, which): spelled for name, text in outputs.items()
             for which, secret in (("S3 secret", s3_secret), ("PostgreSQL password", pg_password),
                                   ("access key", access_key))
             for spelled in [leaks(text, secret)] if spelled}
    assert not found, f"secrets in the outputs: {found}"
    assert_nothing_left(run_tmpdir)
