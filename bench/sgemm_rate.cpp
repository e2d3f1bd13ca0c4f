// SPDX-License-Identifier: Apache-2.0
/// Measures the GEMM rate that compiled llmp code gets, the denominator of llmp's MFU.
/// Prints one JSON object:
///   {"n": N, "threads": T, "precision": "fp32"|"bf16", "gflops": G}
/// Usage: sgemm_rate [N=1024] [repeats=10] [fp32|bf16].
///   fp32: OpenBLAS cblas_sgemm with OpenBLAS's threads (OPENBLAS_NUM_THREADS or all cores).
///   bf16: kernels/cpu's `_mlir_ciface_lrt_matmul_bf16` (fp32 operands rounded to bf16 by
///         oneDNN, fp32 accumulation; the call `precision: bf16` code makes), on the OpenMP
///         threads (OMP_NUM_THREADS); its rate includes the two operand conversions.
#include "kernels/cpu/MatmulBf16.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char **argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1024;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 10;
  const bool bf16 = argc > 3 && std::strcmp(argv[3], "bf16") == 0;
  if (n <= 0 || repeats <= 0 || (argc > 3 && !bf16 && std::strcmp(argv[3], "fp32") != 0)) {
    std::fprintf(stderr, "sgemm_rate: expected positive N and repeats, and fp32 or bf16\n");
    return 1;
  }
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  auto av = lrt::viewOf(a.data(), {n, n}), bv = lrt::viewOf(b.data(), {n, n}),
       cv = lrt::viewOf(c.data(), {n, n});
  auto gemm = [&] {
    if (bf16)
      _mlir_ciface_lrt_matmul_bf16(0, 0, /*accumulate=*/0, &av, &bv, &cv);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                  b.data(), n, 0.0f, c.data(), n);
  };
  gemm(); // warm-up: thread pool start, page faults, oneDNN's primitives
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    gemm();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (bf16 && !lrt_matmul_bf16_native())
    std::fprintf(stderr, "sgemm_rate: this CPU has no bf16 dot products: the bf16 rate is fp32's\n");
  std::printf("{\"n\": %d, \"threads\": %d, \"precision\": \"%s\", \"gflops\": %.1f}\n", n,
              bf16 ? omp_get_max_threads() : openblas_get_num_threads(), bf16 ? "bf16" : "fp32",
              2.0 * n * n * double(n) / best / 1e9);
  return 0;
}
