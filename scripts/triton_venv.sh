#!/usr/bin/env bash
# Make .venv-triton: NVIDIA's PyTriton (a real Triton Inference Server binary with its
# Python backend) plus ONNX Runtime, for the tests and the loopback benchmark that serve
# an export through scripts/triton_serve.py. Idempotent: does nothing when it is there.
#
# Why a separate environment from Debian's python3: PyTriton's Python-backend stub works
# under Debian's Python 3.11.2 but fails to load models under some other 3.11 builds
# (AttributeError: '_thread.RLock' object has no attribute '_recursion_count').
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-triton
STAMP=$VENV/.installed-stamp
PYTHON=${TRITON_PYTHON:-/usr/bin/python3}
PACKAGES=(nvidia-pytriton==0.7.0 onnxruntime==1.32.0 numpy==1.26.4)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PACKAGES[*]}" ]; then
    exit 0
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    else
        echo "error: $PYTHON cannot make virtual environments (install python3-venv)" >&2
        exit 2
    fi
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}"
echo "${PACKAGES[*]}" > "$STAMP"
