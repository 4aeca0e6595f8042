"""Sphinx configuration of varinit's documentation site.

Build (from the repository root, with `pip install ".[docs]"`):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

CI builds it the same way, warnings as errors, from tests/docs/test_docs_site.py
(part of the README's `python -m pytest`), which also runs every docstring
example as a doctest.

Choices:

- Guides are Markdown (MyST-Parser): they started as sections of the README,
  which GitHub renders, and stay readable as plain files on GitHub.
- The API reference is reStructuredText pages of autosummary tables
  (docs/api/*.rst): autosummary's stub generation reads `.. autosummary::`
  directives from reST sources only, and makes one page per public name.
- Docstrings are NumPy style, rendered by numpydoc rather than
  sphinx.ext.napoleon, because numpydoc also *validates* them during the
  build: a public function or class whose Parameters section misses an
  argument of its signature (PR01), documents one it does not have (PR02)
  or has no Examples section (EX01) is a warning, and `-W` turns it into a
  failed build. napoleon only renders, so a docstring could drift from its
  signature unnoticed. The members of a class (methods, properties) are
  rendered but not validated (numpydoc_validation_exclude below).
- Formulas are plain text in the docstrings (`std = gain / sqrt(fan)`), so
  `help()` in a terminal shows them as they read on the site; no MathJax,
  which would fetch a script from the network.
- No intersphinx: the build must not need the network (CI has none but the
  package registries).
"""
import varinit

project = "varinit"
author = "the varinit developers"
copyright = "the varinit developers"
release = varinit.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# `name` in a docstring links to that object when it resolves (`calculate_gain`,
# `varinit.fans`) and is set as code when it does not (a parameter name).
default_role = "py:obj"
# Code blocks without a language (program output) are shown as plain text.
highlight_language = "text"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# ---- API reference ---------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
# Signatures are shown as written; the argument types are in each Parameters section.
autodoc_typehints = "none"
# Keep the source order of a class's members on its page.
autodoc_member_order = "bysource"

numpydoc_show_class_members = False   # autodoc lists a class's members itself (the class template)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False      # types are prose ("array or tensor"), not cross-references
numpydoc_validation_checks = {
    "GL08",   # the object has no docstring
    "SS01",   # no summary line
    "PR01",   # a parameter of the signature is not documented
    "PR02",   # a documented parameter is not in the signature
    "EX01",   # no Examples section
}
numpydoc_validation_exclude = {
    # members of a documented class (its methods, properties and fields): rendered, with the
    # parameters their docstrings give, but not validated (no example per method is required)
    r"^varinit(\.\w+)*\.[A-Z]\w*\.\w+$",
}


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """NamedTuple fields carry the docstring "Alias for field number N": the class's
    Parameters section describes them, so they are not listed a second time."""
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)


# ---- guides (MyST Markdown) --------------------------------------------------------
myst_heading_anchors = 3          # "[text](whole-model.md#lsuv)" links to a section of another guide
myst_enable_extensions = ["colon_fence"]

# ---- HTML ---------------------------------------------------------------------------
html_theme = "furo"
html_title = f"varinit {release}"
html_static_path = []
html_show_sourcelink = False
