// SPDX-License-Identifier: Apache-2.0
/// Fused NF4 dequantization + GEMM: per thread, dequantize a panel of W into a scratch
/// buffer (dequantizeNf4Range), then one sgemm (the single-threaded path of
/// `_mlir_ciface_lrt_matmul_f32`) with that panel.
#include "kernels/cpu/Nf4Matmul.h"

#include "kernels/cpu/Matmul.h"
#include "kernels/cpu/Quant.h"

#include <algorithm>
#include <omp.h>
#include <vector>

namespace {

using lrt::MemRef;

/// Scratch floats per panel: 256 KiB. Smaller panels mean more sgemm calls with a short
/// contraction, each re-reading and re-writing C: at M = 1024, K = 576, N = 1536 on 2
/// threads (loaded machine) 64 KiB panels took 112 ms, 256 KiB 48 ms, 1 MiB 66 ms, against
/// 44 ms for sgemm on the dequantized fp32 weight.
constexpr int64_t kPanelFloats = 65536;

/// Below this many multiply-adds the product runs on the calling thread (as Matmul.cpp).
constexpr int64_t kMinParallelMacs = 64 * 64 * 64;

/// The sub-view of a 2-D memref: rows [r0, r1), columns [c0, c1).
MemRef<float, 2> sub(const MemRef<float, 2> &m, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  MemRef<float, 2> s = m;
  s.offset = m.offset + r0 * m.strides[0] + c0 * m.strides[1];
  s.sizes[0] = r1 - r0;
  s.sizes[1] = c1 - c0;
  return s;
}

/// One thread's share. tb = 0: C[:, j0:j1] += X W[:, j0:j1], panels of rows of W restricted
/// to columns j0..j1. tb = 1: C[:, j0:j1] += X W[j0:j1, :]^T, panels of whole rows j0..j1.
void part(bool tb, int64_t rows, int64_t cols, const lrt::quant::Nf4Layout &l, const uint8_t *blob,
          const MemRef<float, 2> &x, const MemRef<float, 2> &c, int64_t j0, int64_t j1) {
  if (j0 >= j1)
    return;
  thread_local std::vector<float> scratch;
  int64_t m = c.sizes[0];
  if (!tb) {
    int64_t width = j1 - j0, step = std::max<int64_t>(1, kPanelFloats / width);
    scratch.resize(static_cast<size_t>(std::min(step, rows) * width));
    for (int64_t k0 = 0; k0 < rows; k0 += step) {
      int64_t k1 = std::min(rows, k0 + step);
      for (int64_t k = k0; k < k1; ++k)
        lrt::quant::dequantizeNf4Range(blob, l, k * cols + j0, k * cols + j1,
                                       scratch.data() + (k - k0) * width);
      MemRef<float, 2> a = sub(x, 0, m, k0, k1), cc = sub(c, 0, m, j0, j1);
      MemRef<float, 2> p = lrt::viewOf(scratch.data(), {k1 - k0, width});
      _mlir_ciface_lrt_matmul_f32(0, 0, /*accumulate=*/1, &a, &p, &cc);
    }
    return;
  }
  int64_t step = std::max<int64_t>(1, kPanelFloats / std::max<int64_t>(1, cols));
  scratch.resize(static_cast<size_t>(std::min(step, j1 - j0) * cols));
  for (int64_t r0 = j0; r0 < j1; r0 += step) {
    int64_t r1 = std::min(j1, r0 + step);
    lrt::quant::dequantizeNf4Range(blob, l, r0 * cols, r1 * cols, scratch.data());
    MemRef<float, 2> cc = sub(c, 0, m, r0, r1);
    MemRef<float, 2> p = lrt::viewOf(scratch.data(), {r1 - r0, cols});
    MemRef<float, 2> a = x;
    _mlir_ciface_lrt_matmul_f32(0, 1, /*accumulate=*/1, &a, &p, &cc);
  }
}

} // namespace

extern "C" void _mlir_ciface_lrt_matmul_nf4_f32(int32_t tb, int64_t rows, int64_t cols, int64_t block,
                                                int32_t doubleQuant, lrt::MemRef<float, 2> *x,
                                                lrt::MemRef<int8_t, 1> *w, lrt::MemRef<float, 2> *c) {
  lrt::quant::Nf4Layout l = lrt::quant::nf4Layout(rows * cols, block, doubleQuant != 0);
  const auto *blob = reinterpret_cast<const uint8_t *>(w->aligned + w->offset);
  int64_t m = c->sizes[0], n = c->sizes[1], k = tb ? cols : rows;
  if (m == 0 || n == 0)
    return;
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  int64_t blocks = (n + 15) / 16;
  threads = static_cast<int>(std::min<int64_t>(threads, blocks));
  if (threads <= 1 || m * n * k < kMinParallelMacs) {
    part(tb != 0, rows, cols, l, blob, *x, *c, 0, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t lo = std::min(n, blocks * t / nt * 16), hi = std::min(n, blocks * (t + 1) / nt * 16);
    part(tb != 0, rows, cols, l, blob, *x, *c, lo, hi);
  }
}
