// SPDX-License-Identifier: Apache-2.0
/// Weight quantization: for QLoRA's frozen base, NF4 with double quantization (Dettmers et
/// al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs", section 2 and appendix E), as
/// bitsandbytes implements it (`bitsandbytes.functional.quantize_4bit(quant_type="nf4",
/// compress_statistics=True)` and `dequantize_4bit`, CPU backend): the same 4-bit codes,
/// absmax values and dequantized weights as bitsandbytes; the 8-bit absmax codes of double
/// quantization are the nearest codes, as bitsandbytes' torch implementation picks them
/// (its native CPU search picks a neighbouring code for about 0.25% of them).
///
/// Layout of an NF4 tensor of `n` fp32 weights (flat, row-major), block size B:
///   - `packed`: ceil(n / 2) bytes; weight 2i in the high nibble of byte i, weight 2i+1
///     in the low nibble (an odd n pads the last low nibble with the code of 0.0, 7);
///   - one absmax per block of B weights (the last block may be shorter): stored as fp32
///     (`absmax`), or, with double quantization, as one 8-bit code per block
///     (`absmaxCodes`, an index into `dynamicCode8()`) plus one fp32 scale per group of
///     `absmaxBlockSize` (256) codes (`absmaxScales`) and one fp32 offset (`absmaxOffset`,
///     the mean of all absmax values, subtracted before the 8-bit quantization).
/// Storage: 4 + 8/B + 32/(B * 256) bits per weight with double quantization (4.127 at
/// B = 64), 4 + 32/B without (4.5 at B = 64).
///
/// For the `deploy` stage: int8 with an absmax per output channel (8 + 32/cols bits per
/// weight) and group-wise int4 (4 + 32/G bits).
#pragma once

#include "runtime/Status.h"

#include <array>
#include <cstdint>
#include <vector>

namespace lrt::quant {

/// The 16 NF4 values in ascending order (code k = 0..15): quantiles of N(0, 1) normalised
/// to [-1, 1] with an exact zero (QLoRA appendix E; the fp32 values of bitsandbytes'
/// `get_4bit_type("nf4")`). Code 7 is 0.0, code 0 is -1.0, code 15 is 1.0.
extern const std::array<float, 16> kNf4Code;

/// bitsandbytes' signed 8-bit "dynamic" map (`create_dynamic_map(signed=True,
/// max_exponent_bits=7, total_bits=8)`, Dettmers 2015, "8-Bit Approximations for
/// Parallelism in Deep Learning"): 256 ascending fp32 values in [-0.99297, 1], computed as
/// bitsandbytes computes them (fp32 linspace midpoints times powers of ten).
const std::array<float, 256> &dynamicCode8();

/// Options of quantizeNf4.
struct Nf4Options {
  int64_t blockSize = 64;        ///< weights per absmax (bitsandbytes: 64 for QLoRA)
  bool doubleQuant = true;       ///< quantize the absmax values to 8 bits
  int64_t absmaxBlockSize = 256; ///< absmax values per fp32 scale when doubleQuant
};

/// An NF4-quantized tensor (layout in the file comment).
struct Nf4Tensor {
  int64_t numel = 0;
  int64_t blockSize = 64;
  std::vector<uint8_t> packed;       ///< ceil(numel / 2) bytes, two 4-bit codes each
  bool doubleQuant = true;
  std::vector<float> absmax;         ///< per block; only without doubleQuant
  std::vector<uint8_t> absmaxCodes;  ///< per block; index into dynamicCode8()
  std::vector<float> absmaxScales;   ///< per absmaxBlockSize absmax codes
  float absmaxOffset = 0;            ///< mean of the absmax values
  int64_t absmaxBlockSize = 256;

  int64_t numBlocks() const { return (numel + blockSize - 1) / blockSize; }
  /// Bits of storage per weight: (4 n + bits of the absmax statistics) / n, counting the
  /// codes, scales and offset (not the two constant tables).
  double bitsPerParameter() const;
  /// The absmax of every block as dequantization uses it (fp32): `absmax`, or
  /// dynamicCode8()[code] * scale + offset with double quantization.
  std::vector<float> blockAbsmax() const;
};

/// Quantizes `x[n]` to NF4, as bitsandbytes' CPU `quantize_4bit`: per block, absmax =
/// max |x|; each weight is scaled by the fp32 reciprocal of max(absmax, 1e-38) (a final
/// partial block divides by it instead), clamped to [-1, 1] and mapped to the code whose
/// interval between fp32 midpoints of neighbouring NF4 values holds it (a value on a
/// midpoint takes the lower code). With double quantization the absmax values, minus
/// their mean, are quantized by quantizeBlockwise8 with `absmaxBlockSize`. Errors:
/// InvalidArgument for n < 0, a block size < 1, or a non-finite weight (naming its index).
Expected<Nf4Tensor> quantizeNf4(const float *x, int64_t n, const Nf4Options &opts = {});

/// out[numel] = kNf4Code[code] * blockAbsmax()[block] (fp32 product, as bitsandbytes'
/// `dequantize_4bit`). Errors: InvalidArgument when the tensor's sizes are inconsistent.
Status dequantizeNf4(const Nf4Tensor &q, float *out);

/// One NF4 tensor as a single contiguous, self-contained byte blob: how QLoRA's frozen base
/// weights lie in a stage's frozen buffer, and what `llmp.matmul_nf4` and
/// `_mlir_ciface_lrt_matmul_nf4_f32` (kernels/cpu/Nf4Matmul.h) read. Little-endian, in order:
///   [0, codesBytes)                 the packed codes (Nf4Tensor::packed);
///   with double quantization:
///   [absmaxAt, absmaxAt + numBlocks)  the 8-bit absmax codes (Nf4Tensor::absmaxCodes);
///   [scalesAt, scalesAt + 4 numScales) the fp32 absmax scales, 4-byte aligned;
///   [offsetAt, offsetAt + 4)        the fp32 absmax offset;
///   without: [absmaxAt, absmaxAt + 4 numBlocks) the fp32 absmax values, 4-byte aligned.
/// `byteSize` is the end of the last section. For n = 576 x 576 at block 64 with double
/// quantization: 165888 + 5184 + 84 + 4 = 171160 bytes, 4.127 bits per weight.
struct Nf4Layout {
  int64_t numel = 0, blockSize = 64, absmaxBlockSize = 256;
  bool doubleQuant = true;
  int64_t codesBytes = 0, numBlocks = 0, numScales = 0;
  int64_t absmaxAt = 0, scalesAt = 0, offsetAt = 0, byteSize = 0;
};

/// The layout of `numel` weights at `blockSize` (>= 1; `absmaxBlockSize` >= 1 with
/// `doubleQuant`). Header-only so that the compiler's verifiers and memory plan use the
/// same byte counts as the runtime.
constexpr Nf4Layout nf4Layout(int64_t numel, int64_t blockSize, bool doubleQuant,
                              int64_t absmaxBlockSize = 256) {
  Nf4Layout l;
  l.numel = numel;
  l.blockSize = blockSize;
  l.doubleQuant = doubleQuant;
  l.absmaxBlockSize = absmaxBlockSize;
  l.codesBytes = (numel + 1) / 2;
  l.numBlocks = (numel + blockSize - 1) / blockSize;
  auto align4 = [](int64_t v) { return (v + 3) / 4 * 4; };
  if (doubleQuant) {
    l.numScales = (l.numBlocks + absmaxBlockSize - 1) / absmaxBlockSize;
    l.absmaxAt = l.codesBytes;
    l.scalesAt = align4(l.absmaxAt + l.numBlocks);
    l.offsetAt = l.scalesAt + 4 * l.numScales;
    l.byteSize = l.offsetAt + 4;
  } else {
    l.absmaxAt = align4(l.codesBytes);
    l.scalesAt = l.offsetAt = l.absmaxAt + 4 * l.numBlocks;
    l.byteSize = l.offsetAt;
  }
  return l;
}

/// Writes `q` as its blob (nf4Layout(q.numel, q.blockSize, q.doubleQuant,
/// q.absmaxBlockSize).byteSize bytes at `out`; alignment padding is zero). Errors:
/// InvalidArgument when the tensor's sizes are inconsistent.
Status writeNf4Blob(const Nf4Tensor &q, uint8_t *out);

/// Reads a blob written by writeNf4Blob back into an Nf4Tensor of layout `l`.
Nf4Tensor readNf4Blob(const uint8_t *blob, const Nf4Layout &l);

/// out[0, end - begin) = the dequantized weights [begin, end) of the blob (0 <= begin <=
/// end <= l.numel): bitwise what dequantizeNf4 gives for them (same fp32 roundings). The
/// tile dequantization of the fused NF4 matmul.
void dequantizeNf4Range(const uint8_t *blob, const Nf4Layout &l, int64_t begin, int64_t end, float *out);

/// The byte holding codes `hi` (first weight, high nibble) and `lo` (second, low nibble);
/// both must be < 16.
inline uint8_t packNibbles(uint8_t hi, uint8_t lo) { return static_cast<uint8_t>((hi << 4) | (lo & 15)); }

/// 8-bit blockwise quantization with a 256-entry ascending `code` (bitsandbytes' CPU
/// `quantize_blockwise`, backends/default/ops.py): per block of `blockSize` values,
/// absmax = max |v|, each value is scaled as in quantizeNf4 and takes the code between
/// whose fp32 midpoints it lies (ties to the lower index). `codes[n]` and
/// `absmax[ceil(n / blockSize)]` are resized. Errors: InvalidArgument for n < 0,
/// blockSize < 1 or a non-finite value.
Status quantizeBlockwise8(const float *v, int64_t n, int64_t blockSize, const std::array<float, 256> &code,
                          std::vector<uint8_t> &codes, std::vector<float> &absmax);

/// A matrix W[rows, cols] (rows = output channels, PyTorch's `weight` layout) in int8 with
/// one fp32 absmax per output channel (the `deploy` stage's `int8`).
struct Int8Tensor {
  int64_t rows = 0, cols = 0;
  std::vector<int8_t> q;      ///< rows * cols, row-major
  std::vector<float> absmax;  ///< per row: max |W[r, :]|
};

/// Row-wise absmax int8 (LLM.int8()'s vector-wise quantization, Dettmers et al. 2022, as
/// bitsandbytes' `int8_vectorwise_quant` without outliers): q = round(W * s) with ties to
/// even (torch.round), s = fp32(1 / absmax) * 127 (torch's `127.0 / absmax`); a row of
/// zeros stays 0. Errors:
/// InvalidArgument for negative sizes or a non-finite weight.
Expected<Int8Tensor> quantizeInt8PerChannel(const float *w, int64_t rows, int64_t cols);
/// out[rows * cols] = (q * absmax) * fp32(1 / 127), rounded as bitsandbytes'
/// `int8_vectorwise_dequant`. Errors: InvalidArgument for inconsistent sizes.
Status dequantizeInt8(const Int8Tensor &t, float *out);

/// A matrix W[rows, cols] in 4 bits with one fp32 scale per group of `group` consecutive
/// weights of a row (along the input dimension; the `deploy` stage's `int4(group: G)`).
struct Int4Tensor {
  int64_t rows = 0, cols = 0, group = 0;
  std::vector<uint8_t> packed; ///< ceil(rows * cols / 2) bytes, high nibble first, codes 0..15
  std::vector<float> scales;   ///< rows * (cols / group)
};

/// Group-wise int4 with llama.cpp's Q4_0 rounding (ggml-quants.c `quantize_row_q4_0_ref`)
/// but an fp32 scale and any group size: per group, m = the weight of largest |w| (its sign
/// kept), d = m / -8, code = min(15, trunc(w / d + 8.5)) (w times fp32 1/d; 0 when d is 0),
/// so m maps to code 0 and w ~ (code - 8) * d. Errors: InvalidArgument when `group` < 1 or
/// does not divide `cols`, for negative sizes or a non-finite weight.
Expected<Int4Tensor> quantizeInt4Groupwise(const float *w, int64_t rows, int64_t cols, int64_t group);
/// out[rows * cols] = (code - 8) * scale. Errors: InvalidArgument for inconsistent sizes.
Status dequantizeInt4(const Int4Tensor &t, float *out);

} // namespace lrt::quant
