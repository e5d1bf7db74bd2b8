"""Sphinx configuration for the documentation site (``scripts/docs`` builds it).

The pages are Markdown (MyST). The reference pages that list commands and the
Python API are generated from the code when the site is built, so they cannot
drift from it; that needs Django set up, with the demo project's settings.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "example"), str(Path(__file__).parent / "_ext")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

import django  # noqa: E402

django.setup()

import offload  # noqa: E402

project = "django-offload"
author = "The django-offload developers"
copyright = "the django-offload developers"
release = offload.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "offload_commands",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "release.md"]
# Headings get anchors, so "page.md#a-heading" links resolve and are checked.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]


def setup(app: object) -> None:
    # GitHub draws the state diagram from its ```mermaid block; here it shows as
    # text, which reads well, rather than through a diagram script from a CDN.
    from pygments.lexers.special import TextLexer
    from sphinx.highlighting import lexers

    lexers["mermaid"] = TextLexer()


autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "furo"
html_title = f"django-offload {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
