#!/usr/bin/env bash
# Installs what the tests need (into .venv) and runs them. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh "[test]"
exec .venv/bin/python -m pytest "$@"
