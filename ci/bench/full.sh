#!/bin/sh
# full.toml by hand, $1 times in this shell: the experiment in new namespaces ($ENTER:
# `unshare -Uurnmipf --mount-proc`, or the floor), and a check of what it printed, as the
# scenario checks it.
nl='
'
: "${ENTER:?set ENTER to what makes the namespaces (e.g. 'unshare -Uurnmipf --mount-proc'): without it the experiment would run on the machine itself}"
i=0
while [ "$i" -lt "$1" ]; do
  # shellcheck disable=SC2086 # $ENTER is a command line
  out=$($ENTER sh -c 'hostname x; hostname; ip -br link; cat /proc/self/uid_map') || exit 1
  case "$out" in
    x"$nl"lo*DOWN*"$nl"*0*0*1) ;;
    *) echo "full: printed $out" >&2; exit 1 ;;
  esac
  i=$((i + 1))
done
