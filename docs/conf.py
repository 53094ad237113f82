"""Sphinx configuration of the hepinfer documentation site.

Build: ``.venv/bin/python -m sphinx docs docs/_build/html`` (``tests/test_docs.py`` builds it with
``-W --keep-going``: every warning fails the build).  Nothing here needs the network.

Notebooks: ``docs/notebooks`` is a symbolic link to the repository's ``notebooks/`` folder, so the
site renders the very files the test suite executes.  Sphinx follows the link while collecting its
sources and the build passes with ``-W``; nothing is copied and nothing is generated into the source
tree.  Pages link to a notebook with MyST's ``doc`` role and the path ``../notebooks/NAME``: a plain
Markdown link to the ``.ipynb`` file is resolved through the link's target, outside ``docs/``, and
warns.  Notebooks are rendered from their stripped sources (``nb_execution_mode = "off"``): the test
suite executes them elsewhere (tests/test_notebooks.py).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

project = "hepinfer"
author = "hepinfer developers"
copyright = "hepinfer developers"
try:
    release = package_version("hepinfer")  # the one version, from the package metadata
except PackageNotFoundError:  # a source tree that was never installed
    release = "0+unknown"
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # brings myst-parser: pages in Markdown, notebooks rendered
    "sphinx.ext.autodoc",
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# MyST: fenced ``{directive}`` blocks, ``$$`` maths, definition lists, heading anchors for links
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

# notebooks are shown as written (outputs stripped in git); tests/test_notebooks.py executes them
nb_execution_mode = "off"

# autodoc: members in source order; type hints in the description, not in the long signatures
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"hepinfer {release}"
html_static_path: list[str] = []
