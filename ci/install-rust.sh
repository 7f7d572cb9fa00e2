#!/bin/sh
# Make a Rust toolchain at least as new as the workspace's `rust-version` available: keep the
# one on PATH (or in ~/.cargo/bin) when it is new enough, otherwise install stable with rustup
# (the distribution's rustup-init or the official installer script; on Alpine it installs the
# musl toolchain). Idempotent. Prints the `cargo` to use on its last line, so callers can do
#   cargo=$(sh ci/install-rust.sh | tail -n1)
# Usage: sh ci/install-rust.sh   (needs curl and a C compiler: see ci/distro-deps.sh --build)
# POSIX sh, like ci/distro-deps.sh, so that it runs in any of the CI containers.
set -eu
cd "$(dirname "$0")/.."

needed=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
needed=${needed:-1.0}
PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export PATH

# new_enough "rustc 1.82.0 (f6e511eec 2024-10-15)" -> status 0 when >= $needed
new_enough() {
  have=$(echo "$1" | sed -n 's/^rustc \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  [ -n "$have" ] || return 1
  have_major=${have%%.*}; have_minor=${have#*.}
  need_major=${needed%%.*}; need_minor=${needed#*.}; need_minor=${need_minor%%.*}
  [ "$have_major" -gt "$need_major" ] ||
    { [ "$have_major" -eq "$need_major" ] && [ "$have_minor" -ge "$need_minor" ]; }
}

current=$(rustc --version 2>/dev/null || true)
if command -v cargo >/dev/null 2>&1 && new_enough "$current"; then
  echo "using $current (rust-version $needed)" >&2
else
  echo "installing Rust stable with rustup (found: ${current:-none}; rust-version $needed)" >&2
  if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install stable --profile minimal >&2
    rustup default stable >&2
  elif command -v rustup-init >/dev/null 2>&1; then
    rustup-init -y --profile minimal --default-toolchain stable >&2
  else
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y --profile minimal --default-toolchain stable >&2
  fi
  echo "installed $(rustc --version)" >&2
fi
command -v cargo
