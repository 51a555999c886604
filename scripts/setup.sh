#!/usr/bin/env bash
# Install everything nlpool needs on Debian 12 (as root): the Arm toolchain, QEMU, a host C compiler,
# and a virtual environment in .venv with the pinned Python stack. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
# C++ headers for arm-none-eabi-g++ (the TFLM project); the project links with arm-none-eabi-gcc, so the
# 1.6 GB libstdc++-arm-none-eabi-newlib is not needed.
dpkg -s libstdc++-arm-none-eabi-dev >/dev/null 2>&1 || missing+=(libstdc++-arm-none-eabi-dev)
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)  # the TFLM project's host build
command -v make >/dev/null || missing+=(make)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3 python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV=.venv
stamp="$VENV/.nlpool-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q torch==2.13.0
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  # The real TFLM interpreter for x86 (host anchor for arena predictions); only pre-releases exist.
  "$VENV/bin/python" -m pip install -q --pre tflite-micro
  touch "$stamp"
fi
echo "setup: done (.venv ready; arm-none-eabi-gcc, its C++ headers and qemu-system-arm installed)"
