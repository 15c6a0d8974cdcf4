"""Preconditions the checks share. A check that cannot be judged because another criterion's
precondition failed says `blocked by <ID>` (evidence.blocked_by), so the report names the root
failure apart from its consequences."""

import pytest


@pytest.fixture
def mlflow_database(stack, values, evidence):
    """The configured PostgreSQL database; checks that read MLflow's tables need it (3.2-database)."""
    if not stack.postgres.has_database:
        evidence.blocked_by("3.2-database", f"database {values.postgresql_database!r} does not exist, so "
                                            "nothing can be read from it")
    return stack.postgres
