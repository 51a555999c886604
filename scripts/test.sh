#!/usr/bin/env bash
# Run the whole test suite (unit, golden, end-to-end with emulated firmware) on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -n 2 --dist loadfile -q "$@"
