#!/usr/bin/env bash
# The whole test suite, as `make test` runs it: lint, types, unit and
# integration tests, then every notebook twice under nbval against a fresh
# local cloud. The local cloud gets its own home folder and port, and is
# stopped at the end whatever happens, so no process outlives the run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
# The notebooks' kernel runs `python` from PATH: make it the project's.
export PATH="$PWD/.venv/bin:$PATH"

export LABKIT_HOME="${LABKIT_TEST_HOME:-$(mktemp -d)}"
export LABKIT_PORT="${LABKIT_TEST_PORT:-$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export LABKIT_MODE=local
export MPLBACKEND=Agg
export LABKIT_STRICT_SHAPES=1
trap '$BIN/labkit local down >/dev/null 2>&1 || true' EXIT

$BIN/ruff check labkit tests bench
$BIN/ruff format --check labkit tests bench
$BIN/mypy
$BIN/pytest -q -p no:cacheprovider tests
$BIN/labkit local down >/dev/null
for run in 1 2; do
  echo "notebooks, run $run of 2"
  $BIN/pytest -q -p no:cacheprovider --nbval-lax --nbval-sanitize-with tests/nbval-sanitize.cfg notebooks
done
