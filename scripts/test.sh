#!/usr/bin/env bash
# The whole test suite: generated files up to date, a clean type check, the Python suite, the Node binding's suite.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python scripts/gen_docs.py --check
.venv/bin/python -m mypy --no-error-summary  # config in pyproject.toml: all of runtime/, strict layers
.venv/bin/python -m pytest -q
if command -v node >/dev/null 2>&1; then
  (cd bindings/node && MLX_RPC_RUNTIME_COMMAND="$PWD/../../.venv/bin/runtime" node --test dist/test/*.test.js)
fi
