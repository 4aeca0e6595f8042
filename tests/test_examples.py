"""The training example (quick mode) and the walkthrough notebook, run as a user would."""
import importlib.util
import os
from pathlib import Path

import pytest

import varinit

pytestmark = pytest.mark.slow  # runs subprocesses for seconds; `-m 'not slow'` skips it

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PYTHON_DIR = str(Path(varinit.__file__).resolve().parent.parent)


def _load_example():
    spec = importlib.util.spec_from_file_location("train_mlp_digits", EXAMPLES / "train_mlp_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_example_he_trains_and_naive_inits_do_not(tmp_path):
    pytest.importorskip("sklearn")
    example = _load_example()
    assert example.DEPTH >= 20
    results = example.run(quick=True)
    he = results["kaiming_normal"]
    assert not he["diverged"]
    # Chance is ln 10 = 2.303 and 10% accuracy; quick mode reaches ~0.37 and ~0.79 (seed 0).
    assert he["final_loss"] < 0.6
    assert he["test_accuracy"] > 0.6
    for naive in ("naive", "small"):
        assert he["final_loss"] < results[naive]["final_loss"]
        assert results[naive]["test_accuracy"] < 0.4
    assert results["small"]["final_loss"] > 2.2          # stuck at chance
    assert he["losses"][-1] < he["losses"][0]
    if importlib.util.find_spec("matplotlib") is not None:
        png = tmp_path / "loss.png"
        example.plot_losses(results, png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_walkthrough_notebook_runs_headless(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(EXAMPLES / "walkthrough.ipynb", as_version=4)
    # The kernel inherits this environment: make the package under test importable there too.
    monkeypatch.setenv("PYTHONPATH", PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(EXAMPLES)}})
    client.execute()     # raises CellExecutionError if any cell fails
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert html and "varinit-report" in html[0]["data"]["text/html"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
