"""The command line: `python -m varinit ...` output and exit codes (0 ok, 2 usage, 1 bad value)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import varinit
from varinit.cli import main

PYTHON_DIR = str(Path(varinit.__file__).resolve().parent.parent)


def run(*args):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "varinit", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.slow
def test_propagate_compare_and_plot(tmp_path):
    png = tmp_path / "std.png"
    out = run("propagate", "--depth", "12", "--width", "64", "--activation", "relu",
              "--compare", "naive,xavier_normal,kaiming_normal", "--every", "4", "--batch", "32",
              "--plot", str(png))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("naive, relu, depth 12, width 64: exploding")
    assert lines[1].startswith("xavier_normal, relu, depth 12, width 64: vanishing")
    assert lines[2] == "kaiming_normal, relu, depth 12, width 64: healthy"
    rows = [l.split() for l in lines if l.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "4", "8", "12"]
    assert rows[-1][-1] == "healthy" and rows[-1][4] == "exploding"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_propagate_single_report_matches_the_library():
    out = run("propagate", "--depth", "3", "--width", "32", "--activation", "tanh", "--init", "0.2",
              "--batch", "16", "--seed", "5", "--precision")
    assert out.returncode == 0, out.stderr
    report = varinit.propagate(varinit.diagnostics.mlp_spec(3, 32, "tanh", 0.2, 5), batch=16, seed=5, precision=True)
    assert out.stdout.strip() == (report.to_text() + "\n\n" + report.precision_text()).strip()


@pytest.mark.parametrize("args, message", [
    (("propagate", "--init", "he", "--depth", "2"), "init must be one of"),
    (("propagate", "--depth", "0"), "depth must be an integer >= 1"),
    (("propagate", "--depth", "2", "--width", "8", "--activation", "relux"), "activation 'relux' is not known"),
    (("gain", "nosuch"), "activation 'nosuch' is not known"),
    (("fans", "64", "--layer", "conv"), "fewer than 2 dimensions"),
    (("fans", "30", "8", "3", "3", "--layer", "conv", "--groups", "4"), "dim 0 (30) must be divisible by 4"),
])
def test_invalid_values_exit_1_with_one_line(args, message):
    out = run(*args)
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2():
    assert run("propagate", "--depth", "abc").returncode == 2
    assert run("frobnicate").returncode == 2
    assert run().returncode == 2


@pytest.mark.slow
def test_gain_shows_varinit_and_torch_tables():
    out = run("gain", "gelu")
    assert out.returncode == 0, out.stderr
    assert f"varinit.gain = {varinit.gain('gelu'):.10g}" in out.stdout
    assert "calculate_gain: not defined for 'gelu'" in out.stdout
    tanh = run("gain", "tanh").stdout
    assert "calculate_gain = 1.666666667" in tanh and f"{varinit.gain('tanh'):.10g}" in tanh
    assert "critical sigma_w (sigma_b = 0, chi1 = 1) = 1" in tanh
    leaky = run("gain", "leaky_relu", "--param", "0.2").stdout
    assert f"calculate_gain = {varinit.calculate_gain('leaky_relu', 0.2):.10g}" in leaky


def test_fans_grouped_conv():
    out = run("fans", "64", "32", "3", "3", "--layer", "conv", "--groups", "32")
    assert out.returncode == 0, out.stderr
    # (C_out, C_in/g, 3, 3), g = 32: fan_in = 32 * 9, fan_out = 64 / 32 * 9
    assert re.search(r"^fan_in  = 288$", out.stdout, re.M)
    assert re.search(r"^fan_out = 18$", out.stdout, re.M)
    assert "He (relu) std      = sqrt(2 / fan_in)            = 0.0833333" in out.stdout


def test_bench_runs_and_reports_every_fill():
    out = run("bench", "--size", "65536", "--no-torch")
    assert out.returncode == 0, out.stderr
    names = [l.split("  ")[0].strip() for l in out.stdout.splitlines()[1:-1]]
    assert names == ["normal float32", "normal float64", "uniform float32", "kaiming_normal float32",
                     "trunc_normal float32"]
    assert "torch" not in out.stdout.splitlines()[0]


@pytest.mark.parametrize("command", [[], ["propagate"], ["gain"], ["fans"], ["bench"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command + ["--help"])
    assert exit_info.value.code == 0
    assert "usage: varinit" in capsys.readouterr().out


def test_version_names_the_package_and_the_stream_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"varinit {varinit.__version__} (stream version {varinit.STREAM_VERSION})"


def test_fans_with_axes_prints_the_layout_it_used(capsys):
    assert main(["fans", "128", "64", "--in-axis", "0", "--out-axis", "1"]) == 0
    out = capsys.readouterr().out
    assert "in_axis 0, out_axis 1" in out and "torch default" not in out
    assert "fan_in  = 128" in out and "fan_out = 64" in out
