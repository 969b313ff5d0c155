#!/usr/bin/env bash
# Sets everything up, then `lookalike demo`: writes the Twemoji sample into the user data
# folder, indexes it (a second run only checks it), prints the look-alikes of one emoji and
# serves the web viewer, opening it in the browser, until Ctrl-C. Arguments go to
# `lookalike demo` (e.g. --no-serve, --port 8080, --dataset fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")"
bash setup.sh
exec .venv/bin/lookalike demo "$@"
