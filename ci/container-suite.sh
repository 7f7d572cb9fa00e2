#!/usr/bin/env bash
# Inside a CI container (see ci/run-in-container.sh), after ci/distro-deps.sh --build: install
# Rust, build, run the scenarios into results-NAME.json (the record the report compares), then
# the README's test command (`cargo test`: scenario trials with snapshots, the harness's own
# tests). Both always run; the exit status is the first failure's.
#
# Usage: bash ci/container-suite.sh NAME   (as root, from the checkout)
# A scenario whose tool this distribution lacks is skipped by the harness with the reason,
# which does not fail the run. The files written here are handed back to HOST_UID:HOST_GID
# (the CI user outside) so that the artifact upload and the cache can read them.
set -uo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: $0 NAME}
results="results-$name.json"

# shellcheck disable=SC2317  # called by the EXIT trap
hand_back() {
  if [ -n "${HOST_UID:-}" ]; then
    chown -R "$HOST_UID:${HOST_GID:-$HOST_UID}" "$results" "${CARGO_TARGET_DIR:-target}" \
      "${CARGO_HOME:-$HOME/.cargo}/registry" 2>/dev/null || true
  fi
}
trap hand_back EXIT

set -e
cargo=$(sh ci/install-rust.sh | tail -n1)
PATH="$(dirname "$cargo"):$PATH"
export PATH
grep -E '^(PRETTY_NAME|VERSION_ID)=' /etc/os-release || true
uname -a
echo "libc: $(ldd --version 2>&1 | head -n1)"
cargo --version
cargo build --locked --bins --tests
set +e

bin="${CARGO_TARGET_DIR:-target}/debug/nsconform"
status=0
"$bin" features || true
"$bin" run --results "$results" scenarios || status=$?
echo "nsconform run: exit $status; results in $results"
cargo test --locked --no-fail-fast
test_status=$?
echo "cargo test: exit $test_status"
[ "$status" -ne 0 ] || status=$test_status
exit "$status"
