// SPDX-License-Identifier: Apache-2.0
/// Mixed-precision matrix products for `precision: bf16` stages: operands rounded to
/// bfloat16, products accumulated in fp32 into an fp32 C (the autocast scheme of PyTorch and
/// of Micikevicius et al., "Mixed Precision Training", ICLR 2018, with bf16 instead of fp16,
/// so no loss scaling). The matrix units come from oneDNN's matmul primitive (AMX tiles or
/// AVX512-BF16 dot products); the operands are rounded to nearest even by oneDNN's reorder.
#pragma once

#include "runtime/MemRef.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace lrt {
/// Whether an op(A) (M,K) x op(B) (K,N) product is large enough for the bf16 path: every
/// dimension at least 64. Below, the path's fixed costs (two reorders, a primitive lookup)
/// outweigh its gain, and the narrow panels of rank-r adapters run at a few GFLOP/s in
/// oneDNN 2.6 (measured) against ~50 in OpenBLAS; such products run the fp32 kernel. The
/// compiler's step-heap figure (llmp-step-heap-peak) uses the same rule.
inline bool matmulBf16Shape(int64_t m, int64_t n, int64_t k) {
  return std::min({m, n, k}) >= 64;
}

/// fp32 -> bf16 bits, rounded to nearest even (as oneDNN's reorder and PyTorch's
/// `Tensor.to(torch.bfloat16)`); NaN stays a quiet NaN of the same sign.
inline uint16_t toBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/// bf16 bits -> fp32, exact (the bits become the float's upper half).
inline float fromBf16(uint16_t x) {
  uint32_t u = uint32_t(x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
} // namespace lrt

extern "C" {

/// C (M,N) = op(A) op(B) + beta C with A and B rounded to bf16 and fp32 accumulation, beta 1
/// when `accumulate` is nonzero and 0 otherwise (C then need not be initialised). Same
/// operands as `_mlir_ciface_lrt_matmul_f32` (kernels/cpu/Matmul.h): A (M,K) or (K,M) if `ta`,
/// B (K,N) or (N,K) if `tb`, any strides with a unit stride in one dimension. Products
/// with a dimension below 64 (LoRA's rank-r adapters, small heads), CPUs without bf16 dot
/// products (oneDNN's effective ISA below avx512_core_bf16; `DNNL_MAX_CPU_ISA` lowers it)
/// and any oneDNN failure take the fp32 kernel instead, so the result is then bitwise the
/// fp32 one. Uses the OpenMP threads of the caller (must not be called inside a parallel
/// region with more than one thread). Scratch: the bf16 copies of op(A) and op(B), 2 MK and
/// 2 KN bytes from the step heap (lrt_alloc, kernels/cpu/Alloc.h), freed before it returns;
/// llmp-step-heap-peak counts them at the product (`llmp.precision = "bf16"` modules).
void _mlir_ciface_lrt_matmul_bf16(int32_t ta, int32_t tb, int32_t accumulate,
                                  lrt::MemRef<float, 2> *a, lrt::MemRef<float, 2> *b,
                                  lrt::MemRef<float, 2> *c);

/// The batched form of `_mlir_ciface_lrt_matmul_bf16` (attention's per-head products in a
/// `precision: bf16` stage, as PyTorch's autocast runs torch.bmm / matmul in bf16):
/// A (Bt,M,K) or (Bt,K,M) if `ta`, B (Bt,K,N) or (Bt,N,K) if `tb`, C (Bt,M,N) fp32, any batch
/// strides, a unit stride in one of the last two dimensions. One oneDNN batched matmul on
/// bf16 copies of the whole of op(A) and op(B): scratch 2 Bt MK + 2 Bt KN bytes from the step
/// heap for the duration of the call (llmp-step-heap-peak counts them). The same fallback
/// rule as the 2-D kernel (lrt::matmulBf16Shape on M, N, K; CPU; oneDNN refusal): then
/// `_mlir_ciface_lrt_batch_matmul_f32` computes it, bitwise the fp32 product.
void _mlir_ciface_lrt_batch_matmul_bf16(int32_t ta, int32_t tb, int32_t accumulate,
                                        lrt::MemRef<float, 3> *a, lrt::MemRef<float, 3> *b,
                                        lrt::MemRef<float, 3> *c);

/// C (M,N) = op(A) op(B) + beta C as `_mlir_ciface_lrt_matmul_bf16`, with B already stored
/// in bf16 (bits as uint16_t: a LoRA stage's frozen base weight, converted once at load by
/// runtime/Frozen.h; `llmp-bf16-base`): only op(A) is rounded to bf16 per call (2 MK bytes
/// of step-heap scratch). B (K,N) or (N,K) if `tb`, any strides with a unit stride in one
/// dimension. Where the bf16 path does not apply (a dimension below 64, a CPU without bf16
/// dot products, a oneDNN failure) B is widened to fp32 exactly into step-heap scratch of
/// 4 KN bytes and the fp32 kernel runs: the result is then bitwise the fp32 product with the
/// bf16-rounded B. llmp-step-heap-peak counts 2 MK bytes for products of lrt::matmulBf16Shape
/// and 4 KN bytes for the others (on a CPU without bf16 the wide ones take 4 KN, unplanned).
void _mlir_ciface_lrt_matmul_bf16_b(int32_t ta, int32_t tb, int32_t accumulate,
                                    lrt::MemRef<float, 2> *a, lrt::MemRef<uint16_t, 2> *b,
                                    lrt::MemRef<float, 2> *c);

/// Whether `_mlir_ciface_lrt_matmul_bf16` multiplies in bf16 on this CPU (an ISA with bf16
/// dot products, as oneDNN detects it), rather than falling back to fp32 for every shape.
bool lrt_matmul_bf16_native();
}
