#!/usr/bin/env bash
# The whole test suite, as `make test` runs it: lint, types, unit and
# integration tests, then every notebook twice under nbval (each on a fresh
# local cloud, then all in order on the warm one the first run left). The
# local cloud gets its own home folder and port, and is stopped at the end
# whatever happens, so no process outlives the run.
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

$BIN/ruff check labkit tests bench conftest.py notebooks
$BIN/ruff format --check labkit tests bench conftest.py
$BIN/mypy
$BIN/pytest -q -p no:cacheprovider tests
$BIN/labkit local down >/dev/null
nbval=($BIN/pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env
  --nbval-sanitize-with tests/nbval-sanitize.cfg)
# Run 1: each notebook alone on a fresh local cloud, as a student who opens
# just that one. Run 2: all of them in order on the warm cloud run 1 left.
for notebook in notebooks/*.ipynb; do
  echo "notebooks, run 1 of 2: $notebook on a fresh local cloud"
  $BIN/labkit local down >/dev/null
  "${nbval[@]}" "$notebook"
done
echo "notebooks, run 2 of 2: all in order on the warm local cloud"
"${nbval[@]}" notebooks
