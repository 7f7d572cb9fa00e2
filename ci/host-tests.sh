#!/usr/bin/env bash
# The `host` job: run one shard of the test suite on this machine with cargo-nextest, the test
# binaries as root, and, on the last shard, the doc tests and the scenarios into
# results-host.json.
#
# Usage: bash ci/host-tests.sh [K/N]     (default 1/1: everything)
# Run as a user with sudo (cargo and its caches stay the user's; only the test binaries and
# `nsconform run` run as root, through a cargo target runner `sudo -E`), or as root.
#
# Sharding: `--partition count:K/N` deals the tests of each test binary out round-robin, so
# the two long meta tests of suite_properties (one scenario rewrite per expected value, one
# per namespace) land on different shards; the first gets the longer one, so the extra work
# goes to the last. The whole suite is about a minute on two cores and every shard pays for
# its own build, so N=2 is the useful maximum for now; raise it (and the workflow's matrix)
# when the scenario count grows.
set -euo pipefail
cd "$(dirname "$0")/.."

partition=${1:-1/1}
case "$partition" in
  [0-9]*/[0-9]*) ;;
  *) echo "usage: $0 [K/N]" >&2; exit 2 ;;
esac

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo -E)
  triple=$(rustc -vV | sed -n 's/^host: //p')
  runner_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUNNER"
  export "$runner_var=sudo -E"
  echo "test binaries run as root through $runner_var='sudo -E'"
fi

cargo build --locked --bins --tests
status=0
cargo nextest run --locked --no-fail-fast --partition "count:$partition" || status=$?

if [ "${partition%%/*}" = "${partition##*/}" ]; then
  # Doc tests (nextest does not run them) and the results file, once per run.
  doc_status=0
  cargo test --locked --doc || doc_status=$?
  [ "$status" -ne 0 ] || status=$doc_status
  bin="${CARGO_TARGET_DIR:-target}/debug/nsconform"
  run_status=0
  "${sudo[@]}" "$bin" run --results results-host.json scenarios || run_status=$?
  echo "nsconform run: exit $run_status; results in results-host.json"
  [ "$status" -ne 0 ] || status=$run_status
fi
exit "$status"
