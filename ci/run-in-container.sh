#!/usr/bin/env bash
# Run the suite in a container of another distribution's userland, on this machine's kernel:
# the checkout is mounted at /src, the container is privileged (namespaces, mounts, netns,
# sysctls and cgroups need every capability and no seccomp/AppArmor filter), and inside it
# ci/distro-deps.sh installs the tools and ci/container-suite.sh builds and runs everything.
# Writes results-NAME.json into the checkout. Exit status: that of ci/container-suite.sh.
#
# Usage: ci/run-in-container.sh IMAGE NAME     e.g. ci/run-in-container.sh alpine:3.20 alpine-3.20
# Environment:
#   NSCONFORM_CGROUPNS   private (default) or host. Private gives the container a cgroup
#                        namespace rooted at its own cgroup, so the harness sees `0::/` and
#                        makes its per-scenario cgroups under /sys/fs/cgroup as on a machine;
#                        host shows the container its real place in the host's hierarchy.
#   CI_CACHE_DIR         directory kept between runs (cargo registry, target dir);
#                        default: $RUNNER_TEMP/nsconform-container or /tmp/nsconform-container.
# Needs docker (or podman with the docker CLI) and the right to run privileged containers.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -ne 2 ]; then
  echo "usage: $0 IMAGE NAME" >&2
  exit 2
fi
image=$1
name=$2
cgroupns=${NSCONFORM_CGROUPNS:-private}
cache=${CI_CACHE_DIR:-${RUNNER_TEMP:-/tmp}/nsconform-container}
mkdir -p "$cache/registry" "$cache/target"

docker pull --quiet "$image"
# --init: a real PID 1 reaps whatever is orphaned in the container (the harness's own
# processes have their own PID namespaces, but `cargo test` and friends do not).
docker run --rm --init --privileged --cgroupns="$cgroupns" \
  --volume "$PWD:/src" --workdir /src \
  --volume "$cache/registry:/root/.cargo/registry" \
  --volume "$cache/target:/target" \
  --env CARGO_TARGET_DIR=/target \
  --env CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}" \
  --env CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}" \
  --env RUST_BACKTRACE="${RUST_BACKTRACE:-1}" \
  --env CI="${CI:-true}" \
  --env HOST_UID="$(id -u)" --env HOST_GID="$(id -g)" \
  "$image" \
  /bin/sh -c 'sh ci/distro-deps.sh --build && exec bash ci/container-suite.sh "$1"' sh "$name"
