"""The example project's own tests (example/demo/tests.py, written with
offload.testing) pass under ``manage.py test``."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_the_example_projects_tests_pass() -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "test", "demo", "-v", "2", "--noinput"],
        cwd=ROOT / "example",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "demo_site.settings"},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ran 5 tests" in output, output
    assert "OK" in output, output
