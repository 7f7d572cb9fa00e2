#!/usr/bin/env bash
# Speed figures, printed side by side (a benchmark, not a test: nothing here passes or fails
# on a number). Per representative scenario: the harness (one supervisor, and a whole
# `nsconform run`), the equivalent shell script with unshare(1), and the floor (a minimal
# program making the same unshare, maps, fork, execs and waits); then the whole suite at 1
# and 2 parallel trials with its peak memory; and, when a kernel is cached and QEMU is
# installed, a VM round trip against the same kernel's boot.
# Usage: ci/bench.sh [ITERATIONS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-30}"
cargo build --release --quiet --bin nsconform --example floor
bin=target/release/nsconform
floor=target/release/examples/floor
cache=$(mktemp /tmp/nsconform-bench-features.XXXXXX.json)
trap 'rm -f "$cache"' EXIT
"$bin" features --save "$cache" >/dev/null
export NSCONFORM_FEATURE_CACHE="$cache"

# mean wall time in ms of running "$@" $n times
mean_ms() {
  local start end
  start=$(date +%s%N)
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(( (end - start) / n / 1000 ))
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '%-6s %12s %12s %12s %12s %10s %10s\n' scenario supervisor "nsconform run" "unshare(1)" floor "sup/script" "sup/floor"
bench() {
  local name=$1 kinds=$2 script=$3
  local sup run sh fl
  sup=$(mean_ms "$bin" __supervise --name "$name" "ci/bench/$name.toml")
  run=$(mean_ms "$bin" run "ci/bench/$name.toml")
  sh=$(mean_ms sh -c "$script")
  # shellcheck disable=SC2086 # the floor's command line is split on purpose
  fl=$(mean_ms "$floor" "$kinds" sh -c "${script#* sh -c }")
  printf '%-6s %10s ms %10s ms %10s ms %10s ms %10s %10s\n' "$name" "$(ms "$sup")" "$(ms "$run")" "$(ms "$sh")" "$(ms "$fl")" "$(ratio "$sup" "$sh")" "$(ratio "$sup" "$fl")"
}
bench uts uts 'unshare --uts sh -c "hostname x; hostname"'
bench full user,uts,net,mount,ipc,pid 'unshare -Uurnmipf --mount-proc sh -c "hostname x; hostname; ip -br link; cat /proc/self/uid_map"'

echo
for jobs in 1 2; do
  start=$(date +%s%N)
  if command -v /usr/bin/time >/dev/null; then
    peak=$(/usr/bin/time -f %M "$bin" run -j "$jobs" scenarios 2>&1 >/dev/null | tail -1)
  else
    "$bin" run -j "$jobs" scenarios >/dev/null 2>&1 || true
    peak="?"
  fi
  end=$(date +%s%N)
  echo "whole suite at -j $jobs: $(ms $(( (end - start) / 1000 ))) ms, peak RSS of the runner ${peak} KiB"
done

kernel=$("$bin" kernels list 2>/dev/null | awk 'NR==2 {print $1}')
if [ -n "$kernel" ] && command -v qemu-system-x86_64 >/dev/null; then
  echo
  "$bin" vm --kernel "$kernel" --filter uts/ 2>&1 | tail -1
fi
