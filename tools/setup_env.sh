#!/usr/bin/env bash
# Create (or refresh) the project-local virtual environment with the tested OpenMMLab stack,
# then prepare the bundled datasets. Idempotent: a second run with unchanged requirements
# only checks a stamp and returns in about a second.
#
# Environment knobs:
#   MMDMS_VENV        where the venv lives            (default: <repo>/.venv)
#   MMDMS_WHEELHOUSE  folder searched for a prebuilt mmcv wheel (default: <repo>/../shared/wheels)
#   MMDMS_SKIP_DATA=1 do not run the data preparation step
#   PYTHON            interpreter used to create the venv (default: python3, must be 3.11 for the
#                     prebuilt wheel; other versions build mmcv from source)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMDMS_VENV:-$ROOT/.venv}
WHEELHOUSE=${MMDMS_WHEELHOUSE:-$ROOT/../shared/wheels}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.mmdms-setup-stamp"
start=$(date +%s)

fingerprint() {
  cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/tools/setup_env.sh" \
      "$ROOT/tools/build_mmcv_wheel.sh" | sha256sum | cut -d' ' -f1
}

prepare_data() {
  if [ "${MMDMS_SKIP_DATA:-0}" != "1" ]; then
    "$VENV/bin/python" "$ROOT/tools/dataset_converters/prepare_data.py"
  fi
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ]; then
  echo "[setup] environment $VENV is up to date"
  prepare_data
  echo "[setup] done in $(( $(date +%s) - start )) s"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=(pip_quiet install --disable-pip-version-check -q -c "$ROOT/requirements/constraints.txt")
# pip run quietly; drops one harmless warning some pip configurations print per package
pip_quiet() {
  "$VENV/bin/python" -m pip "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

echo "[setup] installing torch/torchvision (pinned in requirements/constraints.txt)"
"${PIP[@]}" 'setuptools>=77,<81' wheel torch torchvision

# mmcv with compiled ops: PyPI has no wheel for this torch, so use a local wheelhouse when it
# holds one, else build one from the sdist (about 40 min on 2 cores).
if ! "$VENV/bin/python" -c "import mmcv.ops" >/dev/null 2>&1; then
  if ls "$WHEELHOUSE"/mmcv-2.0.1-*.whl >/dev/null 2>&1; then
    echo "[setup] installing mmcv from wheelhouse $WHEELHOUSE"
    "${PIP[@]}" --find-links "$WHEELHOUSE" mmcv==2.0.1
  else
    echo "[setup] no mmcv wheel in $WHEELHOUSE: building one from source (~40 min on 2 cores)"
    MMDMS_VENV="$VENV" bash "$ROOT/tools/build_mmcv_wheel.sh" "$ROOT/wheelhouse"
    "${PIP[@]}" --find-links "$ROOT/wheelhouse" mmcv==2.0.1
  fi
fi

echo "[setup] installing the OpenMMLab stack and test requirements"
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/mminstall.txt" \
  -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"

# mmdeploy declares protobuf<=3.20.2 (-> onnx 1.17), which contradicts onnxruntime's
# protobuf>=4.25; its ONNX export runs with the newer one, so install it without its deps
# (docs/deploy.md). `pip check` reports that one pin.
echo "[setup] installing mmdeploy (--no-deps) and its other dependencies"
"${PIP[@]}" -r "$ROOT/requirements/deploy.txt"
"${PIP[@]}" --no-deps -r "$ROOT/requirements/optional.txt"

"$VENV/bin/python" -c "import mmdms, mmcv.ops, mmdet, mmpretrain, mmyolo, mmdeploy; print('[setup] imports ok: mmdms', mmdms.__version__)"
fingerprint > "$STAMP"
prepare_data
echo "[setup] done in $(( $(date +%s) - start )) s"
