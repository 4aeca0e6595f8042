#!/usr/bin/env bash
# The C tests and the whole pytest suite under AddressSanitizer and
# UndefinedBehaviorSanitizer, and the C tests (the thread pool's above all)
# under ThreadSanitizer, whose runtime cannot be preloaded into an
# uninstrumented CPython as ASan's is (it crashes: google/sanitizers issue
# 1686). Any sanitizer report fails the run.
#
# The extension is built with VARINIT_SANITIZE=1 (see setup.py) into a
# temporary directory next to a copy of the package, so the normal build is
# left alone. CPython is not instrumented, so libasan (and libubsan) must be
# the first libraries loaded: LD_PRELOAD. detect_leaks=0 because CPython
# keeps objects alive until exit by design. Reports go to log files, so one
# from a subprocess or a forked child is seen even when a test expected that
# process to fail. torch 2.13 (CPU) runs under ASan as it is: no torch test
# is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
logs="$work/logs"
mkdir -p "$logs"

c_flags="-std=c11 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -fno-math-errno -Wall -Wextra -Werror -pthread"
echo "sanitize: C tests under ASan + UBSan"
make -s -C csrc/tests BIN="$work/c-asan" run \
    CFLAGS="$c_flags -fsanitize=address,undefined -fno-sanitize-recover=all"
echo "sanitize: C tests under TSan"
# die_after_fork=0: test_parallel forks after its workers exist, on purpose
TSAN_OPTIONS="halt_on_error=1:die_after_fork=0" \
    make -s -C csrc/tests BIN="$work/c-tsan" run CFLAGS="$c_flags -fsanitize=thread"

echo "sanitize: building the extension with -fsanitize=address,undefined"
python -c "import setuptools" 2>/dev/null || python -m pip install -q setuptools
cp -r python/varinit "$work/varinit"
mkdir -p "$work/lib" && mv "$work/varinit" "$work/lib/"
rm -f "$work/lib/varinit/"*.so
VARINIT_SANITIZE=1 python setup.py -q build_ext --force \
    --build-lib "$work/lib" --build-temp "$work/tmp" 2>&1 | { grep -E "warning:|error:" || true; }

sanitized() {
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS="detect_leaks=0:log_path=$logs/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan" \
    PYTHONPATH="$work/lib" "$@"
}

# The sanitized module is the one imported, and ASan is live in it: a
# deliberate out-of-bounds fill must be reported.
sanitized python -c "import sys, varinit._core as c; sys.exit(not c.__file__.startswith('$work'))"
sanitized python -c "
import numpy as np, varinit
from numpy.lib.stride_tricks import as_strided
a = np.empty(64, np.float32)
varinit.uniform_(as_strided(a, shape=(64,), strides=(8,)), generator=1)
" 2>/dev/null && { echo "sanitize: the canary overflow was not caught"; exit 1; }
grep -q "heap-buffer-overflow" "$logs"/asan.* || { echo "sanitize: no ASan report for the canary"; exit 1; }
rm -f "$logs"/*

echo "sanitize: pytest under ASan + UBSan"
status=0
sanitized python -m pytest -q -p no:cacheprovider tests || status=$?
if compgen -G "$logs/*" > /dev/null; then
    echo "sanitize: sanitizer reports:"
    cat "$logs"/*
    exit 1
fi
exit "$status"
