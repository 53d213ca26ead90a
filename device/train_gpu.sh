#!/usr/bin/env bash
# Issue 10/11's GPU training in ONE device command (README "On a GPU"): installs the carried
# fvcore wheels, points ABLATE_DATA at the carried CIFAR-10 archive, unpacks results packed by an
# earlier call (to resume), runs the GPU tests of the step, then device/train_gpu.py (img/s of
# each Fig. 6 net, the projected time of the set, the paper-profile degradation runs until the
# time limit), and leaves results.tar.gz + weights-N.tar.gz + speed.csv + projection.json +
# runs.json + train_gpu.log in $OUT. Arguments go to train_gpu.py (--smoke: the CPU, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/train_gpu_out}
mkdir -p "$out"
exec > >(tee "$out/train_gpu.log") 2>&1
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then  # the GPU image has no fvcore (MAC counts)
  $python -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
for archive in shared/datasets/cifar10-jpeg.tar.gz carry/cifar10-jpeg.tar.gz; do
  if [[ -z ${ABLATE_DATA:-} && -f $archive ]]; then export ABLATE_DATA=$PWD/$archive; fi
done
for packed in "${RESUME_FROM:-carry/gpu-results}"/*.tar.gz; do  # an earlier call's results
  if [[ -f $packed ]]; then tar -xzf "$packed"; fi
done
if [[ " $* " != *" --smoke "* ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv || true
  timeout 150 $python -m pytest tests/test_steps.py -q -p no:cacheprovider -k "gpu or graph" \
    || echo "[train_gpu] GPU step tests FAILED (see above); measuring anyway"
fi
# The time limit counts from this script's start (TIME_LIMIT seconds, default 540: the device's
# 600-second command limit less a margin); a --time-limit given here overrides it.
remaining=$(( ${TIME_LIMIT:-540} - SECONDS ))
$python device/train_gpu.py --out "$out" --time-limit "$remaining" \
  --data "${ABLATE_DATA:?set ABLATE_DATA or carry the archive}" "$@"
