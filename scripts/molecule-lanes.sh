#!/usr/bin/env bash
# Runs Molecule scenarios (`molecule test`), longest first, in MOLECULE_LANES lanes side
# by side (default 1). Measured on 2 cores with 2 lanes: the scenarios slowed each other
# down about as much as the lanes saved, and removing the vllm scenario's container timed
# out under the other lane's disk load; more cores may change that. Scenarios go to the
# lane with the least work (durations measured here; a new scenario counts 600 s).
# Each lane has its own apt download cache (apt fails at once on a lock that another
# container holds); lane 1 keeps .cache/apt-archives, the others start as hard-linked
# copies of it. A scenario's log is printed when it fails; the first failure stops all.
#
#   scripts/molecule-lanes.sh [scenario ...]     (default: every molecule/*/molecule.yml)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

lanes=${MOLECULE_LANES:-1}
declare -A seconds=(
  [fleet]=1634 [langgraph_server]=946 [caddy]=551 [vllm]=535 [phoenix]=516 [wireguard]=363
  [model_router]=330 [postgresql]=239 [reprovision_schedule]=142 [base]=124 [redis]=97
  [nvidia_container_toolkit]=91 [nvidia_driver]=86
)
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for file in molecule/*/molecule.yml; do scenarios+=("$(basename "$(dirname "$file")")"); done
fi

# Longest first, each to the lane with the least work so far.
mapfile -t ordered < <(for s in "${scenarios[@]}"; do echo "${seconds[$s]:-600} $s"; done | sort -rn | cut -d' ' -f2)
declare -a load plan
for ((i = 0; i < lanes; i++)); do load[i]=0; plan[i]=""; done
for s in "${ordered[@]}"; do
  best=0
  for ((i = 1; i < lanes; i++)); do (( load[i] < load[best] )) && best=$i; done
  load[best]=$(( load[best] + ${seconds[$s]:-600} ))
  plan[best]="${plan[best]} $s"
done

logs=.cache/molecule-logs
mkdir -p "$logs"
for suite in bookworm bookworm-2 bookworm-3 trixie trixie-2; do mkdir -p ".cache/apt-archives/$suite/partial"; done

run_lane() {
  local lane=$1; shift
  local apt=.cache/apt-archives
  if (( lane > 1 )); then
    apt=.cache/apt-archives/lane$lane
    for suite in bookworm bookworm-2 bookworm-3 trixie trixie-2; do
      mkdir -p "$apt/$suite/partial"
      # Hard links: no copy of the data; apt replaces files, it never edits them.
      cp -aln .cache/apt-archives/$suite/. "$apt/$suite/" 2>/dev/null || true
      # apt locks that file: a hard link would be one lock for both.
      rm -f "$apt/$suite/lock"
    done
  fi
  for s in "$@"; do
    local start=$SECONDS
    if AI_INFRA_APT_ARCHIVES=$apt molecule test -s "$s" >"$logs/$s.log" 2>&1; then
      echo "=== lane $lane: scenario $s passed in $(( SECONDS - start )) s"
    else
      echo "=== lane $lane: scenario $s FAILED after $(( SECONDS - start )) s; its log:"
      cat "$logs/$s.log"
      echo "=== end of $s's log (also in $logs/$s.log)"
      return 1
    fi
  done
}

pids=()
for ((i = 0; i < lanes; i++)); do
  [ -n "${plan[i]}" ] || continue
  echo "=== lane $(( i + 1 )):${plan[i]} (about ${load[i]} s alone)"
  # shellcheck disable=SC2086
  run_lane $(( i + 1 )) ${plan[i]} &
  pids+=($!)
done

status=0
while [ ${#pids[@]} -gt 0 ]; do
  wait -n "${pids[@]}"
  code=$?
  alive=()
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  pids=("${alive[@]}")
  if [ $code -ne 0 ]; then
    status=$code
    # Stop the other lanes: the run has failed already.
    for pid in "${pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    break
  fi
done
exit $status
