#!/usr/bin/env bash
# The `report` job: compare every results file of the workflow run with `nsconform report`
# and write the comparison as Markdown to the job summary and as one HTML page.
#
# Usage: bash ci/report.sh DIR [OUT.html]
#   DIR       where the results-*.json artifacts were downloaded
#   OUT.html  the HTML report (default: nsconform-report.html)
# Columns are named after the files (results-debian-12.json -> debian-12); the first column,
# the baseline of every diff, is `host` (the GitHub runner) when it is there. The Markdown
# goes to $GITHUB_STEP_SUMMARY, or to standard output outside GitHub Actions.
# `nsconform report` exits 1 when the columns differ: that is what the matrix is for, not a
# failure of this job (a failing scenario already failed its own job). Exit 2, bad input, is.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:?usage: $0 DIR [OUT.html]}
html=${2:-nsconform-report.html}
summary=${GITHUB_STEP_SUMMARY:-/dev/stdout}

shopt -s nullglob
files=()
[ -f "$dir/results-host.json" ] && files+=("$dir/results-host.json")
for file in "$dir"/results-*.json; do
  [ "$file" = "$dir/results-host.json" ] || files+=("$file")
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "## nsconform: no results files" >>"$summary"
  echo "No results-*.json in $dir: every job that produces one failed before writing it." >>"$summary"
  exit 1
fi

labels=()
for file in "${files[@]}"; do
  name=$(basename "$file" .json)
  labels+=(--label "${name#results-}=$file")
done

cargo build --locked --bin nsconform
bin="${CARGO_TARGET_DIR:-target}/debug/nsconform"
status=0
report() {
  local code=0
  "$bin" report "${labels[@]}" "$@" "${files[@]}" || code=$?
  case "$code" in
    0) echo "nsconform report $1 $2: no differences" >&2 ;;
    1) echo "nsconform report $1 $2: the columns differ (see the report)" >&2 ;;
    *) status=$code ;;
  esac
}
report --format markdown >>"$summary"
report --format html --output "$html"
if [ "$status" -ne 0 ]; then
  {
    echo
    echo "nsconform report failed (exit $status); compared files:"
    echo
    for file in "${files[@]}"; do echo "- \`$(basename "$file")\`"; done
  } >>"$summary"
fi
exit "$status"
