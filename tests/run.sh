#!/usr/bin/env bash
# The test command (README, CI's .ci/run): sets up this machine from nothing, then runs every check CI runs.
#
#   bash tests/run.sh                  # set-up, then lint-imports, ruff, mypy and the whole pytest suite
#   bash tests/run.sh -m "not slow"    # arguments after the set-up go to pytest
#   bash tests/run.sh --setup-only     # the set-up alone: system services and the venv
#
# Set-up: the system services the real-path tests drive (Prometheus, Docker, iptables:
# deploy/system-deps.sh, which needs root and apt), then .venv with the CPU torch and the test extras.
# Every check runs even when one before it failed, so one run shows every failure; the exit code is
# non-zero when any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "tests/run.sh: $*"; }

setup_only=0
if [ "${1:-}" = "--setup-only" ]; then
  setup_only=1
  shift
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "tests/run.sh: error: gossip needs Python 3.11 or newer as python3, found $(python3 --version 2>&1)" >&2
  exit 2
}

# 1. System services. Without root they cannot be installed; the tests that need them fail (never skip).
if ! bash deploy/system-deps.sh; then
  if [ "$(id -u)" = 0 ]; then
    echo "tests/run.sh: error: deploy/system-deps.sh failed (see above)" >&2
    exit 1
  fi
  say "not root: the tests marked prometheus, docker, netns and slurm will fail;" \
    "run as root, or leave them out: bash tests/run.sh -m 'not prometheus and not docker and not netns and not slurm'"
fi

# 2. The venv. torch is pinned on the command line: a newer torch from the public index is a multi-GB CUDA build.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
say "installing gossip and its test extras into .venv (torch==2.13.0, CPU)"
# pip's own failure shows whole; otherwise only its warnings, less one per configured package directory that does not exist
pip_err=$(mktemp)
if ! .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0 -e '.[test]' 2>"$pip_err"; then
  cat "$pip_err" >&2
  rm -f "$pip_err"
  echo "tests/run.sh: error: pip could not install gossip's test environment (see above)" >&2
  exit 1
fi
grep -v "is ignored: it is neither a file nor a directory" "$pip_err" >&2 || true
rm -f "$pip_err"

if [ "$setup_only" = 1 ]; then
  say "set-up done"
  exit 0
fi

# 3. The checks (their settings are in pyproject.toml), then the tests.
failed=()
check() {  # check NAME COMMAND...: run it, remember NAME when it fails
  local name=$1
  shift
  say "$*"
  "$@" || failed+=("$name")
}
check lint-imports .venv/bin/lint-imports
check "ruff check" .venv/bin/ruff check gossip tests bench examples
check "ruff format" .venv/bin/ruff format --check gossip tests bench examples
check mypy .venv/bin/mypy
# Two workers (the machine's two cores): most real-process tests spend their time waiting on rounds, sockets and
# services. Each module runs whole on one worker, and tests/docker/ on one (tests/conftest.py).
# -n 0 after the command runs it in one process.
check pytest .venv/bin/python -m pytest -n 2 --dist loadfile --durations=25 "$@"

if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: $(IFS=,; echo "${failed[*]}")"
  exit 1
fi
say "all checks passed"
