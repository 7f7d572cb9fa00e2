#!/usr/bin/env bash
# Run the whole suite many times at full parallelism, optionally with every core busy, and
# report flaky scenarios (failed at least once) and anything the host guard saw leak. Runs
# alternate between --paranoid (cold supervisors, the host guard after every scenario) and
# the default (warm supervisors, the host guard around the run).
#
# Usage: ci/stress.sh [RUNS] [--load]
#   RUNS    how many runs (default 50)
#   --load  keep every core busy with a spinning process while the runs go
# Exit status 0 only when every run passed with nothing leaked.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-50}"
load="${2:-}"
cargo build --quiet
bin=target/debug/nsconform
jobs=$(( $(nproc) * 2 ))
logs=$(mktemp -d /tmp/nsconform-stress.XXXXXX)

spinners=()
stop_spinners() { for pid in "${spinners[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_spinners EXIT
if [ "$load" = "--load" ]; then
  for _ in $(seq 1 "$(nproc)"); do
    sh -c 'while :; do :; done' &
    spinners+=("$!")
  done
fi

failed_runs=0
started=$(date +%s)
for i in $(seq 1 "$runs"); do
  mode=()
  if [ $((i % 2)) -eq 1 ]; then mode=(--paranoid); fi
  if ! "$bin" run "${mode[@]}" -j "$jobs" scenarios >"$logs/run-$i.log" 2>&1; then
    failed_runs=$((failed_runs + 1))
  fi
done
elapsed=$(( $(date +%s) - started ))

echo "$runs runs at -j $jobs${load:+ under load} in ${elapsed}s; $failed_runs failed"
flaky=$(grep -h '^FAIL ' "$logs"/run-*.log | awk '{print $2}' | sort | uniq -c | sort -rn || true)
if [ -n "$flaky" ]; then
  echo "scenarios that failed (times, name):"
  echo "$flaky"
  echo "first failure of each:"
  for name in $(echo "$flaky" | awk '{print $2}'); do
    grep -h -A6 "^FAIL $name " "$logs"/run-*.log | head -8
  done
fi
leaks=$(grep -h 'host guard' "$logs"/run-*.log | sort | uniq -c || true)
if [ -n "$leaks" ]; then
  echo "host guard reports:"
  echo "$leaks"
fi
leftover=$(for d in /sys/fs/cgroup/*/nsconform-* /sys/fs/cgroup/nsconform-*; do
  [ -d "$d" ] || continue; pid=${d##*-}; [ -d "/proc/$pid" ] || echo "$d"; done)
if [ -n "$leftover" ]; then
  echo "leftover cgroups: $leftover"
fi
echo "logs: $logs"
[ "$failed_runs" -eq 0 ] && [ -z "$leaks" ] && [ -z "$leftover" ]
