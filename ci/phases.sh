#!/bin/sh
# Summarise a phase log (NSCONFORM_PHASE_LOG, see harness/src/phase_log.rs): for each step
# from one phase of a scenario to the next, the median time over the scenarios of the run.
# The phases a warm supervisor passes before it has a scenario are left out: they are not
# on any scenario's path.
# Usage: ci/phases.sh LOG
set -eu
grep -v -e 'stand-in forked' -e 'base host ready' "$1" |
  awk '{ t = $1; $1 = ""; $2 = ""; sub(/^  /, ""); phase = $0
         if (prev != "") {
           key = prev " -> " phase
           if (!(key in order)) order[key] = ++keys
           printf "%04d\t%s\t%d\n", order[key], key, t - pt
         }
         prev = phase; pt = t }' |
  sort -t "$(printf '\t')" -k1,1 -k3,3n |
  awk -F '\t' '
    function flush() { if (n) printf "  %-62s %7.0f us  (%d)\n", key, v[int((n + 1) / 2)], n }
    $1 != id { flush(); id = $1; key = $2; n = 0 }
    { v[++n] = $3 }
    END { flush() }'
