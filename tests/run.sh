#!/usr/bin/env bash
# The whole test suite, as `make test` runs it: lint, types, unit and
# integration tests, then every notebook twice under nbval (on a fresh local
# cloud, then on the warm one the first run left). The local cloud gets its
# own home folder and port, and is stopped at the end whatever happens, so no
# process outlives the run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if [ -n "${LABKIT_TEST_HOME:-}" ]; then
  export LABKIT_HOME="$LABKIT_TEST_HOME"
  own_home=0
else
  export LABKIT_HOME="$(mktemp -d -t labkit-test-XXXXXX)"
  own_home=1
fi
export LABKIT_PORT="${LABKIT_TEST_PORT:-$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
export LABKIT_MODE=local
export LABKIT_STRICT_SHAPES=1
export MPLBACKEND=Agg
echo "local cloud for the tests: LABKIT_HOME=$LABKIT_HOME LABKIT_PORT=$LABKIT_PORT"

finish() {
  status=$?
  $BIN/labkit local down >/dev/null 2>&1 || true
  if [ "$status" -eq 0 ] && [ "$own_home" -eq 1 ]; then
    rm -rf "$LABKIT_HOME"
  elif [ "$status" -ne 0 ]; then
    echo "the local cloud's log is kept in $LABKIT_HOME/local-cloud.log"
  fi
}
trap finish EXIT

$BIN/ruff check labkit tests bench conftest.py
$BIN/ruff format --check labkit tests bench conftest.py
$BIN/mypy
$BIN/pytest -q -p no:cacheprovider tests
$BIN/labkit local down >/dev/null
for run in 1 2; do
  echo "notebooks, run $run of 2"
  $BIN/pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
    --nbval-sanitize-with tests/nbval-sanitize.cfg notebooks
done
