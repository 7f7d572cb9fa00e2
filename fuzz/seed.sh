#!/usr/bin/env bash
# Build the seed corpus of the `scenario` fuzz target from the repository's own files:
# every scenario (scenarios/**/*.toml) and every malformed fixture (fixtures/invalid/*.toml),
# copied into fuzz/corpus/scenario/ (git-ignored). Names keep the directory, so
# scenarios/uts/a.toml becomes scenarios__uts__a.toml. Safe to re-run: files the fuzzer
# added to the corpus are kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
out="$here/corpus/scenario"
mkdir -p "$out"
cd "$repo"
count=0
while IFS= read -r -d '' file; do
    cp "$file" "$out/$(printf '%s' "$file" | sed 's|/|__|g')"
    count=$((count + 1))
done < <(find scenarios fixtures/invalid -name '*.toml' -type f -print0 | sort -z)
echo "seeded $count files into ${out#"$repo"/}"
