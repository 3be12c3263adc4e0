#!/usr/bin/env bash
# Browser tests: run every lesson notebook in a real JupyterLab in headless Chromium
# (tests/browser/, marked `browser`, so a learner's plain `pytest` never runs them).
#
#   bash .ci/browser.sh                 # from the repository root
#   PYTHON=.venv/bin/python bash .ci/browser.sh
#
# Installs Debian's chromium with apt-get when /usr/bin/chromium is missing (needs root or
# sudo; `playwright install` is not used: it downloads its own browser), installs the
# `browser` extra (playwright) when it is missing, then runs the tests. Screenshots go to
# $DINO_COURSE_ARTIFACTS/browser when that is set, else to a temporary folder the run prints.
# Takes about 2 minutes plus the lessons' own run time (each must finish in 90 s).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    "$PYTHON" -m pip install -e ".[browser]"
fi

PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec timeout 900 "$PYTHON" -m pytest -m browser tests/browser "$@"
