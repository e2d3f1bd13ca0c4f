// SPDX-License-Identifier: Apache-2.0
/// `memrefCopy`, the function that MLIR's memref-to-LLVM lowering calls for a memref.copy
/// between views that are not both contiguous (e.g. the KV cache slices of decode_step on
/// SmolLM2). The JIT resolves it from MLIR's libmlir_c_runner_utils (compiler/Target/CPU/
/// JIT.cpp); a trainer binary of `llmpc build` has no MLIR library, so library llmp_aot
/// defines it for the objects llmpc links (the link pulls it from the archive when a
/// stage's object calls it). A copy moves the same bytes either way, so the binary's
/// results stay the JIT's bit for bit.
#pragma once

#include <cstdint>

extern "C" {

/// A memref of any rank as MLIR passes it to C: its rank and a pointer to the ranked
/// descriptor {T *allocated, T *aligned, int64_t offset, int64_t sizes[rank],
/// int64_t strides[rank]} (offset and strides in elements).
struct LrtUnrankedMemRef {
  int64_t rank;
  void *descriptor;
};

/// Copies every element of `src` to the same index of `dst` (equal ranks and sizes, any
/// strides, `elemSize` bytes per element); nothing when a size is 0. The views must not
/// overlap (memref.copy's contract). The ABI of MLIR's `memrefCopy` (mlir/ExecutionEngine/
/// CRunnerUtils.h).
void memrefCopy(int64_t elemSize, LrtUnrankedMemRef *src, LrtUnrankedMemRef *dst);
}
