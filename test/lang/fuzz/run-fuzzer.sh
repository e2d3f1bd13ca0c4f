#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs LangFuzzer for SECONDS on one core with the seed corpus of every .llmp file in the
# repository (test/lang, examples, stdlib) and the .llmp dictionary. WORKDIR keeps the
# grown corpus between runs (WORKDIR/corpus) and any crash, timeout, leak or OOM input
# (WORKDIR/artifacts/). Extra arguments go to libFuzzer. Exits non-zero on a finding.
#
#   run-fuzzer.sh BINARY SECONDS WORKDIR [libFuzzer flags...]
set -euo pipefail
if (($# < 3)); then
  echo "usage: $0 BINARY SECONDS WORKDIR [libFuzzer flags...]" >&2
  exit 2
fi
binary=$1 seconds=$2 workdir=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)

mkdir -p "$workdir/corpus" "$workdir/artifacts"
rm -rf "$workdir/seeds"
mkdir -p "$workdir/seeds"
# Copy rather than point at the folders: libFuzzer reads every file under a corpus folder
# and the test folders hold .cpp and CMake files too.
i=0
while IFS= read -r -d '' f; do
  cp "$f" "$workdir/seeds/$i-$(basename "$f")"
  i=$((i + 1))
done < <(find "$src/test/lang" "$src/examples" "$src/stdlib" -name '*.llmp' -print0)

# -timeout: an input that takes longer is a hang. -rss_limit_mb/-malloc_limit_mb: a
# front end that allocates gigabytes for a small file is a bug. -max_len: real files are
# a few KiB; longer inputs only slow the search.
# ASan options: leaks are findings; libMLIR.so is not instrumented, so skip the ODR check
# of globals it shares with the instrumented lang/ objects.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$binary" "$workdir/corpus" "$workdir/seeds" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
  -max_len=8192 -dict="$here/llmp.dict" -print_final_stats=1 \
  -artifact_prefix="$workdir/artifacts/" "$@"
