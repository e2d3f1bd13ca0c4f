// SPDX-License-Identifier: Apache-2.0
/// Measures the fp32 GEMM rate of the BLAS that compiled llmp code calls (OpenBLAS
/// cblas_sgemm), the denominator of llmp's MFU. Prints one JSON object:
///   {"n": N, "threads": T, "gflops": G}
/// Usage: sgemm_rate [N=1024] [repeats=10]. The thread count is OpenBLAS's
/// (OPENBLAS_NUM_THREADS or all cores).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1024;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 10;
  if (n <= 0 || repeats <= 0) {
    std::fprintf(stderr, "sgemm_rate: expected positive N and repeats\n");
    return 1;
  }
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  auto gemm = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                b.data(), n, 0.0f, c.data(), n);
  };
  gemm(); // warm-up: thread pool start, page faults
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    gemm();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("{\"n\": %d, \"threads\": %d, \"gflops\": %.1f}\n", n, openblas_get_num_threads(),
              2.0 * n * n * double(n) / best / 1e9);
  return 0;
}
