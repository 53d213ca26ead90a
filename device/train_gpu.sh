#!/usr/bin/env bash
# Issue 10/11's GPU training in ONE device command (README "On a GPU"): installs the carried
# fvcore wheels, points ABLATE_DATA at the carried CIFAR-10 archive, merges in the results an
# earlier call packed (to resume), runs the GPU tests once per GPU and commit (device/gpu_tests.py),
# measures how several runs at once fill the GPU (device/concurrency_gpu.py: streams, processes,
# and processes under MPS where it starts; once per GPU model), then runs device/train_gpu.py:
# img/s of each Fig. 6 net, the projected time of the set, the paper-profile degradation runs
# until the time limit, their layer responses (--runs recipes: the tutorials' claims instead).
# Leaves results.tar.gz + checkpoints-N.tar.gz + weights-N.tar.gz + runs.json + train_gpu.log in
# $OUT. Arguments go to train_gpu.py (--smoke: the CPU, seconds; CONCURRENCY=1 measures runs at
# once there too).
set -euo pipefail
cd "$(dirname "$0")/.."
source device/common.sh train_gpu  # log, fvcore wheels, PYTHONPATH, ABLATE_DATA, commit
results=results smoke=0
args=("$@")
for i in "${!args[@]}"; do
  case ${args[i]} in
    --results) results=${args[i+1]} ;;
    --smoke) smoke=1 ;;
  esac
done
unpack_carried "$results"  # an earlier call's results and weights, to resume
data=${ABLATE_DATA:?set ABLATE_DATA or carry the archive}
if (( ! smoke )); then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv || true
  # Once per GPU, torch and commit (results/gpu_tests.json); TESTS=1 runs them again.
  force=()
  if [[ ${TESTS:-} == 1 ]]; then force=(--force); fi
  $python device/gpu_tests.py --record "$results/gpu_tests.json" --timeout 150 "${force[@]}" \
    || true
fi
concurrency() {  # ARGS...: device/concurrency_gpu.py into results/concurrency.csv, bounded
  timeout "${CONCURRENCY_LIMIT:-150}" $python device/concurrency_gpu.py \
    --out "$results/concurrency.csv" --data "$data" --if-missing "$@" \
    || echo "[train_gpu] measuring runs at once failed or ran out of time; training goes on"
}
if [[ ${CONCURRENCY:-$((1 - smoke))} == 1 ]]; then
  if (( smoke )); then
    concurrency --smoke --variant resnet20 --jobs 1,2 --process-jobs 2 --iterations 2
  else
    concurrency
    # Processes overlap on a GPU only under MPS: measure them there too, where a daemon starts.
    if command -v nvidia-cuda-mps-control >/dev/null; then
      export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
      mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
      if nvidia-cuda-mps-control -d; then
        concurrency --methods processes
        echo quit | nvidia-cuda-mps-control || true
        sleep 2
      else
        echo "[train_gpu] the MPS daemon did not start: no MPS rows"
      fi
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    fi
  fi
fi
# The time limit counts from this script's start (TIME_LIMIT seconds, default 540: the device's
# 600-second command limit less a margin); a --time-limit given here overrides it.
remaining=$(( ${TIME_LIMIT:-540} - SECONDS ))
$python device/train_gpu.py --out "$out" --time-limit "$remaining" --data "$data" "$@"
