#!/usr/bin/env bash
# The whole test suite: generated files up to date, a clean type check, the Python suite (and, where the
# native module is built, its end-to-end half again with RUNTIME_NATIVE=0), the Node binding's suite.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/gen_docs.py --check
.venv/bin/python -m mypy --no-error-summary  # config in pyproject.toml: all of runtime/, strict layers
.venv/bin/python -m pytest -q
if .venv/bin/python -c 'import sys; from runtime.engine import native; sys.exit(0 if native.module() else 1)' 2>/dev/null; then
  echo "end-to-end again without the native kernels (RUNTIME_NATIVE=0):"
  RUNTIME_NATIVE=0 .venv/bin/python -m pytest -q tests/e2e
else
  echo "the native module is not built: the suite above ran on MLX's kernels only"
fi
if command -v node >/dev/null 2>&1; then
  (cd bindings/node && MLX_RPC_RUNTIME_COMMAND="$PWD/../../.venv/bin/runtime" node --test dist/test/*.test.js)
fi
