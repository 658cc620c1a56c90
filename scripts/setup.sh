#!/usr/bin/env bash
# Set up mlx-rpc-runtime on a fresh machine: OpenBLAS where possible, a venv, the project and its
# test tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_openblas() { ls /usr/lib/*/openblas-pthread/libopenblas.so.0 /usr/lib*/libopenblas.so.0 >/dev/null 2>&1; }

# The Linux mlx-cpu wheel links a reference BLAS (~40x slower matmuls); the runtime preloads OpenBLAS.
if [ "$(uname -s)" = Linux ] && ! have_openblas && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  if [ "$SUDO" != none ]; then
    $SUDO apt-get install -y -q libopenblas0-pthread >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q libopenblas0-pthread >/dev/null 2>&1; } \
      || echo "setup: could not install libopenblas0-pthread; MLX will use its slow bundled BLAS" >&2
  else
    echo "setup: no root to install libopenblas0-pthread; MLX will use its slow bundled BLAS" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# The Node/Electron binding: installed and built where Node is present (its tests run in scripts/test.sh).
if command -v npm >/dev/null 2>&1 && [ -f bindings/node/package-lock.json ]; then
  (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
fi

# The optional native module (native/, docs/native.md): CPU kernels for quantized models. Built where a
# C++ compiler exists; a failed build says so in one line and set-up goes on (the runtime works without it).
if command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || command -v clang++ >/dev/null 2>&1; then
  if .venv/bin/python -m pip install -q --disable-pip-version-check "nanobind>=2.4" "cmake>=3.27" >/dev/null 2>&1 \
    && rm -rf build/native && mkdir -p build \
    && .venv/bin/cmake -S native -B build/native -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PWD/.venv/bin/python" >build/native.log 2>&1 \
    && .venv/bin/cmake --build build/native -j "$(nproc 2>/dev/null || echo 2)" >>build/native.log 2>&1 \
    && cp build/native/_native*.so runtime/engine/ \
    && .venv/bin/python -c "from runtime.engine import _native" >>build/native.log 2>&1; then
    :
  else
    echo "setup: the native module did not build (see build/native.log); the runtime uses MLX's kernels" >&2
  fi
else
  echo "setup: no C++ compiler; the native module is not built and the runtime uses MLX's kernels" >&2
fi
