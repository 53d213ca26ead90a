# shellcheck shell=bash
# The preamble of every device/*_gpu.sh runbook, sourced from the repository root as
# `source device/common.sh NAME`. The GPU machine runs a copy of the working tree, has no fvcore
# and reaches no registry, and only the files under $OUT come back (README "On a GPU"), so:
# - all output is copied to $OUT/NAME.log (`out` is $OUT, default /tmp/NAME_out);
# - the carried fvcore wheels (.whl/, from ../shared/device/wheels.sh) go into /tmp/site, and the
#   package runs from the tree (PYTHONPATH) with `python` ($PYTHON, default python3);
# - ABLATE_DATA points at the carried CIFAR-10 archive unless it is set, and ABLATE_GIT_COMMIT
#   at carry/COMMIT where the copy has no .git;
# - `unpack_carried DIR [GLOB]` merges an earlier call's tarballs (members under results/) from
#   ${RESUME_FROM:-carry/gpu-results} into DIR (`ablate merge`: no row committed since is
#   lost), so that a later call continues from them.
out=${OUT:-/tmp/${1:?source device/common.sh NAME}_out}
mkdir -p "$out"
exec > >(tee "$out/$1.log") 2>&1
log_pid=$!
finish_log() {  # the machine ends what a command leaves running: let tee write the last lines
  exec >&- 2>&-
  for _ in {1..50}; do kill -0 "$log_pid" 2>/dev/null || return 0; sleep 0.1; done
}
trap finish_log EXIT
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then  # the GPU image has no fvcore, no submitit
  $python -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# Fail in one line now, not minutes into the device's time: the CLI imports submitit (the
# executors), a run's end fvcore (its MACs).
if ! missing=$($python -c 'import importlib.util as u
print(" ".join(m for m in ("fvcore", "submitit") if u.find_spec(m) is None))') || [[ -n $missing ]]; then
  echo "[$1] missing: ${missing:-python}; carry the wheels: ../shared/device/wheels.sh .whl" \
    "submitit (README \"On a GPU\")"
  exit 2
fi
# The copy of the tree on the GPU machine may have no .git: rows then take the commit from
# carry/COMMIT, written here before the call (`git rev-parse --short=12 HEAD > carry/COMMIT`).
if [[ -z ${ABLATE_GIT_COMMIT:-} ]] && ! git rev-parse HEAD >/dev/null 2>&1; then
  if [[ -f carry/COMMIT ]]; then
    export ABLATE_GIT_COMMIT=$(<carry/COMMIT)
  else
    echo "[$1] warning: no git checkout and no carry/COMMIT: rows will say git_commit unknown"
  fi
fi
for archive in shared/datasets/cifar10-jpeg.tar.gz carry/cifar10-jpeg.tar.gz; do
  if [[ -z ${ABLATE_DATA:-} && -f $archive ]]; then export ABLATE_DATA=$PWD/$archive; fi
done

unpack_carried() {  # DIR [GLOB]: the packers write results/... members; they merge into DIR
  local packed
  mkdir -p "$1"
  for packed in "${RESUME_FROM:-carry/gpu-results}"/${2:-*.tar.gz}; do
    if [[ -f $packed ]]; then
      echo "[$(basename "$0" .sh)] merging $packed into $1"
      # Merged, not unpacked over: a carried table must not drop rows committed since.
      $python -m ablations.cli merge "$packed" --results "$1"
    fi
  done
}
