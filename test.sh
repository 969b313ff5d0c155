#!/usr/bin/env bash
# Installs what the tests need (into .venv, and Debian packages), checks the code with ruff and
# mypy (seconds; configured in pyproject.toml), then runs the tests. Arguments go to pytest; a
# first argument --fast leaves out the tests marked slow, browser and load (about a minute on 2
# cores instead of several; the markers are listed in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh "[test]"
# Debian packages: chromium, which the browser tests drive with Playwright (never `playwright
# install`), and the Fashion-MNIST files that the sample-set tests write out.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
.venv/bin/ruff check src tests benchmarks tools
.venv/bin/mypy
if [ "${1:-}" = "--fast" ]; then
    shift
    set -- -m "not slow and not browser and not load" "$@"
fi
exec .venv/bin/python -m pytest "$@"
