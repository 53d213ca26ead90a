#!/usr/bin/env bash
# Issue 10's speed comparisons in ONE device command (README "On a GPU"), in three stages run in
# this order under one time limit:
#   train-speed  `ablate train-speed resnet20 resnet56`: our training loop against the
#                conventional torchvision/DataLoader one (workers: the machine's cores)
#                -> results/train_speed.csv (each net's two rows as they are measured)
#   timm         `ablate bench resnet50 --mode both --precision bf16 --channels-last on
#                --batch-size 256 --runs 3 --reference timm`: ours against timm's benchmark.py
#                (bench/third_party) -> results/throughput_timm.csv (the rows of both)
#   table        `ablate run --profile paper --experiments throughput`: the full GPU table
#                -> results/throughput.csv (rows saved as each child ends; a rerun measures
#                only the settings this machine has no row for)
# Usage: bash device/speed_gpu.sh [--smoke] [--results DIR] [STAGE ...]
#   STAGE ... (or STAGES=a,b): which stages to run, default all; a later call runs what is left.
#   TIME_LIMIT: seconds for the whole command from this script's start (default 540: the device's
#   600-second command limit less a margin). Each stage gets the time left; at its limit it gets
#   one SIGINT (ablate keeps every row saved so far, ends its children and exits 130) and, 15 s
#   later (3 s in --smoke), its whole process group SIGKILL. SIGINT or SIGTERM to this script
#   stops the stage in hand the same way and starts no other.
#   Results go to the checkout's results/ (the device's copy of the tree: what comes back
#   replaces the committed tables with the merged ones), or --results DIR / $RESULTS.
# Leaves $OUT/speed-results.tar.gz (results/*.csv of the stages) and $OUT/speed_gpu.log; the log
# ends with each stage's outcome and the command that continues.
# --smoke: the same stages on the CPU in seconds, into a scratch folder (tests/
#   test_device_speed.py): tiny batches and steps; the timm stage only where timm is importable;
#   the table is `ablate bench` on two nets at one step, since `ablate run` has no option for
#   the timing and its CPU table takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source device/common.sh speed_gpu  # log, fvcore wheels, PYTHONPATH, ABLATE_DATA

say() { echo "[speed_gpu] $*"; }
all_stages=(train-speed timm table)
smoke=0
results=${RESULTS:-}
wanted=()
while (( $# )); do
  case $1 in
    --smoke) smoke=1 ;;
    --results) results=${2:?--results needs a folder}; shift ;;
    train-speed|timm|table) wanted+=("$1") ;;
    *) say "unknown argument '$1'; usage: [--smoke] [--results DIR] [${all_stages[*]}]"; exit 2 ;;
  esac
  shift
done
if (( ${#wanted[@]} == 0 )); then
  IFS=', ' read -ra wanted <<< "${STAGES:-train-speed,timm,table}"
fi
stages=()
for stage in "${wanted[@]}"; do
  if [[ " ${all_stages[*]} " != *" $stage "* ]]; then
    say "unknown stage '$stage' in STAGES; choose from: ${all_stages[*]}"; exit 2
  fi
done
for stage in "${all_stages[@]}"; do  # always in this order, whatever order they were named in
  if [[ " ${wanted[*]} " == *" $stage "* ]]; then stages+=("$stage"); fi
done

time_limit=${TIME_LIMIT:-540}
if (( smoke )); then
  results=${results:-${TMPDIR:-/tmp}/speed_gpu_smoke/results}
  grace=3 reserve=1 least=1  # seconds: after SIGINT; for packing; the shortest stage worth starting
else
  results=${results:-results}
  # ablate exits within seconds of SIGINT; a stage with under 30 s would only start CUDA.
  grace=15 reserve=5 least=30
fi
mkdir -p "$results"
results=$(cd "$results" && pwd)
if (( smoke )) && [[ $results == "$PWD/results" ]]; then
  say "--smoke writes into a scratch folder, not the checkout's results/: give --results DIR"
  exit 2
fi
mode=GPU
if (( smoke )); then mode="smoke (CPU)"; fi
say "$mode; stages: ${stages[*]}; results: $results; time limit ${time_limit} s"
unpack_carried "$results" 'speed-results*.tar.gz'

if (( ! smoke )); then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv || true
  if ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    say "no CUDA device here: nothing measured (--smoke runs the stages on the CPU)"; exit 2
  fi
fi
if [[ " ${stages[*]} " == *" train-speed "* && -z ${ABLATE_DATA:-} ]]; then
  say "train-speed needs CIFAR-10: set ABLATE_DATA or carry carry/cifar10-jpeg.tar.gz"; exit 2
fi

scratch=$(mktemp -d)  # the table's report, the tarball's staging
stopping=0  # SIGINT/SIGTERM to this script: the stage in hand stops as at the limit, none starts
trap 'stopping=1' INT TERM

limited() {  # SECONDS CMD...: CMD's status, or 124 where the limit (or a signal) cut it
  local end=$((SECONDS + $1)) pid rc=0 cut=0
  shift
  # A process group of its own, so that SIGINT goes to the ablate process alone (a group-wide
  # one, as `timeout` sends, reaches it twice and interrupts its clean-up) and SIGKILL to all.
  set -m
  "$@" </dev/null &
  pid=$!
  set +m
  while kill -0 "$pid" 2>/dev/null; do
    if (( !cut && (SECONDS >= end || stopping) )); then
      cut=1 end=$((SECONDS + grace))
      kill -INT "$pid" 2>/dev/null || true
    elif (( cut == 1 && SECONDS >= end )); then
      cut=2
      say "still running ${grace} s after SIGINT: killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  wait "$pid" || rc=$?
  # Whatever of its group outlived it (a child still exiting) must not run beside the next stage.
  kill -KILL -- "-$pid" 2>/dev/null || true
  if (( cut )); then return 124; fi
  return "$rc"
}

stage_command() {  # STAGE: sets `command` to the stage's one ablate command line
  local ablate=("$python" -m ablations)
  case $1:$smoke in
    train-speed:0) command=("${ablate[@]}" train-speed resnet20 resnet56) ;;
    train-speed:1) command=("${ablate[@]}" train-speed resnet20 resnet56 --profile smoke
                            --device cpu --iterations 2 --warmup 1 --batch-size 8 --workers 1) ;;
    timm:0) command=("${ablate[@]}" bench resnet50 --mode both --precision bf16
                     --channels-last on --batch-size 256 --runs 3 --reference timm) ;;
    timm:1) command=("${ablate[@]}" bench resnet50 --mode both --precision fp32  # timm: 5 steps
                     --channels-last off --batch-size 2 --input-size 32 --warmup 1 --repeats 1
                     --steps 5 --device cpu --reference timm) ;;
    table:0) command=("${ablate[@]}" run --profile paper --experiments throughput
                      --results "$results" --reports "$scratch/reports") ;;  # only CSVs return
    table:1) command=("${ablate[@]}" bench resnet20 resnet18 --mode both --channels-last both
                      --warmup 1 --repeats 1 --steps 1 --batch-size 2 --input-size 16
                      --device cpu) ;;
  esac
  if [[ $1 == train-speed ]]; then
    command+=(--out "$results/train_speed.csv")
  elif [[ $1 == timm || $smoke == 1 ]]; then  # ablate bench: throughput(_timm).csv in the folder
    command+=(--out "$results")
  fi
}

declare -A outcome
rerun=() failed=0
for stage in "${stages[@]}"; do
  left=$((time_limit - SECONDS - grace - reserve))
  if (( stopping )); then
    outcome[$stage]="not started (interrupted)"; rerun+=("$stage"); continue
  fi
  if (( left < least )); then
    outcome[$stage]="not started: no time left (${left} s)"; rerun+=("$stage"); continue
  fi
  has_timm='import importlib.util as u, sys; sys.exit(u.find_spec("timm") is None)'
  if [[ $stage == timm ]] && ! "$python" -c "$has_timm"; then
    outcome[$stage]="skipped: timm is not importable here (pip install timm)"; continue
  fi
  say "== $stage: up to ${left} s"
  started=$SECONDS
  stage_command "$stage"
  echo "${command[*]}"
  rc=0
  limited "$left" "${command[@]}" || rc=$?
  took=$((SECONDS - started))
  if (( rc == 0 )); then
    outcome[$stage]="finished in ${took} s"
  elif (( rc == 124 )); then
    why="cut off by the time limit"
    if (( stopping )); then why="interrupted"; fi
    kept="the rows it saved before are kept"
    outcome[$stage]="$why after ${took} s; $kept"
    rerun+=("$stage")
  else
    outcome[$stage]="FAILED (exit $rc) after ${took} s: see the log above"
    rerun+=("$stage") failed=1
  fi
done
trap - INT TERM

mkdir -p "$scratch/pack/results"
packed=()
for table_file in train_speed.csv throughput_timm.csv throughput.csv; do
  if [[ -f $results/$table_file ]]; then
    cp "$results/$table_file" "$scratch/pack/results/"
    packed+=("results/$table_file ($(( $(wc -l < "$results/$table_file") - 1 )) rows)")
  fi
done
if (( ${#packed[@]} )); then
  tar -czf "$out/speed-results.tar.gz" -C "$scratch/pack" results
  say "packed $out/speed-results.tar.gz: ${packed[*]}"
else
  say "no table to pack"
fi
rm -rf "$scratch"

for stage in "${stages[@]}"; do say "$stage: ${outcome[$stage]}"; done
if (( ${#rerun[@]} )); then
  joined=$(IFS=,; echo "${rerun[*]}")
  for stage in "${rerun[@]}"; do
    how="measures all of it again"
    if [[ $stage:$smoke == table:0 ]]; then how="measures only the settings still missing"; fi
    say "rerun $stage: it $how"
  done
  if (( smoke )); then
    say "the rows stay in $results; continue with:"
    say "  STAGES=$joined bash device/speed_gpu.sh --smoke --results $results"
  else
    say "bring speed-results.tar.gz back into carry/gpu-results/ (or \$RESUME_FROM) and run:"
    say "  STAGES=$joined bash device/speed_gpu.sh"
  fi
else
  say "all stages done"
fi
if (( stopping )); then exit 130; fi
exit "$failed"
