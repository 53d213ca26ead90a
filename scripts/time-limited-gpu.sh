#!/usr/bin/env bash
# A GPU machine for a limited time (a spot instance, a notebook service, a job with a time
# limit), from start to end: merge the results packed on an earlier machine, run the GPU tests,
# time the planned runs, train until the time limit, and pack what the next machine needs to go
# on. It installs nothing. Settings come from the environment:
#   PACK_DIR     the folder the tarballs (`ablate pack`) and the GPU tests' JUnit XML go to
#   RESUME_FROM  a folder of tarballs an earlier machine packed, merged into RESULTS first
#   TIME_LIMIT   the training's time limit, as `ablate run --time-limit` takes it (default 45m)
#   MAX_MB       what the tarballs may hold in all (`ablate pack --max-mb`; default: no limit)
#   STAGE_LIMIT  how long the GPU tests, and then the measuring, may each take (as `timeout`
#                takes it; default 20m): a stage that hangs must not use up the training's time
#   PROFILE      paper (default), or smoke: every step on the CPU in seconds, for tests
#   EXPERIMENTS  what to train (default degradation,responses: the paper's Fig. 6 and Fig. 7)
#   JOBS         runs at once, one CUDA stream each (`ablate run --jobs`; default 1)
#   RESULTS, REPORTS  the results and reports folders (default results, reports)
#   TESTS        what pytest collects for the GPU tests (default tests)
#   PYTHON       the Python that has the package's dependencies (default python3)
# As for every ablate command, ABLATE_DATA names the CIFAR-10 copy and ABLATE_GIT_COMMIT the
# commit, where the checkout has no .git.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${PACK_DIR:?set PACK_DIR to the folder the packed results go to}
python=${PYTHON:-python3}
profile=${PROFILE:-paper}
results=${RESULTS:-results}
experiments=${EXPERIMENTS:-degradation,responses}
say() { echo "[time-limited-gpu] $*" >&2; }
ablate() { "$python" -m ablations "$@"; }
limit=${STAGE_LIMIT:-20m}
# A stage's exit status, with one line on stderr where it ran past STAGE_LIMIT.
staged() {
  local status=0
  timeout "$limit" "$@" || status=$?
  if (( status == 124 )); then say "stopped after STAGE_LIMIT ($limit): $*"; fi
  return "$status"
}
case $profile in
  paper) device=auto measure=() ;;
  smoke) device=cpu measure=(--iterations 2 --warmup 1) ;;
  *) say "PROFILE is paper or smoke, not '$profile'"; exit 2 ;;
esac
planned=(--profile "$profile" --experiments "$experiments" --results "$results" --device "$device")
mkdir -p "$out" "$results"

if [[ -n ${RESUME_FROM:-} ]]; then
  shopt -s nullglob
  earlier=("$RESUME_FROM"/*.tar.gz)
  shopt -u nullglob
  if (( ${#earlier[@]} )); then ablate merge "${earlier[@]}" --results "$results"; fi
fi

read -ra tests <<< "${TESTS:-tests}"
if ! staged "$python" -m pytest -q -p no:cacheprovider -m gpu --junitxml="$out/gpu-tests.xml" \
    "${tests[@]}"; then
  say "the GPU tests did not all pass (above, and $out/gpu-tests.xml); training anyway"
fi

if ! staged "$python" -m ablations plan "${planned[@]}" --measure "${measure[@]}"; then
  say "measuring failed (above); training anyway"
fi

status=0
ablate run "${planned[@]}" --reports "${REPORTS:-reports}" --time-limit "${TIME_LIMIT:-45m}" \
  --jobs "${JOBS:-1}" || status=$?
ablate pack "$out" --results "$results" ${MAX_MB:+--max-mb "$MAX_MB"}
if (( status )); then say "training failed (exit $status, above); what it saved is packed"; fi
exit "$status"
