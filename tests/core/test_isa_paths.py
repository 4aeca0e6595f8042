"""Every kernel table this machine runs, forced through VARINIT_ISA in a fresh
process, fills the same bits (values must not depend on the CPU); a VARINIT_ISA
that cannot be honoured stops the import with a message naming it, never a crash."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import varinit

PYTHON_DIR = str(Path(varinit.__file__).resolve().parent.parent)

# Prints one sha256 per (distribution, parameters, dtype, layout) and the
# active table's name last. Sizes and offsets are odd so the element-wise head
# and tail, the one-group buffer and the multi-group kernel calls all run; the
# truncation intervals reach the three regions of AS 241 in both tails; the
# uniform intervals make the clamps into the dtype's [a, b) act (rounding up to b
# in float16 and bfloat16, below a in float16 and float32, up to b in float32
# and float64 far from 0).
HASH_SCRIPT = r"""
import hashlib
import ml_dtypes
import numpy as np
import varinit

CASES = [
    ("uniform", varinit.uniform_, (-0.5, 2.0)),
    ("normal", varinit.normal_, (0.25, 1.5)),
    ("trunc[-2,2]", varinit.trunc_normal_, (0.0, 1.0, -2.0, 2.0)),
    ("trunc[4,5]", varinit.trunc_normal_, (0.0, 1.0, 4.0, 5.0)),
    ("trunc[-inf,-6]", varinit.trunc_normal_, (0.0, 1.0, -np.inf, -6.0)),
    ("trunc[6,7]", varinit.trunc_normal_, (0.0, 1.0, 6.0, 7.0)),
    ("trunc tiny std", varinit.trunc_normal_, (1.0, 1e-3, 0.999, 1.002)),
    ("uniform[0,1)", varinit.uniform_, (0.0, 1.0)),
    ("uniform[0.3,0.31)", varinit.uniform_, (0.3, 0.31)),
    ("uniform[1.0001,1.01)", varinit.uniform_, (1.0001, 1.01)),
]
DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]
CASES = [(name, fn, params, DTYPES) for name, fn, params in CASES]
# far from 0, in the dtypes that hold values of the interval there
CASES += [
    ("uniform[1e6+0.01,1e6+1)", varinit.uniform_, (1e6 + 0.01, 1e6 + 1.0), [np.float32, np.float64]),
    ("uniform[1e15,1e15+0.25)", varinit.uniform_, (1e15, 1e15 + 0.25), [np.float64]),
]
for name, fn, params, dtypes in CASES:
    for dtype in dtypes:
        whole = fn(np.empty(20011, dtype), *params, generator=1234)
        # a block of a 2-D tensor with an odd row length: runs start mid-group
        block = fn(np.empty((37, 61), dtype), *params, generator=99,
                   global_shape=(3000, 4001), start=(1234, 777))
        strided = fn(np.empty((300, 70), dtype).T, *params, generator=5)
        for layout, arr in (("whole", whole), ("block", block), ("strided", strided)):
            digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
            print(name, np.dtype(dtype).name, layout, digest)
print("isa", varinit.isa())
"""


def run_with_isa(isa, script):
    env = dict(os.environ, VARINIT_ISA=isa)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_DIR, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)


def test_every_available_isa_gives_the_same_bits():
    isas = varinit._core.available_isas()
    assert isas[-1] == "scalar"
    outputs = {}
    for isa in isas:
        proc = run_with_isa(isa, HASH_SCRIPT)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[-1] == f"isa {isa}"
        outputs[isa] = lines[:-1]
    reference = outputs["scalar"]
    assert len(reference) == (10 * 4 + 2 + 1) * 3
    assert len(set(line.split()[-1] for line in reference)) == len(reference)  # all distinct
    for isa, lines in outputs.items():
        mismatched = [a for a, b in zip(reference, lines) if a != b]
        assert not mismatched, f"{isa} differs from scalar: {mismatched[:3]}"


def test_unset_chooses_the_best_available():
    proc = run_with_isa("", "import varinit; print(varinit.isa())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == varinit._core.available_isas()[0]


@pytest.mark.parametrize("value", ["bogus", "AVX2 "])
def test_unknown_isa_is_a_clear_import_error(value):
    proc = run_with_isa(value, "import varinit")
    assert proc.returncode == 1  # an exception, not a signal
    assert "ImportError" in proc.stderr
    assert f"VARINIT_ISA={value}" in proc.stderr and "unknown instruction set" in proc.stderr


def test_isa_this_cpu_cannot_run_is_a_clear_import_error():
    unsupported = next(isa for isa in ("neon", "avx512", "avx2")
                       if isa not in varinit._core.available_isas())
    proc = run_with_isa(unsupported, "import varinit")
    assert proc.returncode == 1
    assert f"VARINIT_ISA={unsupported}: this CPU" in proc.stderr
    assert "supports: " + ", ".join(varinit._core.available_isas()) in proc.stderr


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists() or os.uname().machine != "x86_64",
                    reason="compares CPUID detection with Linux's x86 flags")
def test_cpu_features_agree_with_the_kernel():
    # Linux lists avx/avx2/avx512* only when it also saves their register state,
    # so its flags must match CPUID and XGETBV taken together.
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    feats = varinit.cpu_features()
    assert all(isinstance(v, bool) for v in feats.values())
    for name in ("sse2", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"):
        assert feats[name] == (name in flags), name
    expected = ["scalar"]
    if feats["avx2"] and feats["os_avx"]:
        expected.insert(0, "avx2")
    if feats["avx512f"] and feats["avx512dq"] and feats["os_avx512"]:
        expected.insert(0, "avx512")
    assert varinit._core.available_isas() == expected
    assert varinit.isa() == expected[0] or os.environ.get("VARINIT_ISA")
