#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs Python in the environment of the reference tests (made by `scripts/setup.sh --tests`).
venv=${LLMP_VENV:-$HOME/.cache/llmp/venv}
if [[ ! -x "$venv/bin/python" ]]; then
  echo "python.sh: no Python environment at $venv; run scripts/setup.sh --tests" >&2
  exit 1
fi
exec "$venv/bin/python" "$@"
