// SPDX-License-Identifier: Apache-2.0
/// The fp32 GEMM rate on the products of one training step, by kernel: what decides whether
/// a product should go to OpenBLAS or to oneDNN (kernels/cpu/Matmul.h).
///
/// The shapes are those of `grad_step` of bench/configs/smollm2-lora.llmp (SmolLM2-135M,
/// dim 576, hidden 1536, 3 KV heads of 64, vocabulary 49,152, batch 4 x 256 = 1024 tokens,
/// LoRA rank 16 on every linear layer), read from
/// `llmpc emit bench/configs/smollm2-lora.llmp --compile-to=linalg` (each linalg.matmul and
/// linalg.batch_matmul of @grad_step: shape, transposes and count). For each shape it times
///   blas        `lrt_matmul_f32_blas` / `lrt_batch_matmul_f32_blas`: the OpenBLAS kernel
///               (single-threaded sgemm split over the OpenMP threads; what compiled code
///               calls for the products that kernels/cpu/Matmul.h leaves on OpenBLAS);
///   dnnl        oneDNN's f32 matmul on the same strided operands (its own OpenMP threads);
///   dnnl-packed oneDNN with B in the layout it prefers (`memory::format_tag::any`),
///               reordered once outside the timing: a frozen base weight, constant in a stage.
/// and prints one line per shape: the best time of `repeats` calls in ms and GFLOP/s, then
/// the step's total GEMM time by kernel (count x best time).
/// Usage: OMP_NUM_THREADS=2 gemm_shapes [repeats=20]
#include "kernels/cpu/Matmul.h"

#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

namespace {

using dnnl::memory;

/// One product of the step: C (batch, m, n) = op(A) (batch, m, k) op(B) (batch, k, n).
struct Shape {
  int batch, m, n, k;
  bool ta, tb;
  int count;       // per grad_step
  bool frozenB;    // B is a frozen base weight (constant within a stage)
  const char *what;
};

// From `llmpc emit bench/configs/smollm2-lora.llmp --compile-to=linalg`, @grad_step.
const Shape kShapes[] = {
    {1, 1024, 1536, 576, false, false, 60, true, "gate/up forward x W"},
    {1, 1024, 576, 1536, false, true, 60, true, "gate/up dX = dY W^T"},
    {1, 1024, 49152, 576, false, true, 1, true, "tied head logits x E^T"},
    {1, 1024, 576, 49152, false, false, 1, true, "tied head dX = dlogits E"},
    {1, 1024, 576, 1536, false, false, 30, true, "down forward"},
    {1, 1024, 1536, 576, false, true, 30, true, "down dX"},
    {1, 1024, 576, 576, false, false, 60, true, "wq/wo forward"},
    {1, 1024, 576, 576, false, true, 59, true, "wq/wo dX"},
    {12, 768, 256, 64, false, true, 60, false, "attention scores (and recomputed)"},
    {12, 768, 64, 256, false, false, 60, false, "attention P V, dP"},
    {12, 256, 64, 768, true, false, 60, false, "attention dK, dV"},
    {1, 1024, 192, 576, false, false, 60, true, "wk/wv forward"},
    {1, 1024, 576, 192, false, true, 58, true, "wk/wv dX"},
    {1, 1024, 16, 576, false, true, 180, false, "LoRA x A^T (dim 576)"},
    {1, 16, 576, 1024, true, false, 180, false, "LoRA dA/dB (dim 576)"},
    {1, 1024, 576, 16, false, false, 177, false, "LoRA (x A^T) B^T"},
    {1, 1024, 1536, 16, false, true, 60, false, "LoRA up to 1536"},
};

/// Row-major dims and strides of op(X) for X stored row-major as (rows, cols) per batch.
memory::desc opDesc(int batch, int rows, int cols, bool t) {
  // op(X) is (rows, cols); stored transposed when t: X is (cols, rows) row-major.
  if (batch == 1)
    return t ? memory::desc({rows, cols}, memory::data_type::f32, {1, rows})
             : memory::desc({rows, cols}, memory::data_type::f32, {cols, 1});
  int64_t slice = int64_t(rows) * cols;
  return t ? memory::desc({batch, rows, cols}, memory::data_type::f32, {slice, 1, rows})
           : memory::desc({batch, rows, cols}, memory::data_type::f32, {slice, cols, 1});
}

memory::desc anyDesc(int batch, int rows, int cols) {
  if (batch == 1)
    return memory::desc({rows, cols}, memory::data_type::f32, memory::format_tag::any);
  return memory::desc({batch, rows, cols}, memory::data_type::f32, memory::format_tag::any);
}

} // namespace

int main(int argc, char **argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 20;
  if (repeats <= 0) {
    std::fprintf(stderr, "gemm_shapes: expected a positive repeat count\n");
    return 1;
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  double total[3] = {0, 0, 0};
  double best[3] = {0, 0, 0}; // the step's GEMM time taking the faster kernel per shape
  std::printf("%-34s %5s %6s %6s %6s %2s %2s %5s | %9s %9s %9s | GFLOP/s blas dnnl packed\n",
              "product", "batch", "M", "N", "K", "tA", "tB", "count", "blas ms", "dnnl ms",
              "packed ms");
  for (const Shape &s : kShapes) {
    int64_t aElems = int64_t(s.batch) * s.m * s.k, bElems = int64_t(s.batch) * s.k * s.n,
            cElems = int64_t(s.batch) * s.m * s.n;
    std::vector<float> a(aElems), b(bElems), c(cElems);
    for (int64_t i = 0; i < aElems; ++i)
      a[i] = float((i * 7) % 13) / 13.0f - 0.5f;
    for (int64_t i = 0; i < bElems; ++i)
      b[i] = float((i * 5) % 11) / 11.0f - 0.5f;
    // Stored shapes: A is (m, k), or (k, m) when ta; B is (k, n), or (n, k) when tb.
    int64_t ar = s.ta ? s.k : s.m, ac = s.ta ? s.m : s.k, br = s.tb ? s.n : s.k,
            bc = s.tb ? s.k : s.n;
    // The three kernels run in turn within each repeat, so that a burst of load on a shared
    // machine slows all of them rather than one; each keeps its best time.
    std::function<void()> run[3];
    auto av2 = lrt::viewOf(a.data(), {ar, ac}), bv2 = lrt::viewOf(b.data(), {br, bc}),
         cv2 = lrt::viewOf(c.data(), {int64_t(s.m), int64_t(s.n)});
    auto av3 = lrt::viewOf(a.data(), {int64_t(s.batch), ar, ac}),
         bv3 = lrt::viewOf(b.data(), {int64_t(s.batch), br, bc}),
         cv3 = lrt::viewOf(c.data(), {int64_t(s.batch), int64_t(s.m), int64_t(s.n)});
    if (s.batch == 1)
      run[0] = [&] { lrt_matmul_f32_blas(s.ta, s.tb, 0, &av2, &bv2, &cv2); };
    else
      run[0] = [&] { lrt_batch_matmul_f32_blas(s.ta, s.tb, 0, &av3, &bv3, &cv3); };
    memory::desc ad = opDesc(s.batch, s.m, s.k, s.ta), bd = opDesc(s.batch, s.k, s.n, s.tb),
                 cd = opDesc(s.batch, s.m, s.n, false);
    dnnl::matmul plain(dnnl::matmul::primitive_desc(dnnl::matmul::desc(ad, bd, cd), eng));
    dnnl::matmul::primitive_desc packedPd(dnnl::matmul::desc(ad, anyDesc(s.batch, s.k, s.n), cd),
                                          eng);
    dnnl::matmul packedMm(packedPd);
    memory am(ad, eng, a.data()), bm(bd, eng, b.data()), cm(cd, eng, c.data());
    memory packed(packedPd.weights_desc(), eng);
    dnnl::reorder(bm, packed).execute(stream, bm, packed);
    stream.wait();
    run[1] = [&] {
      plain.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
      stream.wait();
    };
    run[2] = [&] {
      packedMm.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, cm}});
      stream.wait();
    };
    double ms[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r <= repeats; ++r) // r = 0: warm-up (thread pools, page faults)
      for (int v = 0; v < 3; ++v) {
        auto t0 = std::chrono::steady_clock::now();
        run[v]();
        double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (r > 0)
          ms[v] = std::min(ms[v], t);
      }
    double gflop = 2.0 * s.batch * s.m * s.n * double(s.k) / 1e9;
    std::printf("%-34s %5d %6d %6d %6d %2d %2d %5d | %9.3f %9.3f %9.3f | %6.1f %6.1f %6.1f\n",
                s.what, s.batch, s.m, s.n, s.k, s.ta, s.tb, s.count, ms[0], ms[1], ms[2],
                gflop / ms[0] * 1e3, gflop / ms[1] * 1e3, gflop / ms[2] * 1e3);
    for (int v = 0; v < 3; ++v)
      total[v] += s.count * ms[v];
    best[0] += s.count * std::min(ms[0], ms[1]);
    best[1] += s.count * std::min({ms[0], ms[1], s.frozenB ? ms[2] : 1e30});
  }
  std::printf("step total (count x best ms): blas %.1f ms, dnnl %.1f ms, dnnl-packed %.1f ms; "
              "faster of blas/dnnl per shape %.1f ms; with packing of frozen B %.1f ms "
              "(threads %d)\n",
              total[0], total[1], total[2], best[0], best[1], omp_get_max_threads());
  return 0;
}
