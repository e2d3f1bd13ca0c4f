#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up, builds, and runs the main example: pretraining a small Llama-style model on the
# King James Bible. Output goes to runs/main/pretrain/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh llmpc
exec build/bin/llmpc run examples/pretrain.llmp "$@"
