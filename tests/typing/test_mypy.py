"""mypy, strict, passes on the whole package, accepts a typical user script and
rejects the mistakes the annotations exist to catch (``mode=3``, a misspelt
nonlinearity or layout keyword, a list where an array goes).

mypy runs as CI runs it, from the repository root with the configuration of
pyproject.toml ([tool.mypy]: strict, the package `varinit` under python/).
Its cache lives in a temporary folder shared by the tests of this module: the
first run analyses NumPy and PyTorch (about 50 s on two cores), the second
reuses that.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ACCEPTED = HERE / "typed_usage_accepted.py"
REJECTED = HERE / "typed_usage_rejected.py"
# file:line: error: message  [code]
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[\w-]+)\]$")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mypy_cache")


def run_mypy(cache_dir, *targets):
    """mypy with the repository's configuration on `targets`; (exit status, output lines)."""
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
               "--cache-dir", str(cache_dir), "--no-pretty", "--show-error-codes", "--no-color-output",
               *targets]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    return run.returncode, (run.stdout + run.stderr).splitlines()


def test_the_package_and_a_user_script_pass_mypy_strict(cache_dir):
    # the package's folder (mypy names it `varinit` from its __init__.py) and the script: one run
    status, lines = run_mypy(cache_dir, str(Path("python", "varinit")), str(ACCEPTED.relative_to(REPO)))
    assert status == 0, "mypy --strict found errors:\n" + "\n".join(lines)
    assert lines[-1].startswith("Success: no issues found"), lines


def test_mistakes_in_a_user_script_fail_the_type_check(cache_dir):
    expected = {}
    for number, text in enumerate(REJECTED.read_text("utf-8").splitlines(), start=1):
        marker = re.search(r"# rejected: ([\w-]+)$", text)
        if marker:
            expected[number] = marker[1]
    assert len(expected) >= 9 and "mode=3" in REJECTED.read_text("utf-8")
    status, lines = run_mypy(cache_dir, str(REJECTED.relative_to(REPO)))
    assert status == 1, "\n".join(lines)
    found = {}
    for line in lines:
        error = ERROR.match(line)
        if error:
            assert Path(error["file"]).name == REJECTED.name, line
            found[int(error["line"])] = error["code"]
    assert found == expected, "\n".join(lines)
    mode_line = next(line for line in lines if ":9: error:" in line)
    assert '"mode"' in mode_line and "Literal['fan_in', 'fan_out']" in mode_line, mode_line
