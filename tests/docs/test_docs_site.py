"""The documentation site builds with warnings as errors, every public name has
its reference page, and every docstring example runs.

The site (docs/, Sphinx: MyST guides, autosummary + numpydoc API reference) is
built from a copy of docs/ in a temporary directory, so autosummary's generated
pages never land in the work tree. numpydoc validates the docstrings of the
public functions and classes during the build (see docs/conf.py): a missing
Parameters entry or Examples section is a warning, which `-W` turns into a
failure. The examples run with the standard library's doctest over every
module of the package, one test per module, in that module's namespace (as
`pytest --doctest-modules` runs them), against the varinit that is imported,
whichever build that is (the installed one, or the sanitized one of
.ci/sanitize.sh).
"""
import doctest
import importlib
import io
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import varinit

DOCS = Path(__file__).resolve().parents[2] / "docs"

# Modules whose examples need what the test extra does not install (Keras, JAX:
# tested in tests/keras_jax), or whose import runs the command line.
NOT_DOCTESTED = {"varinit.__main__", "varinit.keras", "varinit.jax"}

# The public API: varinit.__all__, the subpackages' __all__, and the scale_out modules.
PUBLIC_MODULES = ("varinit", "varinit.recipes", "varinit.diagnostics", "varinit.layers", "varinit.torch",
                  "varinit.scale_out.dask_arrays")
SCALE_OUT_NAMES = {
    "varinit.scale_out.blocks": ("fill_in_blocks",),
    "varinit.scale_out.writers": ("TensorSpec", "save_safetensors", "save_zarr", "open_zarr_checked",
                                  "StoreNotRestoredError"),
}


def public_names():
    """(qualified name, object) of every public function, class and constant."""
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names += [(f"{module_name}.{n}", getattr(module, n)) for n in module.__all__]
    for module_name, members in SCALE_OUT_NAMES.items():
        module = importlib.import_module(module_name)
        names += [(f"{module_name}.{n}", getattr(module, n)) for n in members]
    return names


def build_site(work):
    """Build the HTML site from a copy of docs/ with -W --keep-going; fail with the log."""
    source, html = work / "source", work / "html"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "generated"))
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "auto", "-b", "html", "-q",
               "-d", str(work / "doctrees"), str(source), str(html)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    log = (run.stdout + run.stderr).replace(str(source), "docs")
    assert run.returncode == 0, f"the docs build failed ({' '.join(command)}):\n{log}"
    return html


def described_objects(html):
    """The objects an API page describes (under any of their names), by id."""
    anchors = set()
    for page in (html / "api").rglob("*.html"):
        anchors |= set(re.findall(r'<dt class="sig sig-object py" id="(varinit[\w.]*)"', page.read_text("utf-8")))
    described = set()
    for anchor in anchors:
        module_name, _, attribute = anchor.rpartition(".")
        try:
            described.add(id(getattr(importlib.import_module(module_name), attribute)))
        except (ImportError, AttributeError):
            continue   # a method or attribute of a class: its class is what counts
    return described


def test_site_builds_with_warnings_as_errors_and_documents_every_public_name(tmp_path):
    # one test, so that one build serves both checks whatever the test distribution (xdist)
    # the test extra installs Sphinx on Python >= 3.11 only (Sphinx 9 needs it)
    pytest.importorskip("sphinx", reason='the docs build needs Sphinx: pip install ".[docs]" (Python >= 3.11)')
    html = build_site(tmp_path)
    pages = {p.relative_to(html).as_posix() for p in html.rglob("*.html")}
    for page in ("index.html", "api/index.html", "guides/quickstart.html", "guides/whole-model.html",
                 "guides/reproducibility.html", "guides/diagnostics.html", "guides/low-precision.html",
                 "guides/scaling-out.html", "guides/cli.html", "guides/design.html"):
        assert page in pages, f"{page} is missing from the site; it has {sorted(pages)}"
    described = described_objects(html)
    missing = [name for name, obj in public_names() if id(obj) not in described]
    assert not missing, f"public names without a reference entry in docs/api: {missing}"


def _run_examples(tests, where):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, f"{runner.failures} failing examples in {where}:\n{report.getvalue()}"


def documented_modules():
    found = ["varinit"] + [info.name for info in pkgutil.walk_packages(varinit.__path__, "varinit.")]
    return sorted(name for name in found if name not in NOT_DOCTESTED)


@pytest.mark.parametrize("module_name", documented_modules())
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # an example that writes a file never writes into the work tree
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder().find(module, module_name)
    _run_examples(tests, module_name)


def reference_pages():
    """docs/**/*.rst written by hand (not autosummary's generated pages, not the templates)."""
    pages = (p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.rst"))
    return sorted(p for p in pages if not p.startswith(("_", "api/generated/")))


@pytest.mark.parametrize("page", reference_pages())
def test_reference_page_examples_run(page, tmp_path, monkeypatch):
    """The entries written in the pages themselves (the C core's functions, the constants)."""
    monkeypatch.chdir(tmp_path)
    text = (DOCS / page).read_text("utf-8")
    test = doctest.DocTestParser().get_doctest(text, {}, page, str(DOCS / page), 0)
    _run_examples([test], f"docs/{page}")


def guide_code_blocks():
    """(guide, first line, code) of every ```python block of docs/guides."""
    blocks = []
    for guide in sorted(DOCS.glob("guides/*.md")):
        text = guide.read_text("utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 2
            blocks.append(pytest.param(match.group(1), id=f"{guide.name}:{line}"))
    return blocks


@pytest.mark.parametrize("code", guide_code_blocks())
def test_guide_code_blocks_are_python(code):
    """The guides' examples are not run (they train models, write gigabytes, need a cluster),
    but each must at least be valid Python."""
    compile(code, "<guide>", "exec")
