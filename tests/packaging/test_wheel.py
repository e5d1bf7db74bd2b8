"""The built package, installed as a user would install it.

The wheel is built from this checkout, installed into a new virtual
environment, and used from a copy of the demo project in a temporary folder:
nothing of the checkout is importable there, so templates, static files and
migrations must come from the wheel itself.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "src" / "offload" / "migrations"

pytestmark = pytest.mark.skipif(
    os.environ.get("OFFLOAD_TEST_DB", "sqlite") != "sqlite",
    reason="the package is built and installed once, in the SQLite run",
)


def _uv() -> str:
    """The uv that scripts/test found (it exports OFFLOAD_UV), else one on PATH."""
    found = os.environ.get("OFFLOAD_UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to build and install the wheel: run the suite with scripts/test")
    return found


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(_uv(), "build", "--quiet", "--out-dir", out, cwd=ROOT)
    return out


def test_wheel_holds_what_the_app_needs(dist: Path) -> None:
    (wheel,) = dist.glob("django_offload-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "offload/py.typed",
        "offload/migrations/0001_initial.py",
        "offload/static/offload/dashboard.js",
        # The dashboard's charts: served from the package, never from a CDN.
        "offload/static/offload/vendor/uplot/uPlot.iife.min.js",
        "offload/static/offload/vendor/uplot/uPlot.min.css",
        "offload/static/offload/vendor/uplot/LICENSE",
        "offload/static/offload/vendor/uplot/README.md",
        "offload/templates/admin/offload/dashboard.html",
        "offload/testing/pytest_plugin.py",
    ):
        assert needed in names, needed
    # The migrations of the source tree, and no other (a stale build's).
    source = {f"offload/migrations/{path.name}" for path in MIGRATIONS.glob("*.py")}
    assert {name for name in names if name.startswith("offload/migrations/")} == source
    # The test kit's pytest plugin is registered by the package.
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]\noffload = offload.testing.pytest_plugin" in text, text
    assert not any(n.startswith(("tests/", "bench/", "example/")) for n in names)


def test_sdist_holds_sources_tests_and_docs(dist: Path) -> None:
    (sdist,) = dist.glob("django_offload-*.tar.gz")
    listing = _run("tar", "tzf", sdist, cwd=dist)
    top = {line.split("/", 2)[1] for line in listing.splitlines() if line.count("/") >= 2}
    assert {"src", "tests", "docs", "example"} <= top, top
    assert not top & {"bench", ".ci", "scripts"}, top


def test_twine_accepts_the_distributions(dist: Path) -> None:
    files = sorted(dist.glob("django_offload-*"))
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=dist)
    assert out.count("PASSED") == len(files), out


def test_installed_wheel_runs_the_demo_and_the_admin(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("django_offload-*.whl")
    venv = tmp_path / "venv"
    _run(_uv(), "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(_uv(), "pip", "install", "--quiet", "--python", python, wheel, cwd=tmp_path)

    site = tmp_path / "site"
    shutil.copytree(ROOT / "example", site, ignore=shutil.ignore_patterns("db.sqlite3*"))
    static_root = tmp_path / "static"
    (site / "demo_site" / "release_settings.py").write_text(
        "from demo_site.settings import *  # noqa: F403\n"
        f"STATIC_ROOT = {str(static_root)!r}\n"
        "ALLOWED_HOSTS = [*ALLOWED_HOSTS, 'testserver']  # noqa: F405\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO", "VIRTUAL"))}
    env["DJANGO_SETTINGS_MODULE"] = "demo_site.release_settings"

    def manage(*args: str) -> str:
        return _run(python, "manage.py", *args, cwd=site, env=env)

    where = _run(python, "-c", "import offload; print(offload.__file__)", cwd=site, env=env)
    assert str(venv) in where, where
    assert str(ROOT) not in where, where

    demo = manage("demo")
    assert "SUCCESSFUL" in demo, demo
    # The demo's tests use offload.testing from the wheel.
    tested = _run(python, "manage.py", "test", "demo", "--noinput", cwd=site, env=env)
    assert "FAILED" not in tested, tested
    assert "[ ]" not in manage("showmigrations", "offload")

    manage("collectstatic", "--noinput", "--verbosity", "0")
    assert (static_root / "offload" / "dashboard.js").is_file()

    # The admin pages render from the wheel's templates for a logged-in superuser.
    pages = manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User\n"
        "from django.test import Client\n"
        "User.objects.create_superuser('admin', 'a@example.com', 'pw')\n"
        "c = Client()\n"
        "c.login(username='admin', password='pw')\n"
        "for url in ('/admin/offload/dashboard/', '/admin/offload/successfultask/',"
        " '/admin/offload/queue/'):\n"
        "    r = c.get(url, follow=True)\n"
        "    print(url, r.status_code, [t.name for t in r.templates][:1])\n",
    )
    lines = [line for line in pages.splitlines() if line.startswith("/admin/")]
    assert len(lines) == 3, pages
    assert all(" 200 " in line for line in lines), pages
