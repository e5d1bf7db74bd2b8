"""Migration hygiene: the models and the migrations agree."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db(transaction=True, databases=["default", "queue"])
def test_no_missing_migrations():
    out = StringIO()
    # --check exits non-zero (SystemExit) when a migration is missing.
    call_command("makemigrations", "offload", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
