#!/bin/sh
# uts.toml by hand, $1 times in this shell: the experiment in new namespaces ($ENTER:
# `unshare --uts`, or the floor), and a check of what it printed, as the scenario checks it.
: "${ENTER:?set ENTER to what makes the namespaces (e.g. 'unshare --uts'): without it the experiment would run on the machine itself}"
i=0
while [ "$i" -lt "$1" ]; do
  # shellcheck disable=SC2086 # $ENTER is a command line
  out=$($ENTER sh -c 'hostname x; hostname') || exit 1
  [ "$out" = x ] || { echo "uts: printed $out" >&2; exit 1; }
  i=$((i + 1))
done
