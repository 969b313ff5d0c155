#!/usr/bin/env bash
# Installs what the tests need (into .venv) and runs them. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh "[test]"
# The browser tests drive Debian's chromium with Playwright (never `playwright install`).
if [ ! -x /usr/bin/chromium ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
exec .venv/bin/python -m pytest "$@"
