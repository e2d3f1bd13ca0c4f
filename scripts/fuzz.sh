#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fuzzes the .llmp front end (loader, parser, Sema, plan) under ASan + UBSan.
#
#   scripts/fuzz.sh [SECONDS] [libFuzzer flags...]     (default 1800 s)
#
# Configures (once) a separate build in build-fuzz/ (RelWithDebInfo, override with
# LLMP_FUZZ_BUILD_DIR), builds only the LangFuzzer target and runs it on one core, niced,
# via test/lang/fuzz/run-fuzzer.sh. The grown corpus and any crash/timeout/leak/OOM input
# stay in build-fuzz/fuzz-run/; docs/testing.md says what to do with a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1800}
(($# > 0)) && shift
BUILD=${LLMP_FUZZ_BUILD_DIR:-build-fuzz}
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -G Ninja -S . -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 -DLLVM_USE_LINKER=lld \
    -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DLLMP_FUZZ=ON
fi
ninja -C "$BUILD" -j"${LLMP_JOBS:-2}" LangFuzzer
exec nice -n 10 test/lang/fuzz/run-fuzzer.sh "$BUILD/bin/LangFuzzer" "$seconds" \
  "$BUILD/fuzz-run" "$@"
