#!/usr/bin/env bash
# Install cargo-nextest (used to shard the suite with `cargo nextest run --partition`) unless
# `cargo nextest` already works: the prebuilt binary from get.nexte.st into $CARGO_HOME/bin,
# or, where that cannot be downloaded, `cargo install --locked cargo-nextest` (slow).
# Usage: bash ci/install-nextest.sh     NEXTEST_VERSION=0.9.x pins a version (default latest).
set -euo pipefail

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest --version
  exit 0
fi
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$bin"
version=${NEXTEST_VERSION:-latest}
if curl --proto '=https' --tlsv1.2 -fsSL "https://get.nexte.st/$version/linux" | tar -xzf - -C "$bin"; then
  echo "installed the prebuilt cargo-nextest ($version)"
else
  echo "no prebuilt cargo-nextest; building it"
  if [ "$version" = latest ]; then
    cargo install --locked cargo-nextest
  else
    cargo install --locked cargo-nextest --version "$version"
  fi
fi
cargo nextest --version
