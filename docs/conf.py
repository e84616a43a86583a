"""Sphinx configuration of the gluon-resnetv2 manual (``make docs``; source: this directory).

Sphinx because it is MXNet's and gluoncv's documentation tool; MyST so the pages stay Markdown; napoleon
for the numpy-style docstrings.  Every measured figure on the pages is rendered at build time from a
committed result file by ``_ext/grv2_results.py`` (MyST substitutions and included fragments under
``_generated/``), never typed into the prose.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the package, from a clone without `pip install -e`
sys.path.insert(0, os.path.join(HERE, "_ext"))

project = "gluon-resnetv2"
author = "gluon-resnetv2 contributors"
copyright = "2016-2026, the authors of the paper and gluon-resnetv2 contributors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "grv2_results"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# _generated/ and results/ hold fragments that pages include; they are not pages of their own.
exclude_patterns = ["_build", "_generated", "results/*.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["substitution", "colon_fence", "dollarmath"]
myst_heading_anchors = 3

napoleon_numpy_docstring = True
napoleon_google_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"
# -n (nitpicky) checks the pages' own links and references; a docstring naming a helper that the API page does not
# list (or another library's class, with no inventory offline) is not a broken link of the manual.
nitpick_ignore_regex = [("py:.*", r".*")]

html_theme = "furo"
html_title = "gluon-resnetv2"
html_static_path = []
