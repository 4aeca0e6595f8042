#!/usr/bin/env bash
# The C tests built for AArch64 and run under qemu-user: CI machines are
# x86-64, yet the NEON kernels must give the scalar bits too (a value may not
# depend on the machine), so they are checked under emulation. Installs the
# Debian cross compiler and qemu-user when missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user
fi
make -s cross-aarch64
