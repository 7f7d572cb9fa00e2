#!/usr/bin/env bash
# Speed figures, printed side by side. A benchmark, not a test: nothing here passes or fails
# on a number.
#
# Per representative scenario (ci/bench/*.toml):
#   harness   the cost of one more scenario in a run: (`nsconform run -j 1` of N copies
#             minus the run of one copy) / (N - 1)
#   one file  `nsconform run FILE`, the whole command for one scenario
#   script    the same experiment by hand (ci/bench/*.sh): `unshare(1)` and a check of what
#             it printed, N times in one shell, per iteration
#   floor     the same loop with unshare(1) replaced by ci/bench/floor.c: one unshare(2),
#             the maps, a fork and a fresh /proc when a PID namespace is new, the exec
#   stand-in floor
#             the floor inside a minimal stand-in host, made for every iteration as the
#             harness makes one for every scenario (`floor standin,...`: six namespaces, a
#             fork, fresh /proc, /sys, /run, /tmp, /dev/shm, /dev/mqueue, the loopback up):
#             what a safe run costs at least, done one step after the other
# and the CPU time of each per scenario: user and system time of every process of the run
# (the harness's, the stand-in's, the commands'), from `cpu.stat` of a cgroup v2 the bench
# makes for its runs (the harness makes its scenarios' cgroups below the one it runs in), not
# the kernel's own workers (e.g. the teardown of network namespaces); without a writable
# cgroup v2, bash's `times`, which misses processes no one waited for (those killed with a
# PID namespace's init); on 2 cores, a harness whose CPU time per scenario is near twice its
# wall time is bound by CPU, not by waiting;
# then the whole suite at 1 and 2 parallel trials with peak memory, and, for each cached
# kernel (`nsconform kernels list`), the VM round trip of one scenario (`nsconform vm`, from
# the command's start to its exit) against the bare boot of the same kernel with the same
# QEMU settings and initramfs (`nsconform vm --boot-only`: QEMU's start to its exit).
# Every figure is the best of $ROUNDS rounds (default 3; $VM_ROUNDS, default 2, for VMs);
# a round measures a scenario's five figures one after the other.
# $PARTS picks what to measure (default "scenarios suite vm"). $BIN measures that build of
# `nsconform` instead of building this tree's (to compare two builds, alternate them: this
# machine's speed drifts).
#
# Usage: ci/bench.sh [N]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-30}"
rounds="${ROUNDS:-3}"
parts=" ${PARTS:-scenarios suite vm} "
wanted() { [[ "$parts" == *" $1 "* ]]; }
target="${CARGO_TARGET_DIR:-target}"
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  cargo build --release --quiet --bin nsconform
  bin="$target/release/nsconform"
fi
floor="$target/release/floor"
cc -O2 -Wall -o "$floor" ci/bench/floor.c
work=$(mktemp -d /var/tmp/nsconform-bench.XXXXXX)
# The cgroup whose cpu.stat gives CPU time (see above): made under the bench's own cgroup v2,
# each measured run moves into it, and it goes at the end.
cpu_cgroup=""
cgroup2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
own_cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)
if [ -n "$cgroup2" ] && [ -n "$own_cgroup" ]; then
  cpu_cgroup="${cgroup2%/}${own_cgroup%/}/nsconform-bench-$$"
  if ! mkdir "$cpu_cgroup" 2>/dev/null || ! (echo "$BASHPID" >"$cpu_cgroup/cgroup.procs") 2>/dev/null; then
    rmdir "$cpu_cgroup" 2>/dev/null || true
    cpu_cgroup=""
  fi
fi
trap 'rm -rf "$work"; [ -z "$cpu_cgroup" ] || rmdir "$cpu_cgroup"' EXIT

# The scripts and the floor change the hostname inside their new namespaces only; check
# that the machine's did not change, after each of them.
machine_hostname=$(cat /proc/sys/kernel/hostname)
check_hostname() {
  local now
  now=$(cat /proc/sys/kernel/hostname)
  if [ "$now" != "$machine_hostname" ]; then
    echo "ci/bench.sh: the machine's hostname changed from $machine_hostname to $now after $*" >&2
    exit 1
  fi
}

now_us() { echo "${EPOCHREALTIME/./}"; }

# $usage: usage_usec of $cpu_cgroup, read without starting a process.
usage=0
read_usage() {
  local key value
  while read -r key value; do
    if [ "$key" = usage_usec ]; then usage=$value; fi
  done <"$cpu_cgroup/cpu.stat"
}

# "WALL CPU" in µs for one run of "$@" (it must succeed): the wall time, and the user and
# system time of its processes. Run in a subshell of its own (`$(...)`), which moves into
# $cpu_cgroup, or else whose `times` counts exactly that run; $EPOCHREALTIME, not date(1),
# so no other process counts.
time_us() {
  local start end cpu before=""
  if [ -n "$cpu_cgroup" ]; then
    echo "$BASHPID" >"$cpu_cgroup/cgroup.procs"
    read_usage
    before=$usage
  fi
  start=${EPOCHREALTIME/./}
  if ! "$@" >/dev/null 2>"$work/stderr"; then
    echo "ci/bench.sh: failed: $*" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  end=${EPOCHREALTIME/./}
  if [ -n "$cpu_cgroup" ]; then
    read_usage
    cpu=$((usage - before))
  else
    # The second line of `times`: the children's user and system time, as 0m0.123s. Into a
    # file: in a pipe, `times` would run in a new process, which has no children yet.
    times >"$work/times"
    cpu=$(awk 'NR == 2 {
      t = 0
      for (i = 1; i <= 2; i++) { split($i, part, /[ms]/); t += part[1] * 60 + part[2] }
      printf "%d", t * 1000000 }' "$work/times")
  fi
  echo "$((10#$end - 10#$start)) $cpu"
}
least() { if [ -z "$1" ] || [ "$2" -lt "$1" ]; then echo "$2"; else echo "$1"; fi; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

row() {
  printf '%-6s' "$1"
  shift
  printf ' %16s' "$@"
  echo
}
# $work/NAME: N copies of ci/bench/NAME.toml (NAME-001.toml ...).
copies() {
  mkdir -p "$work/$1"
  for i in $(seq 1 "$n"); do cp "ci/bench/$1.toml" "$(printf '%s/%s/%s-%03d.toml' "$work" "$1" "$1" "$i")"; done
}
cpu_rows=()
bench() {
  local name=$1 unshare=$2 kinds=$3 dir="$work/$1"
  copies "$name"
  local -A wall=() cpu=()
  local figure measured
  # Each round measures all five, one after the other, so that the machine's drift (see
  # docs/performance.md) weighs on each alike; each figure is its best round.
  for _ in $(seq 1 "$rounds"); do
    for figure in one all script floor standin; do
      case $figure in
        one) measured=$(time_us "$bin" run -j 1 "$dir/$name-001.toml") ;;
        all) measured=$(time_us "$bin" run -j 1 "$dir") ;;
        script) measured=$(time_us env ENTER="unshare $unshare" sh "ci/bench/$name.sh" "$n") ;;
        floor) measured=$(time_us env ENTER="$floor $kinds" sh "ci/bench/$name.sh" "$n") ;;
        standin) measured=$(time_us env ENTER="$floor standin,$kinds" sh "ci/bench/$name.sh" "$n") ;;
      esac
      [ "$figure" = one ] || [ "$figure" = all ] || check_hostname "the $figure for $name"
      wall[$figure]=$(least "${wall[$figure]:-}" "${measured% *}")
      cpu[$figure]=$(least "${cpu[$figure]:-}" "${measured#* }")
    done
  done
  local per=$(((wall[all] - wall[one]) / (n - 1))) script=$((wall[script] / n)) fl=$((wall[floor] / n))
  local standin=$((wall[standin] / n))
  row "$name" "$(ms "$per") ms" "$(ms "${wall[one]}") ms" "$(ms "$script") ms" "$(ms "$fl") ms" \
    "$(ms "$standin") ms" "$(ratio "$per" "$script")" "$(ratio "$per" "$fl")" "$(ratio "$per" "$standin")"
  local cpu_per=$(((cpu[all] - cpu[one]) / (n - 1))) cpu_script=$((cpu[script] / n))
  cpu_rows+=("$(row "$name" "$(ms "$cpu_per") ms" "$(ms "$cpu_script") ms" \
    "$(ms "$((cpu[floor] / n))") ms" "$(ms "$((cpu[standin] / n))") ms" \
    "$(ratio "$cpu_per" "$cpu_script")" "$(ratio "$cpu_per" "$per")")")
}
if wanted scenarios; then
  row scenario "harness" "one file" "script" "floor" "stand-in floor" "harness/script" \
    "harness/floor" "harness/stand-in"
  bench uts "--uts" uts
  bench full "-Uurnmipf --mount-proc" user,uts,net,mount,ipc,pid,proc
  echo
  if [ -n "$cpu_cgroup" ]; then
    echo "CPU time per scenario (user + system of every process of each run, from cpu.stat):"
  else
    echo "CPU time per scenario (user + system of the processes each run waited for; no cgroup v2 here):"
  fi
  row scenario "harness" "script" "floor" "stand-in floor" "harness/script" "harness CPU/wall"
  printf '%s\n' "${cpu_rows[@]}"
  echo
fi

if wanted suite; then
  copies uts
  peak=$( { /usr/bin/time -f %M "$bin" run -j 1 "$work/uts" >/dev/null; } 2>&1 | tail -1)
  echo "harness peak RSS (largest process of a run of $n uts scenarios): ${peak} KiB"
  count=$(find scenarios -name '*.toml' | wc -l)
  declare -A suite
  for jobs in 1 2; do
    start=$(now_us)
    if [ -x /usr/bin/time ]; then
      peak="$(/usr/bin/time -f %M "$bin" run -j "$jobs" scenarios 2>&1 >/dev/null | tail -1) KiB"
    else
      "$bin" run -j "$jobs" scenarios >/dev/null 2>&1 || true
      peak="? (no /usr/bin/time)"
    fi
    suite[$jobs]=$(($(now_us) - start))
    echo "whole suite ($count scenarios) at -j $jobs: $(ms "${suite[$jobs]}") ms, peak RSS $peak (largest process, tools under test included)"
  done
  echo "speed-up of -j 2 over -j 1: $(ratio "${suite[1]}" "${suite[2]}")x on $(nproc) cores"
  echo
fi

wanted vm || exit 0
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "no qemu-system-x86_64: no VM figures"
  exit 0
fi
vm_rounds="${VM_ROUNDS:-2}"
# The least value of `FIELD=` in the figures line of `nsconform vm ARGS` over $vm_rounds runs.
vm_best() {
  local field=$1 best="" value
  shift
  for _ in $(seq 1 "$vm_rounds"); do
    value=$("$bin" vm "$@" 2>&1 | sed -n "s/.* figures: .*$field=\([0-9.]*\).*/\1/p")
    [ -n "$value" ] || { echo "ci/bench.sh: no figures from nsconform vm $*" >&2; exit 1; }
    if [ -z "$best" ] || awk -v a="$value" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$value; fi
  done
  echo "$best"
}
printf '%-28s %12s %12s %8s\n' kernel "bare boot" "round trip" ratio
"$bin" kernels list 2>/dev/null | awk 'NR > 1 { print $1 }' | while read -r kernel; do
  # The first run builds the cached initramfs base; it is not counted.
  "$bin" vm --kernel "$kernel" --boot-only --filter uts/hostname-isolated >/dev/null 2>&1 || true
  boot=$(vm_best qemu_s --kernel "$kernel" --boot-only --filter uts/hostname-isolated)
  trip=$(vm_best total_s --kernel "$kernel" --filter uts/hostname-isolated)
  printf '%-28s %10s s %10s s %8s\n' "$kernel" "$boot" "$trip" "$(ratio "$trip" "$boot")"
done
