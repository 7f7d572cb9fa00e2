#!/bin/sh
# Install the userland the scenarios run, with the distribution's own package manager (apt-get,
# dnf or apk), and with --build also what building nsconform needs (a C linker, libc headers,
# curl for rustup, bash for the other ci/ scripts). Idempotent: installs only what is missing.
#
# Usage (as root, in a Debian, Ubuntu, Fedora or Alpine container):
#   sh ci/distro-deps.sh [--build]
#
# POSIX sh on purpose: it runs before bash exists (Alpine has only busybox ash).
# Packages that a distribution does not have are reported and left out; the scenarios that
# need them are then skipped by the harness with the reason ("`domainname` not found on PATH"),
# they do not fail. Known differences:
#   - Alpine (musl): no `hostname` package, so `hostname` is busybox's and there is no
#     `domainname`; iproute2, util-linux, procps-ng and iputils replace busybox's `ip`,
#     `mount`, `unshare`, `nsenter`, `ps`, `sysctl` and `ping` (busybox's versions print
#     differently and lack options the scenarios use).
#   - Fedora: `perl-interpreter` has no IPC::SysV, so `perl-IPC-SysV` is added.
set -eu

build=no
case "${1:-}" in
  --build) build=yes ;;
  "") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: must run as root" >&2
  exit 2
fi

# `required` must all install; each `optional` item is tried on its own, and `a|b` means the
# first of a and b that installs.
if command -v apt-get >/dev/null 2>&1; then
  manager=apt
  required="iproute2 util-linux mount procps iputils-ping hostname perl grep coreutils"
  optional=""
  build_packages="bash ca-certificates curl gcc libc6-dev"
elif command -v dnf >/dev/null 2>&1; then
  manager=dnf
  required="iproute util-linux procps-ng iputils hostname perl-interpreter perl-IPC-SysV grep findutils coreutils"
  optional=""
  build_packages="bash ca-certificates gcc glibc-devel"
  # Fedora images ship curl-minimal, which conflicts with the full curl package.
  command -v curl >/dev/null 2>&1 || build_packages="$build_packages curl"
elif command -v apk >/dev/null 2>&1; then
  manager=apk
  required="iproute2 util-linux iputils perl grep coreutils findutils"
  # procps-ng is the package's name since Alpine 3.18, procps before; util-linux-misc (unshare,
  # nsenter, lsns) is pulled in by util-linux on current releases, asked for in case it is not.
  optional="procps-ng|procps util-linux-misc"
  build_packages="bash ca-certificates curl gcc musl-dev"
else
  echo "$0: no apt-get, dnf or apk here; install by hand: ip, unshare, nsenter, lsns, mount," \
    "findmnt, ipcs, ps, pgrep, sysctl, ping, hostname, domainname, perl" >&2
  exit 2
fi
if [ "$build" = yes ]; then
  required="$required $build_packages"
fi

is_installed() {
  case "$manager" in
    apt) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" ;;
    dnf) rpm -q "$1" >/dev/null 2>&1 ;;
    apk) apk info -e "$1" >/dev/null 2>&1 ;;
  esac
}

apt_updated=no
pkg_install() {
  case "$manager" in
    apt)
      export DEBIAN_FRONTEND=noninteractive
      if [ "$apt_updated" = no ]; then
        apt-get update -qq
        apt_updated=yes
      fi
      apt-get install -y -qq --no-install-recommends "$@"
      ;;
    dnf) dnf install -y -q --setopt=install_weak_deps=False "$@" ;;
    apk) apk add --no-cache -q "$@" ;;
  esac
}

missing=""
for package in $required; do
  is_installed "$package" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  echo "installing ($manager):$missing"
  # shellcheck disable=SC2086  # word splitting wanted: a list of package names
  pkg_install $missing
else
  echo "all required packages are installed ($manager)"
fi

for choice in $optional; do
  done_choice=no
  for package in $(echo "$choice" | tr '|' ' '); do
    if is_installed "$package"; then
      done_choice=yes
      break
    fi
    if pkg_install "$package" >/dev/null 2>&1; then
      echo "installed optional package $package"
      done_choice=yes
      break
    fi
  done
  [ "$done_choice" = yes ] || echo "optional package $choice is not available here; left out"
done

# What the scenarios will find on PATH: a missing one makes its scenarios skip, a busybox one
# may make them fail on a different output format.
echo "scenario tools:"
for tool in ip unshare nsenter lsns mount umount findmnt ipcs ipcmk ipcrm ps pgrep sysctl \
  ping hostname domainname perl grep; do
  path=$(command -v "$tool" 2>/dev/null || true)
  if [ -z "$path" ]; then
    echo "  $tool: not found (its scenarios will be skipped)"
  elif [ -L "$path" ] && [ "$(readlink -f "$path")" = "$(readlink -f /bin/busybox 2>/dev/null)" ]; then
    echo "  $tool: $path (busybox)"
  else
    echo "  $tool: $path"
  fi
done
