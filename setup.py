"""Build of varinit's C core: one extension, NumPy headers, no manual step."""
import glob
import os

import numpy
from setuptools import Extension, setup

CORE_SOURCES = sorted(
    glob.glob("csrc/*.c") + glob.glob("csrc/dist/*.c") + glob.glob("csrc/simd/*.c")
)
# Headers too: without them an in-place rebuild after a header-only change
# keeps the stale extension.
CORE_HEADERS = sorted(glob.glob("csrc/**/*.h", recursive=True))

# -ffp-contract=off: no fused multiply-add behind our back, so every kernel and
# every compiler rounds the same way (random-number contract, rule 4).
# -fno-math-errno: sqrt compiles to the instruction, never a libm call.
COMPILE_ARGS = [
    "-std=c11", "-O2", "-ffp-contract=off", "-fno-math-errno", "-fno-fast-math",
    "-Wall", "-Wextra", "-pthread",
]
LINK_ARGS = ["-pthread"]
if os.environ.get("VARINIT_SANITIZE"):
    # CI builds the extension once with sanitizers and runs the suite under them.
    COMPILE_ARGS += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    LINK_ARGS += ["-fsanitize=address,undefined"]

setup(
    ext_modules=[
        Extension(
            "varinit._core",
            sources=CORE_SOURCES,
            depends=CORE_HEADERS,
            include_dirs=["csrc/include", "csrc", "csrc/dist", numpy.get_include()],
            extra_compile_args=COMPILE_ARGS,
            extra_link_args=LINK_ARGS,
        )
    ],
)
