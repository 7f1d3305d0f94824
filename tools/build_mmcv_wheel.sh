#!/usr/bin/env bash
# Build an mmcv 2.0.1 wheel (full, with CPU ops) against the torch installed in the venv.
# Usage: tools/build_mmcv_wheel.sh OUT_DIR        (venv: $MMDMS_VENV, default <repo>/.venv)
#
# Why: PyPI has no mmcv wheel for torch 2.14, and mmcv 2.0.1's setup.py asks for -std=c++14,
# which torch 2.14's headers reject ("C++20 or later compatible compiler is required").
# We patch that one flag. The sdist imports pkg_resources at build time, so the build runs with
# setuptools<70 and the venv's setuptools pin is restored afterwards. ~40 min on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMDMS_VENV:-$ROOT/.venv}
OUT=$(mkdir -p "${1:-$ROOT/wheelhouse}" && cd "${1:-$ROOT/wheelhouse}" && pwd)
PY="$VENV/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"; "$PY" -m pip install -q "setuptools>=77,<81"' EXIT

"$PY" -m pip download -q --no-deps --no-binary :all: -d "$work" mmcv==2.0.1
tar xzf "$work"/mmcv-2.0.1.tar.gz -C "$work"
sed -i 's/-std=c++14/-std=c++20/g' "$work/mmcv-2.0.1/setup.py"
grep -q -- '-std=c++20' "$work/mmcv-2.0.1/setup.py" || { echo "patch did not apply" >&2; exit 1; }
"$PY" -m pip install -q 'setuptools<70' ninja
(cd "$work/mmcv-2.0.1" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
  "$PY" -m pip wheel --no-deps --no-build-isolation -w "$OUT" .)
echo "mmcv wheel written to $OUT"
