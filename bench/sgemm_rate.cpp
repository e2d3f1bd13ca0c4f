// SPDX-License-Identifier: Apache-2.0
/// Measures the GEMM rate that compiled llmp code gets, the denominator of llmp's MFU.
/// Prints one JSON object:
///   {"n": N, "threads": T, "precision": "fp32"|"bf16", "gflops": G, ...}
/// Usage: sgemm_rate [N=1024] [repeats=10] [fp32|bf16].
///   fp32: the best of OpenBLAS cblas_sgemm (OpenBLAS's threads: OPENBLAS_NUM_THREADS or all
///         cores) and kernels/cpu's `_mlir_ciface_lrt_matmul_f32` (the call compiled code
///         makes: on AMD CPUs with AVX-512 it runs on oneDNN, lrt::matmulF32AllOnDnnl); both
///         are printed too ("openblas_gflops", "llmp_gflops"), G is the larger, so that an
///         MFU against it is against the fastest fp32 GEMM of the machine.
///   bf16: kernels/cpu's `_mlir_ciface_lrt_matmul_bf16` (fp32 operands rounded to bf16 by
///         oneDNN, fp32 accumulation; the call `precision: bf16` code makes), on the OpenMP
///         threads (OMP_NUM_THREADS); its rate includes the two operand conversions.
#include "kernels/cpu/Matmul.h"
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
  // GFLOP/s of the best of `repeats` calls of `gemm` after one warm-up call (thread pool
  // start, page faults, oneDNN's primitives).
  auto rate = [&](auto gemm) {
    gemm();
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      gemm();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * n * n * double(n) / best / 1e9;
  };
  if (bf16) {
    double gflops = rate([&] { _mlir_ciface_lrt_matmul_bf16(0, 0, /*accumulate=*/0, &av, &bv, &cv); });
    if (!lrt_matmul_bf16_native())
      std::fprintf(stderr, "sgemm_rate: this CPU has no bf16 dot products: the bf16 rate is fp32's\n");
    std::printf("{\"n\": %d, \"threads\": %d, \"precision\": \"bf16\", \"gflops\": %.1f}\n", n,
                omp_get_max_threads(), gflops);
    return 0;
  }
  const int threads = openblas_get_num_threads(); // before llmp's call sets it to 1
  double openblas = rate([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(),
                n, 0.0f, c.data(), n);
  });
  double llmp = rate([&] { _mlir_ciface_lrt_matmul_f32(0, 0, /*accumulate=*/0, &av, &bv, &cv); });
  std::printf("{\"n\": %d, \"threads\": %d, \"precision\": \"fp32\", \"gflops\": %.1f, "
              "\"openblas_gflops\": %.1f, \"llmp_gflops\": %.1f}\n",
              n, threads, std::max(openblas, llmp), openblas, llmp);
  return 0;
}
