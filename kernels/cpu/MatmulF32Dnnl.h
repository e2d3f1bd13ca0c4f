// SPDX-License-Identifier: Apache-2.0
/// fp32 matrix products through oneDNN's matmul, for the shapes where it beats OpenBLAS
/// (kernels/cpu/Matmul.h routes them here; bench/gemm_shapes measures both kernels).
#pragma once

#include <cstdint>

namespace lrt {

/// One strided fp32 operand of a (batched) product: `batch` matrices of `rows` x `cols`,
/// element (b, i, j) at data[b * sb + i * s0 + j * s1] (strides in elements).
struct DnnlOperand {
  float *data;
  int64_t batch, rows, cols, sb, s0, s1;
};

/// True for the products oneDNN's f32 matmul runs faster than OpenBLAS on the step's
/// shapes (bench/gemm_shapes, 2 threads): on Intel (Sapphire Rapids) a smallest dimension
/// of at most 64, i.e. LoRA's rank-r products (x A^T, (x A^T) B^T, dA, dB) and attention's
/// per-head products (head dim 64), where OpenBLAS's packing and the even split over threads
/// cost most, while the base layers and the LM head's dX ran 1.1-2x faster on OpenBLAS; on
/// AMD with AVX-512 (Zen 4, matmulF32AllOnDnnl) every product with more than 4 rows and
/// columns: oneDNN's brgemm beat OpenBLAS 0.3.21's (Cooperlake) kernels on 16 of the 17
/// shapes, 14% less GEMM time per step, and on decode's 8-64-row products by 1.2-1.8x,
/// while OpenBLAS ran the matrix-vector-like products of 1-4 rows or columns (decode at
/// batch 1, 1 x 512 x 512: 9 against 19 us) 1.2-2.5x faster. M, N, K: the product's C
/// (M,N) += op(A) (M,K) op(B) (K,N).
bool matmulF32PrefersDnnl(int64_t m, int64_t n, int64_t k);

/// Whether this CPU routes every fp32 product but the matrix-vector-like ones to oneDNN:
/// an AMD CPU on which oneDNN runs its AVX-512 kernels (cpuid vendor "AuthenticAMD",
/// effective ISA at least avx512_core).
bool matmulF32AllOnDnnl();

/// C (batch, M, N) = op(A) op(B) (+ C when `accumulate`), with op(A), op(B) and C given as
/// already-transposed logical views (any strides oneDNN accepts). Runs on oneDNN's threads
/// (libomp through its GOMP entry points: the generated code's own threads). Returns false,
/// having written nothing, when oneDNN refuses the layout (its primitive cannot be created
/// for these strides; the refusal is cached) and the caller then uses OpenBLAS. Results
/// equal OpenBLAS's up to fp32 reassociation (|diff| <= K eps(f32) sum_p |a_ip b_pj|).
/// Not reentrant across host threads (one shared oneDNN stream), like the bf16 kernel.
bool matmulF32Dnnl(const DnnlOperand &a, const DnnlOperand &b, const DnnlOperand &c,
                   bool accumulate);

} // namespace lrt
