#!/bin/sh
# Summarise a phase log (NSCONFORM_PHASE_LOG, see harness/src/phase_log.rs): the median time
# of each step of a scenario's critical path, from the runner letting it run to the runner
# reading its report, over the scenarios of the run.
#
# Scenarios overlap in a run (the next one's supervisor warms up while one runs, and the
# previous one's cleanup goes on after its report), so the log's lines interleave. For each
# scenario, from its first phase, the first line of each phase below after the previous one
# is taken: the chain of one step. A scenario whose chain is incomplete (e.g. one step with
# no command, or a second actor) is left out; the count says how many were kept.
#
# Three chains: a scenario given out in its turn (the first of a thread's, or one not checked
# ready before the run), and one given out ahead of its turn (held: its orchestrator loaded
# it and set up its first actor while the scenario before ran), from the runner's go or from
# the end of the turn before (harness/src/turns.rs); whichever came first starts it, so each
# of those two chains counts the scenarios it started (a go chain that came after the step's
# request, or that a turn overtook before it, is left out). Then the hand-over: from the steps of
# one scenario done to the next one's orchestrator going on.
#
# Usage: ci/phases.sh LOG   (write LOG outside /tmp: the stand-in host has its own /tmp)
set -eu
# From the step's request on, both chains are the same.
from_request='agent: request received
agent: command started
agent: command ended
agent: reply sent
orchestrator: steps done
supervisor: events ended
supervisor: report ready
runner: report read'
in_turn="runner: scenario started
supervisor: scenario received
orchestrator: told
orchestrator: scenario loaded
orchestrator: host finished
orchestrator: plan to the spare
spare: plan received
actor: ready
$from_request"
held="runner: held scenario let run
supervisor: go received
$from_request"
by_turn="orchestrator: turn came
$from_request"

summarise() {
  sort -n -k1,1 "$2" |
    awk -v chain="$1" -v breaks="${3:-}" '
      BEGIN { n = split(chain, phase, "\n") }
      function emit(   i) { if (k == n) for (i = 2; i <= n; i++) printf "%02d\t%s -> %s\t%d\n", i, phase[i-1], phase[i], t[i] - t[i-1] }
      { at = $1; $1 = ""; $2 = ""; name = $0; sub(/^ +/, "", name); sub(/ +$/, "", name)
        if (k > 0 && k < 3 && index("|" breaks "|", "|" name "|")) { k = 0; next }
        if (name == phase[1]) { emit(); k = 1; t[1] = at; next }
        if (k > 0 && k < n && name == phase[k+1]) { k++; t[k] = at } }
      END { emit() }' |
    sort -t "$(printf '\t')" -k1,1 -k3,3n |
    awk -F '\t' '
      function flush() { if (c) { m = v[int((c + 1) / 2)]; total += m; printf "  %-70s %6d us  (%d)\n", key, m, c } }
      $1 != id { flush(); id = $1; key = $2; c = 0 }
      { v[++c] = $3 }
      END { if (id != "") { flush(); printf "  %-70s %6d us\n", "sum of the medians", total } }'
}

echo "given out in their turn:"
summarise "$in_turn" "$1"
echo "given out ahead of their turn (held), from the go:"
summarise "$held" "$1" "orchestrator: turn came|agent: command started|agent: command ended|orchestrator: steps done"
echo "given out ahead of their turn (held), from the end of the turn before:"
summarise "$by_turn" "$1"
echo "hand-over:"
sort -n -k1,1 "$1" |
  awk '{ at = $1; $1 = ""; $2 = ""; name = $0; sub(/^ +/, "", name); sub(/ +$/, "", name) }
       name == "orchestrator: steps done" { done = at }
       name == "orchestrator: turn came" && done { print at - done; done = 0 }' |
  sort -n | awk '{ v[++c] = $1 } END { if (c) printf "  %-70s %6d us  (%d)\n", "orchestrator: steps done -> next orchestrator: turn came", v[int((c + 1) / 2)], c }'
