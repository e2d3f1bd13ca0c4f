#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up (including the Python references), builds everything and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
scripts/build.sh
cd "${LLMP_BUILD_DIR:-build}"
ctest --output-on-failure -j1
