#!/usr/bin/env bash
# Prepare a throw-away CI virtual machine (a GitHub-hosted Ubuntu runner) for the suite: the
# scenario tools (ci/install-deps.sh), and kernel settings that are distribution policy rather
# than kernel behaviour, so that the suite sees the kernel's own semantics:
#   - Ubuntu 23.10+ restricts unprivileged user namespaces with AppArmor
#     (kernel.apparmor_restrict_unprivileged_userns=1): an unprivileged actor's new user
#     namespace gets no capabilities. Turned off here. It is host-wide, so it matters for the
#     containers of the `distros` job too (they share this kernel).
#   - Debian kernels before 6.x may have kernel.unprivileged_userns_clone=0. Turned on.
#   - with --vm: QEMU and the Debian archive keyring installed (`nsconform kernels fetch`
#     verifies Debian's signed package indexes with it, also on Ubuntu), and /dev/kvm opened
#     to every user (for `nsconform vm`).
# Changes sysctls of the machine it runs on: meant for CI machines, not for a workstation.
#
# Usage: sudo bash ci/host-prep.sh [--vm]
set -euo pipefail
cd "$(dirname "$0")/.."

vm=no
case "${1:-}" in
  --vm) vm=yes ;;
  "") ;;
  *) echo "usage: $0 [--vm]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: must run as root" >&2
  exit 2
fi

bash ci/install-deps.sh

set_sysctl() {
  local key=$1 value=$2 file
  file="/proc/sys/${key//.//}"
  if [ -w "$file" ] && [ "$(cat "$file")" != "$value" ]; then
    echo "$value" >"$file"
    echo "set $key=$value"
  fi
}
set_sysctl kernel.apparmor_restrict_unprivileged_userns 0
set_sysctl kernel.unprivileged_userns_clone 1

if [ "$vm" = yes ]; then
  vm_packages=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 || vm_packages+=(qemu-system-x86)
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || vm_packages+=(debian-archive-keyring)
  if [ "${#vm_packages[@]}" -gt 0 ]; then
    echo "installing ${vm_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${vm_packages[@]}" >/dev/null
  fi
  qemu-system-x86_64 --version | sed -n 1p
  if [ -e /dev/kvm ]; then
    echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' \
      >/etc/udev/rules.d/99-nsconform-kvm.rules
    udevadm control --reload-rules || true
    udevadm trigger --name-match=kvm || true
    chmod 0666 /dev/kvm
    echo "/dev/kvm is usable: $(ls -l /dev/kvm)"
  else
    echo "no /dev/kvm here: QEMU will emulate (much slower)"
  fi
fi

echo "kernel: $(uname -r)"
echo "cgroup: $(grep -E '^0::' /proc/self/cgroup || echo 'no cgroup v2')"
echo "user namespaces allowed: $(cat /proc/sys/user/max_user_namespaces)"
