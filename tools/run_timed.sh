#!/usr/bin/env bash
# Run setup, then the demo or the test suite, and print how long each part took.
# Usage: tools/run_timed.sh demo|test|test-all [extra pytest args]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
what=${1:?demo, test or test-all}; shift
PY=${MMDMS_VENV:-$ROOT/.venv}/bin/python

t0=$(date +%s)
bash tools/setup_env.sh || { echo "[setup] failed" >&2; exit 1; }
t1=$(date +%s)
case "$what" in
  demo)     "$PY" tools/dms_demo.py "$@" ;;
  test)     "$PY" -m pytest -m "not slow" -p no:cacheprovider "$@" ;;
  test-all) "$PY" -m pytest -p no:cacheprovider "$@" ;;
  *)        echo "unknown target $what" >&2; exit 2 ;;
esac
rc=$?
t2=$(date +%s)
echo "setup time: $((t1 - t0)) s, $what time: $((t2 - t1)) s"
exit $rc
