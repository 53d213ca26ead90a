#!/usr/bin/env bash
# Issue 14's GPU measurement in ONE device command: the streaming loader's images/s, CPU decode
# (DataLoader workers) against GPU decode (nvJPEG batches), on a synthetic ImageNet-layout tree
# of 500x375 JPEGs written from the carried CIFAR-10 archive (bench/synthetic_imagenet.py; the
# GPU machine has no ImageNet). Leaves loader_speed.csv and loader_gpu.log in $OUT.
# Environment: CLASSES, PER_CLASS (the tree's size), WORKERS (comma list), BATCH, BATCHES (timed
# batches per setting); defaults fit about two minutes on a 16-core GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source device/common.sh loader_gpu  # log, PYTHONPATH, ABLATE_DATA
tree=${TREE:-/tmp/synthetic-imagenet-500x375}
$python bench/synthetic_imagenet.py --out "$tree" --classes "${CLASSES:-20}" \
  --train-per-class "${PER_CLASS:-200}" --val-per-class 2
csv="$out/loader_speed.csv"
first=1
for recipe in imagenet-torchvision imagenet-paper; do
  $python -m ablations loader-speed --data "$tree" --paths cpu-decode,gpu-decode \
    --workers "${WORKERS:-4,8,16}" --batch "${BATCH:-256}" --batches "${BATCHES:-20}" --warmup 3 \
    --recipe "$recipe" --out "$out/part.csv"
  if (( first )); then cat "$out/part.csv" > "$csv"; first=0; else tail -n +2 "$out/part.csv" >> "$csv"; fi
done
rm -f "$out/part.csv"
cut -d, -f1-7 "$csv"
