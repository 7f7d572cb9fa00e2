#!/usr/bin/env bash
# The `kernels` job: run the suite on another kernel under QEMU. Builds nsconform (release),
# downloads the stock Debian kernel NAME into the cache ($NSCONFORM_CACHE, else
# $XDG_CACHE_HOME/nsconform, else ~/.cache/nsconform) unless it is there already, boots it
# with `nsconform vm` and writes results-kernel-NAME.json.
#
# Usage: bash ci/kernel-vm.sh NAME     NAME: 5.10, 6.1, 6.12, newest, ... (`nsconform kernels`)
# Needs qemu-system-x86 (the workflow installs it) and, to be fast, a usable /dev/kvm
# (sudo bash ci/host-prep.sh --vm). The download runs as the calling user; the VM as root
# (through `sudo -E` when the caller is not root), like every run of the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=${1:?usage: $0 NAME}
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -E)

cargo build --release --locked --bin nsconform
bin="${CARGO_TARGET_DIR:-target}/release/nsconform"

"$bin" kernels fetch "$kernel"
"$bin" kernels list
status=0
"${sudo[@]}" "$bin" vm --kernel "$kernel" --results "results-kernel-$kernel.json" || status=$?
echo "nsconform vm --kernel $kernel: exit $status; results in results-kernel-$kernel.json"
# What the VM run left in the cache as root must stay readable for the CI cache.
cache=${NSCONFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nsconform}
if [ "${#sudo[@]}" -gt 0 ] && [ -d "$cache" ]; then
  sudo chown -R "$(id -u):$(id -g)" "$cache" || true
fi
exit "$status"
