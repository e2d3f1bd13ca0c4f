#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# CMake's CXX_LINKER_LAUNCHER for llmp-aot-trainer (runtime/aot/CMakeLists.txt): writes the
# working directory and then the link command, one argument per line, to $1 and runs the
# command. `llmpc build` replays it with a stage's objects (compiler/Target/CPU/Link.h).
out=$1
shift
{ pwd; for arg in "$@"; do printf '%s\n' "$arg"; done; } > "$out.tmp" && mv "$out.tmp" "$out" || exit 1
exec "$@"
