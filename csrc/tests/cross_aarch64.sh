#!/usr/bin/env bash
# The C tests built for AArch64 and run under qemu-user, so CI on x86-64 checks
# that the NEON kernels give the scalar bits (issue 3, item 1). Installs the
# Debian cross compiler and qemu-user when missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user
fi
make -s cross-aarch64
