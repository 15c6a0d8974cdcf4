"""--postgres-dsn is read by libpq's rules (psycopg.conninfo): either form, any password, no port needed."""

from __future__ import annotations

import pytest

from mlops_acceptance.fixtures.external import _dsn_problems

HARD = "S3cr3t!pass#1 @:/%;'\\x"


@pytest.mark.parametrize("dsn", ["postgresql://u@db.example/app", "host=db.example user=u dbname=app",
                                 "postgresql://u:S3cr3t%21pass%231@db.example:6432/app"])
def test_a_well_formed_dsn_passes_with_or_without_port_or_password(dsn):
    assert _dsn_problems(dsn) == []


def test_a_dsn_missing_a_host_is_named_without_its_value():
    from psycopg.conninfo import make_conninfo

    problems = _dsn_problems(make_conninfo(user="u", password=HARD, dbname="app"))
    assert problems == ["--postgres-dsn: names no host (value not shown)"]
    assert HARD not in problems[0]
