// SPDX-License-Identifier: Apache-2.0
/// Memref descriptors laid out exactly as MLIR's LLVM lowering passes them to functions
/// marked `llvm.emit_c_interface` (`_mlir_ciface_<name>(Desc *...)`), so the runtime can call
/// compiled step functions without depending on MLIR. Same layout as
/// mlir/ExecutionEngine/CRunnerUtils.h `StridedMemRefType<T, N>`.
#pragma once

#include <cstdint>

namespace lrt {

/// A strided view of `N`-dimensional data of element type `T`.
/// Element (i0, ..., iN-1) is at `aligned[offset + sum_k i_k * strides[k]]`.
template <typename T, int N>
struct MemRef {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t sizes[N];
  int64_t strides[N];
};

/// Rank-0 specialisation (a scalar held in memory).
template <typename T>
struct MemRef<T, 0> {
  T *allocated;
  T *aligned;
  int64_t offset;
};

/// Wraps a contiguous row-major buffer of shape `sizes` as a descriptor (no copy).
template <typename T, int N>
MemRef<T, N> viewOf(T *data, const int64_t (&sizes)[N]) {
  MemRef<T, N> m{data, data, 0, {}, {}};
  int64_t stride = 1;
  for (int k = N - 1; k >= 0; --k) {
    m.sizes[k] = sizes[k];
    m.strides[k] = stride;
    stride *= sizes[k];
  }
  return m;
}

} // namespace lrt
