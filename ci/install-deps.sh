#!/usr/bin/env bash
# Install the Debian packages the scenarios run (idempotent: installs only what is missing).
# Used by .ci/run; safe to run by hand on a Debian or Ubuntu machine as root.
set -euo pipefail

packages=(
  iproute2      # ip: links, addresses, ip netns
  util-linux    # unshare, nsenter, lsns, mount, umount, findmnt
  procps        # ps
  iputils-ping  # ping across veth pairs
  hostname      # hostname, domainname
  coreutils
  qemu-system-x86  # nsconform vm: boots other kernels (TCG when KVM is unusable)
  bubblewrap    # bwrap: tool scenarios (scenarios/tools/bubblewrap)
  crun          # OCI runtime: tool scenarios (scenarios/tools/crun)
  runc          # OCI runtime: tool scenarios (scenarios/tools/runc)
  busybox-static  # the userland of the busybox rootfs (nsconform rootfs build busybox)
  debootstrap   # nsconform rootfs build debian-bookworm|debian-trixie
  systemd-container  # systemd-nspawn: tool scenarios, skipped where it cannot run
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all scenario tools are installed"
fi
