// SPDX-License-Identifier: Apache-2.0
/// The fused NF4 matrix product of QLoRA's frozen base (Dettmers et al. 2023, section 3:
/// "we dequantize the storage data type to the computation data type to perform the forward
/// and backward pass"): the weight stays in its 4-bit blob (kernels/cpu/Quant.h Nf4Layout)
/// and is dequantized one panel of rows at a time into a small per-thread scratch buffer that
/// one sgemm consumes, so no full-precision copy of the weight ever exists. Called from
/// compiled code (`llmp-linalg-to-lrt` rewrites the `llmp.matmul_nf4` loops into this call).
#pragma once

#include "runtime/MemRef.h"

#include <cstdint>

extern "C" {

/// Accumulates with W = dequant(blob), W of shape (rows, cols) (row-major, the [in, out]
/// layout of a linear weight; its rows * cols weights quantized flat at `block` weights per
/// absmax, with `doubleQuant` the 8-bit absmax codes of 256 per fp32 scale):
///   tb = 0:  C (M, cols) += X (M, rows) W      (the forward product x @ W)
///   tb = 1:  C (M, rows) += X (M, cols) W^T    (the input gradient dY @ W^T)
/// X and C are strided f32 views (unit stride in one dimension for BLAS; plain loops
/// otherwise); `w` is the blob, at least nf4Layout(rows * cols, block, doubleQuant)
/// .byteSize bytes. Work is split over the OpenMP threads along C's columns, in multiples
/// of 16, each thread dequantizing only its own part of W (panels of at most 256 KiB), so
/// the result depends only on the shapes and the thread count. The product's rounding
/// differs from sgemm on the fully dequantized W only in the order of the sums over rows.
void _mlir_ciface_lrt_matmul_nf4_f32(int32_t tb, int64_t rows, int64_t cols, int64_t block,
                                     int32_t doubleQuant, lrt::MemRef<float, 2> *x,
                                     lrt::MemRef<int8_t, 1> *w, lrt::MemRef<float, 2> *c);
}
