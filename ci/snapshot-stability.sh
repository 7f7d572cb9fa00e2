#!/usr/bin/env bash
# Run the scenario suite N times in a row (default 20) in CI mode and check that every run
# passes and that no snapshot changes: observations must be deterministic.
# Usage: ci/snapshot-stability.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"

cargo build --quiet --tests
before=$(git status --porcelain -- snapshots)
for i in $(seq 1 "$runs"); do
  if ! CI=true cargo test --quiet --test scenarios >/tmp/nsconform-stability.log 2>&1; then
    echo "run $i of $runs failed:"
    tail -40 /tmp/nsconform-stability.log
    exit 1
  fi
  pending=$(find snapshots -name '*.snap.new' | head -5)
  if [ -n "$pending" ]; then
    echo "run $i of $runs left pending snapshots: $pending"
    exit 1
  fi
done
after=$(git status --porcelain -- snapshots)
if [ "$before" != "$after" ]; then
  echo "snapshots changed during the runs:"
  git status --porcelain -- snapshots
  exit 1
fi
echo "$runs runs passed; no snapshot changed"
